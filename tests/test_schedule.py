"""Execution strategies: patch-based stages equal layer-by-layer execution bit for bit, plan validly, and
the chooser keeps to the MAC cap; every dev model stays bit-exact with TFLM under every strategy."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcuforge.engine.compiler import compile_graph
from mcuforge.engine.opinfo import total_macs
from mcuforge.engine.plan import check_plan, plan_memory
from mcuforge.engine.reference import run
from mcuforge.engine.schedule import PatchStage, extra_macs_ratio, schedule, split, stage_chains
from mcuforge.errors import ModelError
from mcuforge.models.builder import GraphBuilder
from mcuforge.pipeline import compile_model, load_model
from mcuforge.targets.host import HostModel
from mcuforge.verify import random_inputs, verify

from oracle import MODELS, dev_models

VWW = MODELS / "mlperf_vww_mobilenetv1_025_96_int8.tflite"
MCUNET = MODELS / "tinyengine_mcunet_vww_80_int8_floatio.tflite"


def _layer(b: GraphBuilder, x: str, spec: tuple) -> str:
    kind, k, s, pad, act = spec
    if kind == "conv":
        return b.conv2d(x, 5, kernel=k, stride=s, padding=pad, activation=act)
    if kind == "dw":
        return b.depthwise_conv2d(x, kernel=k, stride=s, padding=pad, activation=act)
    if kind == "avg":
        return b.avg_pool(x, filter=k, stride=s, padding=pad)
    return b.max_pool(x, filter=k, stride=s, padding=pad)


def chain_graph(seed: int, size: tuple[int, int], specs: list[tuple]) -> "object":
    b = GraphBuilder(seed=seed)
    x = b.input((1, *size, 3), scale=1 / 64, zero_point=-3)
    for spec in specs:
        x = _layer(b, x, spec)
    x = b.conv2d(x, 4, kernel=1, activation="RELU")  # a layer after the stage
    return b.build([x], name="chain")


layer_specs = st.tuples(st.sampled_from(["conv", "dw", "avg", "max"]), st.integers(1, 5), st.integers(1, 3),
                        st.sampled_from(["same", "valid"]), st.sampled_from(["NONE", "RELU", "RELU6"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), size=st.tuples(st.integers(9, 30), st.integers(9, 30)),
       specs=st.lists(layer_specs, min_size=1, max_size=4), grid=st.tuples(st.integers(1, 5), st.integers(1, 5)))
def test_patches_equal_layer_by_layer(seed, size, specs, grid):
    """Any kernel, stride and padding: the patched graph gives the same bits and a valid plan."""
    try:
        g = chain_graph(seed, size, specs)
    except ValueError:
        return  # a VALID window larger than its input
    first, last = 0, len(specs) - 1
    h, w = g[g.ops[last].outputs[0]].shape[1:3]
    stage = PatchStage(first, last, (min(grid[0], h), min(grid[1], w)))
    patched = split(g, stage)
    x = random_inputs(g, 1, seed)[0]
    assert all(np.array_equal(a, b) for a, b in zip(run(g, x), run(patched, x)))
    check_plan(patched, plan_memory(patched))
    assert total_macs(patched) - total_macs(g) == pytest.approx(extra_macs_ratio(g, stage) * total_macs(g))


def test_patched_c_equals_reference():
    """The generated C of a patched graph (slices, per-patch layers with border pads, pastes) is exact."""
    g = chain_graph(3, (23, 19), [("conv", 3, 2, "same", "RELU6"), ("dw", 5, 1, "same", "RELU"),
                                  ("max", 3, 2, "valid", "NONE"), ("conv", 1, 1, "same", "NONE")])
    patched = split(g, PatchStage(0, 3, (3, 2)))
    model = HostModel.build(compile_graph(patched, "chain"))
    for x in random_inputs(g, 3, 1):
        assert all(np.array_equal(a, b) for a, b in zip(run(g, x), model.run(x)))


def test_stage_chains_stop_at_branches():
    b = GraphBuilder(seed=0)
    x = b.input((1, 16, 16, 3))
    y = b.conv2d(x, 8, kernel=3, padding="same")
    z = b.depthwise_conv2d(y, kernel=3, padding="same")
    out = b.add(y, z)  # y feeds two ops: the chain ends at y's producer
    g = b.build([out])
    assert (0, 0) in stage_chains(g) and (0, 1) not in stage_chains(g)
    with pytest.raises(ModelError, match="chain"):
        from mcuforge.engine.schedule.patch import check_stage
        check_stage(g, PatchStage(0, 1, (2, 2)))


def test_schedule_strategies_and_cap():
    g = load_model(VWW)
    layer = schedule(g, "layer")
    assert layer.strategy == "layer" and layer.graph is g
    auto = schedule(g, "auto")
    assert auto.strategy == "patch" and auto.plan.arena_bytes < layer.plan.arena_bytes
    assert 0 < auto.extra_macs_ratio <= 0.15
    tight = schedule(g, "patch", max_extra_macs=0.01)
    assert tight.extra_macs_ratio <= 0.01 and tight.plan.arena_bytes >= auto.plan.arena_bytes
    with pytest.raises(ModelError, match="strategy"):
        schedule(g, "fastest")


def test_vww_peak_target():
    """MLPerf VWW: peak SRAM (the int8 input in the arena, as TFLM counts it) <= 0.4 x TFLM's minimum
    arena of 103,680 B (measured with bench/memory.py), within 15 % extra MACs."""
    compiled = compile_model(load_model(VWW), strategy="auto")
    assert compiled.report.arena_bytes <= 0.4 * 103_680
    assert compiled.report.extra_macs_ratio <= 0.15
    check_plan(compiled.graph, compiled.plan)


@pytest.mark.parametrize("model", dev_models(), ids=lambda p: p.stem)
def test_dev_models_bit_exact_patch_strategy(model):
    """Every dev model under the auto strategy (patch-based where it lowers the peak) vs reference and TFLM."""
    graph = load_model(model)
    compiled = compile_model(graph, strategy="auto")
    result = verify(graph, samples=2, tflite_bytes=model.read_bytes(), compiled=compiled)
    assert result.ok, result.mismatches


def test_mcunet_peak_target_with_external_input():
    """MCUNet-vww1 (TinyEngine: 93,992 B): peak <= 47,000 B within 15 % extra MACs, its float input read
    from the caller's buffer (the int8 copy QUANTIZE makes is in the arena)."""
    graph = load_model(MCUNET).with_external_inputs()
    compiled = compile_model(graph, strategy="auto")
    assert compiled.report.arena_bytes <= 47_000 and compiled.report.extra_macs_ratio <= 0.15
    assert compiled.report.external_inputs and compiled.plan.arena_bytes < graph[graph.inputs[0]].nbytes


def test_external_input_reads_the_callers_buffer():
    """With external inputs the arena leaves the input out, and <name>_set_input points the model at the
    caller's own buffer: the same outputs as the reference."""
    import ctypes

    g = chain_graph(5, (20, 20), [("conv", 3, 2, "same", "RELU"), ("dw", 3, 1, "same", "NONE")])
    ext = g.with_external_inputs()
    inside, outside = compile_model(g), compile_model(ext, strategy="auto")
    assert outside.plan.arena_bytes < inside.plan.arena_bytes
    assert g.inputs[0] not in outside.plan.offsets
    model = HostModel.build(outside.lib)
    x = random_inputs(g, 1, 2)[0]
    assert all(np.array_equal(a, b) for a, b in zip(run(g, x), model.run(x)))  # the model's own buffer
    frame = (ctypes.c_int8 * x[0].size)(*x[0].ravel().tolist())
    dll = model._dll
    getattr(dll, "chain_set_input")(0, frame)
    getattr(dll, "chain_invoke")()
    got = np.ctypeslib.as_array(ctypes.cast(getattr(dll, "chain_output")(0), ctypes.POINTER(ctypes.c_int8)),
                                (run(g, x)[0].size,))
    assert np.array_equal(got, run(g, x)[0].ravel())


def test_inspect_plot_and_profiles(tmp_path, capsys):
    from mcuforge.cli import main
    from mcuforge.engine.schedule import layer_profiles

    g = load_model(VWW)
    profiles = layer_profiles(g)
    assert set(profiles) == {"layer", "patch"} and len(profiles["patch"]) == len(g.ops)
    assert max(profiles["patch"]) == schedule(g, "patch").plan.arena_bytes < max(profiles["layer"])
    png = tmp_path / "memory.png"
    assert main(["inspect", str(VWW), "--plot", str(png), "--sram", "40K"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "wrote" in capsys.readouterr().out
