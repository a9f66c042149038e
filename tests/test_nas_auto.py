"""The auto strategy's oracle (nas.auto) against the engine's scheduler on random networks of the MCUNet
space: the same patch stage and fused blocks, and the chosen graph's live-set bound exactly."""
from __future__ import annotations

import random

import pytest

from mcuforge.engine.schedule import schedule
from mcuforge.engine.schedule.choose import live_set_bound
from mcuforge.nas import estimate, to_graph
from mcuforge.nas.auto import auto_estimate, auto_lower_bound
from mcuforge.nas.mcunet import WIDTHS, SearchSpace


def _network(seed: int):
    rng = random.Random(seed)
    if seed % 3 == 0:
        space = SearchSpace(rng.choice(WIDTHS), rng.choice((64, 128, 256)), channels=rng.choice((3, 6)), classes=6,
                            signal=True)
    else:
        space = SearchSpace(rng.choice(WIDTHS), rng.choice((64, 96, 128, 160)), classes=rng.choice((10, 1000)))
    return space.network(space.sample(rng))


@pytest.mark.parametrize("seed", range(14))
def test_auto_oracle_makes_the_schedulers_choice(seed):
    spec = _network(seed)
    ours = auto_estimate(spec)
    chosen = schedule(to_graph(spec, seed=seed), "auto")
    assert ours.strategy == chosen.strategy
    stage = (chosen.stage.first, chosen.stage.last, chosen.stage.grid) if chosen.stage else None
    assert ours.stage == stage
    assert ours.blocks == tuple((b.layer, b.width) for b in chosen.fused)
    assert ours.extra_macs_ratio == pytest.approx(chosen.extra_macs_ratio)
    assert ours.peak_sram_bytes == live_set_bound(chosen.graph) == chosen.plan.lower_bound
    assert chosen.plan.arena_bytes >= ours.peak_sram_bytes  # the packing may land above the bound
    assert auto_lower_bound(spec) <= ours.peak_sram_bytes <= ours.layer_peak_bytes == estimate(spec).peak_sram_bytes


def test_auto_peak_with_a_tighter_mac_cap_is_never_lower():
    spec = _network(1)
    assert auto_estimate(spec, 0.0).peak_sram_bytes >= auto_estimate(spec).peak_sram_bytes
