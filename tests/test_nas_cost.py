"""The NAS cost model: shape-only estimates equal the full planner, analyze and the code generator."""
from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcuforge.engine.plan import check_plan
from mcuforge.nas import NetworkSpec, Stage, estimate, make_divisible, random_spec, to_graph
from mcuforge.nas.space import EXPAND_RATIOS, KERNEL_SIZES
from mcuforge.pipeline import analyze, compile_model
from oracle import const_arrays

BENCH = Path(__file__).resolve().parents[1] / "bench" / "planner.py"


@pytest.mark.parametrize("seed", range(30))
def test_estimate_equals_full_planner_on_mobilenet_v2_sized_specs(seed):
    spec = random_spec(random.Random(seed))
    graph = to_graph(spec, seed=seed)
    report = analyze(graph)  # plans and checks the plan
    est = estimate(spec)
    assert est.peak_sram_bytes == report.arena_bytes == report.lower_bound_bytes
    assert est.param_bytes == report.param_bytes
    assert est.macs == report.macs
    assert est.ops == len(graph.ops)


def _assert_matches_compiled(spec: NetworkSpec, seed: int = 0, merged: bool = False) -> None:
    """Equal to compile_model: peak, MACs, ops and flash (`merged`: flash before merging equal arrays)."""
    graph = to_graph(spec, seed=seed)
    with const_arrays() as arrays:
        compiled = compile_model(graph)
    est = estimate(spec)
    assert est.peak_sram_bytes == compiled.plan.arena_bytes == compiled.plan.lower_bound
    if merged:
        assert est.flash_bytes == sum(arrays.values()) >= compiled.report.flash_weights_bytes
    else:
        assert est.flash_bytes == compiled.report.flash_weights_bytes
    assert est.macs == compiled.report.macs
    assert est.ops == len(graph.ops)


@pytest.mark.parametrize("seed", [100, 101])
def test_flash_equals_code_generator_on_mobilenet_v2_sized_specs(seed):
    _assert_matches_compiled(random_spec(random.Random(seed)), seed)


stages = st.builds(Stage, st.sampled_from(EXPAND_RATIOS), st.sampled_from(KERNEL_SIZES),
                   st.sampled_from([1, 2, 3, 4, 8, 16, 24, 48]), st.sampled_from([1, 2]), st.integers(1, 2))
small_specs = st.builds(NetworkSpec, resolution=st.integers(1, 40), stem_channels=st.sampled_from([1, 3, 8, 16]),
                        stages=st.lists(stages, min_size=0, max_size=4).map(tuple),
                        head_channels=st.sampled_from([0, 8, 64]), classes=st.integers(1, 20),
                        pool=st.sampled_from(["avg", "max"]), image_channels=st.sampled_from([1, 3]))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(small_specs)
def test_estimate_equals_compiled_model_on_odd_small_specs(spec):
    """Odd sizes, residual blocks without expansion (depthwise not in place), tight scratch choices."""
    _assert_matches_compiled(spec, merged=True)


def test_to_graph_builds_the_blocks_and_compiles():
    spec = NetworkSpec(resolution=32, stem_channels=8, stages=(Stage(1, 3, 8), Stage(6, 5, 16, 2, 2)),
                       head_channels=32, classes=5)
    graph = to_graph(spec)
    kinds = [op.kind for op in graph.ops]
    conv, dw = "CONV_2D", "DEPTHWISE_CONV_2D"
    assert kinds == [conv,
                     dw, conv, "ADD",  # expand 1, stride 1, 8 -> 8: residual
                     conv, dw, conv,  # 8 -> 16, stride 2
                     conv, dw, conv, "ADD",  # the repeat: stride 1, 16 -> 16
                     conv, "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert graph[graph.outputs[0]].shape == (1, 5)
    assert graph[graph.ops[5].outputs[0]].shape == (1, 8, 8, 48)
    assert graph.ops[5].attrs["stride"] == (2, 2) and graph.ops[5].attrs["activation"] == "RELU6"
    assert graph.ops[6].attrs["activation"] == "NONE"
    compiled = compile_model(graph)
    check_plan(graph, compiled.plan)
    assert estimate(spec).peak_sram_bytes == compiled.report.arena_bytes


def test_random_spec_is_mobilenet_v2_sized_and_seeded():
    specs = [random_spec(random.Random(seed)) for seed in range(50)]
    assert specs[0] == random_spec(random.Random(0))
    assert all(12 <= sum(s.repeats for s in spec.stages) <= 22 for spec in specs)
    assert all(96 <= spec.resolution <= 224 for spec in specs)
    assert len({spec.resolution for spec in specs}) > 3
    assert 16 <= sum(sum(s.repeats for s in spec.stages) for spec in specs) / len(specs) <= 18
    assert make_divisible(32 * 0.35) == 16 and make_divisible(320 * 0.5) == 160


@pytest.mark.parametrize("change, message", [
    (dict(resolution=0), "input resolution"),
    (dict(stem_channels=2.5), "stem channels"),
    (dict(head_channels=-1), "head channels"),
    (dict(pool="sum"), "pooling"),
    (dict(classes=0), "classifier classes"),
    (dict(stages=((6, 3, 16, 1, 1),)), "Stage values"),
])
def test_invalid_network_specs_are_rejected(change, message):
    fields = dict(resolution=96, stem_channels=16, stages=(Stage(6, 3, 16),), head_channels=0, classes=10)
    with pytest.raises(ValueError, match=message):
        NetworkSpec(**{**fields, **change})


@pytest.mark.parametrize("args, message", [
    ((2, 3, 16), "expand ratio"), ((6, 4, 16), "kernel size"), ((6, 3, 16, 3), "stride"),
    ((6, 3, 0), "stage channels"), ((6, 3, 16, 1, 0), "stage repeats"),
])
def test_invalid_stages_are_rejected(args, message):
    with pytest.raises(ValueError, match=message):
        Stage(*args)


def test_benchmark_reports_throughput_and_equality():
    spec = importlib.util.spec_from_file_location("bench_planner", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up
    spec.loader.exec_module(bench)
    result = bench.measure(n=40, seed=1, check=1)
    assert result.cold_per_s > 0 and result.warm_per_s > 0 and result.planner_per_s > 0
    assert (result.checked, result.equal_peak, result.equal_flash, result.equal_rest) == (1, 1, 1, 1)
    assert result.mean_ops > 40
    table = bench.markdown(result)
    assert "networks/s" in table and "| peak = arena = lower bound of the full planner | 1/1 |" in table
