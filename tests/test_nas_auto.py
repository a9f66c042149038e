"""The auto strategy's oracle (nas.auto) against the engine's scheduler on random networks of the MCUNet
space (images and 1-D signals): the same ranking of options (patch stage, fused blocks, extra MACs, live-set
bound) as schedule(graph, "auto").considered, and never above the arena it packs."""
from __future__ import annotations

import random

import pytest

from mcuforge.engine.schedule import schedule
from mcuforge.nas import estimate, to_graph
from mcuforge.nas.auto import auto_estimate, auto_lower_bound
from mcuforge.nas.mcunet import WIDTHS, SearchSpace


def _network(seed: int):
    rng = random.Random(seed)
    if seed % 3 == 0:
        space = SearchSpace(rng.choice(WIDTHS), rng.choice((64, 128, 256)), channels=rng.choice((1, 3, 6)),
                            classes=6, signal=True)
    else:
        space = SearchSpace(rng.choice(WIDTHS), rng.choice((64, 96, 128, 160)), classes=rng.choice((10, 1000)))
    return space.network(space.sample(rng))


def _check(spec, seed: int, cap: float | None = None) -> None:
    ours = auto_estimate(spec) if cap is None else auto_estimate(spec, cap)
    graph = to_graph(spec, seed=seed)
    layer = schedule(graph, "layer").plan
    chosen = schedule(graph, "auto") if cap is None else schedule(graph, "auto", cap)
    assert chosen.reordering is None  # a chain: it runs in the model's order
    assert ours.layer_peak_bytes == layer.lower_bound == estimate(spec).peak_sram_bytes
    bound, extra, stage, blocks = chosen.considered[0]
    if bound >= layer.lower_bound:  # no option beats layer by layer
        assert (ours.strategy, ours.peak_sram_bytes) == ("layer", layer.lower_bound)
    else:
        assert ours.peak_sram_bytes == bound
        assert ours.stage == ((stage.first, stage.last, stage.grid) if stage else None)
        assert ours.blocks == tuple((b.layer, b.width) for b in blocks)
        assert ours.extra_macs_ratio == pytest.approx(extra)
        assert ours.strategy == "+".join(n for n, used in (("patch", stage), ("fused", blocks)) if used)
    # the packing lands on or above the bound; the engine keeps the smallest arena
    assert ours.peak_sram_bytes <= chosen.plan.lower_bound <= chosen.plan.arena_bytes <= layer.arena_bytes
    assert auto_lower_bound(spec) <= ours.peak_sram_bytes


@pytest.mark.parametrize("seed", range(100))
def test_auto_oracle_ranks_the_options_as_the_scheduler_does(seed):
    _check(_network(seed), seed)


@pytest.mark.parametrize("seed, cap", [(1, 0.0), (2, 0.05), (4, 0.3), (6, 0.05)])
def test_auto_oracle_under_other_mac_caps(seed, cap):
    _check(_network(seed), seed, cap)


def test_auto_peak_with_a_tighter_mac_cap_is_never_lower():
    spec = _network(1)
    assert auto_estimate(spec, 0.0).peak_sram_bytes >= auto_estimate(spec).peak_sram_bytes
