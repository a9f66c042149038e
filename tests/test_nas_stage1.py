"""TinyNAS stage 1 and MCUNet's search space: the space builds the networks it describes, the shape-only
oracles equal the compiler on them (images and signals), and the choice is the largest mean MACs."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from mcuforge.cli import main
from mcuforge.compress.weights import compress_weights
from mcuforge.errors import BudgetError
from mcuforge.nas import estimate, to_graph
from mcuforge.nas.cost import layers
from mcuforge.nas.layers import layers_of
from mcuforge.nas.mcunet import DEPTHS, EXPANDS, KERNELS, STAGES, Arch, SearchSpace
from mcuforge.nas.oracles import const_bytes, tflm_like_peak
from mcuforge.nas.stage1 import Budgets, Sample, choose, optimize_space, sample_space
from mcuforge.pipeline import compile_model
from mcuforge.verify import verify
from oracle import const_arrays


def _random_space(rng: random.Random) -> SearchSpace:
    if rng.random() < 0.5:
        return SearchSpace(rng.choice((0.2, 0.3, 0.5, 0.7)), rng.choice((32, 64, 128, 200, 256)),
                           channels=rng.choice((1, 3, 6, 9)), classes=rng.choice((2, 6, 12)), signal=True)
    return SearchSpace(rng.choice((0.2, 0.3, 0.4)), rng.choice((48, 64, 80)), channels=rng.choice((1, 3)),
                       classes=rng.choice((10, 100)), feature_mix=rng.choice((0, 0, 64)))


@pytest.mark.parametrize("seed", range(24))
def test_layer_oracle_equals_the_compiler_on_the_mcunet_space(seed):
    rng = random.Random(seed)
    space = _random_space(rng)
    spec = space.network(space.sample(rng))
    with const_arrays() as arrays:
        compiled = compile_model(to_graph(spec, seed=seed))
    est = estimate(spec)
    assert est.peak_sram_bytes == compiled.plan.arena_bytes == compiled.plan.lower_bound
    # the code generator stores identical arrays once (tiny layers can share shifts): compare before that
    assert est.flash_bytes == sum(arrays.values()) >= compiled.lib.flash_weights_bytes
    assert est.macs == compiled.report.macs and est.ops == len(compiled.graph.ops)
    assert layers(spec) == layers_of(compiled.graph, compiled.plan)


@pytest.mark.parametrize("fmt", ["int4", "ternary", "pow2", "codebook:4"])
def test_flash_in_a_weight_format_bounds_the_compiled_flash(fmt: str):
    """Stage 1's flash with the weights in a format (each tensor's bytes in it) against the network compiled
    with its weights compressed into that format: an upper bound, within 8 % (the plain kernels, which
    formats without fast kernels take, keep fewer requantization words per channel)."""
    space = SearchSpace(0.3, 64, classes=10)
    for seed in (1, 2):
        spec = space.network(space.sample(random.Random(seed)))
        graph, est = to_graph(spec), estimate(spec)
        assert est.weight_bytes == sum(est.weight_sizes) == sum(
            t.size for t in graph.tensors.values() if t.is_const and t.dtype == "int8")
        compiled = compile_model(compress_weights(graph, fmt)[0]).lib.flash_weights_bytes
        assert compiled <= const_bytes(est, fmt) <= 1.08 * compiled
        assert const_bytes(est, fmt) < const_bytes(est, "int8") - est.weight_bytes // 3


def test_signal_network_compiles_bit_exact_against_tflm():
    space = SearchSpace(0.3, 128, channels=6, classes=6, signal=True)
    spec = space.network(space.sample(random.Random(2)))
    graph = to_graph(spec)
    assert graph[graph.inputs[0]].shape == (1, 1, 128, 6)
    result = verify(graph, samples=3, strategy="auto")
    assert result.ok and result.tflm_checked


def test_space_builds_mcunet_backbone():
    space = SearchSpace(0.5, 160)
    arch = space.largest()
    spec = space.network(arch)
    assert spec.stem_channels == 16 and spec.stages[0].expand == 1 and spec.stages[0].kernel == 3
    assert [s.channels for s in spec.stages[1:]] == [c for (base, _), d in zip(STAGES, arch.depths)
                                                     for c in [space.channels_of(base)] * d]
    assert sum(arch.depths) == 21 and arch.depths[-1] == 1
    a = space.sample(random.Random(5))
    assert all(d in DEPTHS for d in a.depths[:-1]) and set(a.kernels) <= set(KERNELS) and set(a.expands) <= set(EXPANDS)
    with pytest.raises(ValueError):
        Arch((5, 2, 2, 2, 2, 1), a.kernels, a.expands)


def test_tflm_like_model_needs_more_memory_than_our_planner():
    rng = random.Random(3)
    for _ in range(20):
        space = _random_space(rng)
        spec = space.network(space.sample(rng))
        assert tflm_like_peak(spec) > estimate(spec).peak_sram_bytes


def _sample(width: float, macs: list[int], peak: list[int]) -> Sample:
    return Sample(SearchSpace(width, 64), np.array(macs), np.array(peak), np.zeros(len(macs), np.int64))


def test_choice_is_the_largest_mean_macs_of_fitting_networks():
    a = _sample(0.5, [10, 20, 90], [100, 100, 500])  # fitting under 200: mean 15
    b = _sample(0.7, [30, 40, 50], [150, 300, 300])  # mean 30, one of three fits
    result = choose([a, b], Budgets(sram_bytes=200))
    assert result.chosen.width == 0.7 and result.chosen.mean_macs == 30 and result.chosen.fits == 1
    assert choose([a, b], Budgets(sram_bytes=200), min_fit=0.5).chosen.width == 0.5
    with pytest.raises(BudgetError, match="no sampled network.*: the smallest needs 100 B of SRAM$"):
        choose([a, b], Budgets(sram_bytes=50))
    heavy = Sample(SearchSpace(0.5, 64), np.array([10, 20]), np.array([100, 100]), np.array([900, 700]))
    with pytest.raises(BudgetError, match=r"\(SRAM 200 B, flash 500 B\): the lightest needs 700 B of flash$"):
        choose([heavy], Budgets(sram_bytes=200, flash_bytes=500))  # the SRAM fits: only flash is named
    with pytest.raises(BudgetError, match="alone is met by some network, but none meets them all at once"):
        choose([Sample(SearchSpace(0.5, 64), np.array([10, 20]), np.array([100, 300]), np.array([900, 100]))],
               Budgets(sram_bytes=200, flash_bytes=500))


def test_sampling_is_seeded_per_space():
    space = SearchSpace(0.4, 96, classes=10)
    one, two = sample_space(space, 20, seed=7), sample_space(space, 20, seed=7)
    assert np.array_equal(one.macs, two.macs) and not np.array_equal(one.macs, sample_space(space, 20, 8).macs)


def test_optimize_space_on_a_small_grid_matches_brute_force():
    budgets = Budgets(sram_bytes=96 << 10, flash_bytes=512 << 10)
    result = optimize_space(budgets, classes=10, widths=(0.3, 0.5), resolutions=(64, 96, 128), samples=30, seed=1)
    best = None
    for w in (0.3, 0.5):
        for r in (64, 96, 128):
            s = sample_space(SearchSpace(w, r, classes=10), 30, 1)
            fit = s.macs[(s.peak <= budgets.sram_bytes) & (s.flash <= budgets.flash_bytes)]
            if fit.size and (best is None or fit.mean() > best[0]):
                best = (fit.mean(), w, r)
    assert (result.chosen.width, result.chosen.resolution) == best[1:]


def test_cli_json_plot_and_grid(tmp_path, capsys):
    code = main(["nas", "space", "--sram", "64K", "--flash", "600K", "--signal", "6x128", "--classes", "6",
                 "--samples", "20", "--jobs", "1", "--json", "--plot", str(tmp_path / "cdf.png"),
                 "--grid", str(tmp_path / "grid.svg")])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) == {"chosen", "configs", "strategy", "weights", "budgets", "seconds"}
    assert {"width", "resolution", "mean_macs", "fit_fraction"} <= set(out["chosen"])
    assert len(out["configs"]) == 9 * len({c["resolution"] for c in out["configs"]})
    assert (tmp_path / "cdf.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "grid.svg").read_bytes().startswith(b"<?xml")


def test_cli_budget_nothing_fits_exits_3(capsys):
    assert main(["nas", "space", "--sram", "1K", "--samples", "5", "--jobs", "1", "--input", "64x64x3"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no sampled network" in err[0]


@pytest.mark.parametrize("args, mention", [
    (["--input", "64x64"], "HxWxC"), (["--signal", "6x16"], "CxL"),
    (["--board", "nope"], "unknown board")])
def test_cli_mistakes_exit_2(args, mention, capsys):
    assert main(["nas", "space", "--samples", "5", "--sram", "64K", *args]) == 2
    assert mention in capsys.readouterr().err


def test_cli_needs_a_budget(capsys):
    assert main(["nas", "space", "--samples", "5"]) == 2
    assert "give a budget" in capsys.readouterr().err


def test_cli_latency_budget_and_code_in_flash(capsys):
    assert main(["nas", "space", "--board", "stm32f746", "--latency-ms", "20", "--samples", "20", "--jobs", "1",
                 "--input", "96x96x3", "--classes", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["budgets"]["latency_ms"] == 20
    assert main(["nas", "space", "--sram", "64K", "--latency-ms", "20", "--samples", "5"]) == 2
    assert "needs --board" in capsys.readouterr().err


def test_code_and_latency_models_enter_the_sample():
    from mcuforge.nas.oracles import code_model, latency_model
    from mcuforge.targets.boards import get_board

    space = SearchSpace(0.3, 64, classes=10)
    plain = sample_space(space, 10, seed=3)
    full = sample_space(space, 10, seed=3, code=code_model("cortex-m7"), latency=latency_model(get_board("stm32f746")))
    assert np.array_equal(plain.macs, full.macs) and np.all(full.flash > plain.flash)
    assert full.latency_ms is not None and np.all(full.latency_ms > 0)
    skipped = sample_space(space, 10, seed=3, code=code_model("cortex-m7"), within=Budgets(sram_bytes=1))
    assert np.all(skipped.flash == np.iinfo(np.int64).max)


def test_auto_stand_in_peaks_decide_every_budget_like_the_exact_ones():
    space = SearchSpace(0.5, 96, classes=10)
    exact = sample_space(space, 12, 4, "auto")  # peaks 47..63 KB; layer by layer 72..126 KB
    for kib in ((72, 100), (20, 30)):  # stand-ins: the layer peak (it fits), a lower bound (nothing fits)
        budgets = [Budgets(sram_bytes=k << 10) for k in kib]
        quick = sample_space(space, 12, 4, "auto", within=Budgets.covering(budgets))
        assert not np.array_equal(exact.peak, quick.peak)
        for b in budgets:
            assert np.array_equal(exact.fitting(b), quick.fitting(b))
    layer = sample_space(space, 12, 4, "layer")
    assert np.all(exact.peak <= layer.peak) and np.any(exact.peak < layer.peak)


def test_cli_auto_strategy(capsys):
    assert main(["nas", "space", "--sram", "96K", "--flash", "1M", "--strategy", "auto", "--samples", "4",
                 "--jobs", "1", "--input", "96x96x3", "--classes", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["strategy"] == "auto"
