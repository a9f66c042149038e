"""Fused inverted-residual execution: the same bits as layer by layer (reference and generated C, every dev
model against TFLM with every block fused), valid plans, the blocks found, the slices chosen, the targets."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcuforge.cli import main
from mcuforge.engine.compiler import compile_graph
from mcuforge.engine.opinfo import total_macs
from mcuforge.engine.plan import check_plan, plan_memory
from mcuforge.engine.reference import run
from mcuforge.engine.schedule import choose_fusion, fusable_blocks, fuse, layer_profiles, live_profile, schedule
from mcuforge.engine.schedule.fuse import slice_widths
from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, QuantParams
from mcuforge.models.builder import GraphBuilder
from mcuforge.pipeline import Compiled, load_model, memory_report
from mcuforge.targets.host import HostModel, build_executable, run_executable
from mcuforge.verify import random_inputs, verify
from netbuilder import block, mbv2
from oracle import MODELS, dev_models

MCUNET = MODELS / "tinyengine_mcunet_vww_80_int8_floatio.tflite"


def per_tensor(graph: Graph) -> Graph:
    """The graph with every weight tensor quantized per tensor (its first channel's scale for all)."""
    tensors = dict(graph.tensors)
    for op in graph.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = graph[op.inputs[1]]
            tensors[w.name] = replace(w, quant=QuantParams.per_tensor(w.quant.s, 0))
    return replace(graph, tensors=tensors)


def same_bits(a: Graph, b: Graph, seed: int = 0) -> None:
    for x in random_inputs(a, 2, seed):
        for want, got in zip(run(a, x), run(b, x)):
            assert want.dtype == got.dtype and np.array_equal(want, got)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), size=st.integers(4, 14), expand=st.integers(1, 40), out=st.integers(1, 12),
       kernel=st.sampled_from([1, 3, 5, 7]), stride=st.sampled_from([1, 2]), width=st.integers(1, 40),
       activation=st.sampled_from(["NONE", "RELU", "RELU6"]), channel_scales=st.booleans())
def test_fused_block_equals_layer_by_layer(seed, size, expand, out, kernel, stride, width, activation,
                                          channel_scales):
    """Any expansion, slice width (ragged last slices too), kernel, stride, activation, weight scales."""
    b = GraphBuilder(seed)
    x = b.input((1, size, size, 5), scale=1 / 50, zero_point=7)
    g = b.build([block(b, x, expand, out, kernel, stride, activation)], "block")
    g = g if channel_scales else per_tensor(g)
    assert fusable_blocks(g) == [0]
    fused = fuse(g, 0, min(width, expand))
    same_bits(g, fused, seed)
    check_plan(fused, plan_memory(fused))
    assert total_macs(fused) == total_macs(g)
    kinds = [op.kind for op in fused.ops]
    slices = -(-expand // min(width, expand))
    assert kinds.count("CONV_1X1_ACC") == slices and kinds.count("ACC_REQUANTIZE") == 1


def test_fused_c_equals_reference():
    """Generated C for several fused blocks (ragged slices, residuals, a projection with a ReLU) is exact."""
    g = mbv2(3)
    blocks = fusable_blocks(g)
    assert len(blocks) == 3
    fused = g
    for i, width in zip(reversed(blocks), (7, 16, 5)):
        fused = fuse(fused, i, width)
    model = HostModel.build(compile_graph(fused, "fused"))
    for x in random_inputs(g, 3, 1):
        assert all(np.array_equal(a, b) for a, b in zip(run(g, x), model.run(x)))


def test_fused_c_clean_under_sanitizers():
    """The in-place accumulation and requantization read and write inside their buffers."""
    g = mbv2(4, size=12)
    fused = fuse(fuse(g, 8, 11), 5, 48)  # ragged slices; one slice (width = the expanded channels)
    lib = compile_graph(fused, "fused_san")
    exe = build_executable(lib, sanitize=True)
    for x in random_inputs(g, 2, 5):
        assert all(np.array_equal(a, b) for a, b in zip(run(g, x), run_executable(lib, exe, x)))


def test_accumulator_runs_in_place_and_lowers_the_peak():
    """The slices' int32 sums share one buffer, requantized in place; a stride-2 block's peak drops."""
    b = GraphBuilder(0)
    x = b.input((1, 24, 24, 16))
    g = b.build([block(b, x, 96, 24, stride=2)], "block")
    fused = fuse(g, 0, 12)
    plan = plan_memory(fused)
    accs = [op for op in fused.ops if op.kind in ("CONV_1X1_ACC", "ACC_REQUANTIZE")]
    assert len({plan.offsets[op.outputs[0]] for op in accs}) == 1
    # layer by layer: input + the expanded tensor; fused: input + 12x12x24 int32 sums + one slice of E and D
    assert plan_memory(g).lower_bound == 24 * 24 * 16 + 24 * 24 * 96
    assert plan.lower_bound <= 24 * 24 * 16 + 4 * 12 * 12 * 24 + 24 * 24 * 12 + 12 * 12 * 12


def test_blocks_found_and_refused():
    g = mbv2()
    assert fusable_blocks(g) == [1, 5, 8]
    b = GraphBuilder(1)
    x = b.input((1, 8, 8, 4))
    e = b.conv2d(x, 16, 1, activation="RELU6")
    d = b.depthwise_conv2d(e, 3)
    y = b.conv2d(d, 4, 1)
    branchy = b.build([y, e], "branchy")  # the expanded tensor is also an output: not fusable
    assert fusable_blocks(branchy) == []
    b = GraphBuilder(1)
    d = b.depthwise_conv2d(b.conv2d(b.input((1, 8, 8, 4)), 16, 1), 3)
    strided = b.build([b.conv2d(d, 4, 1, stride=2)], "strided")  # a strided projection
    assert fusable_blocks(strided) == []
    with pytest.raises(ModelError, match="not an inverted-residual block"):
        fuse(branchy, 0, 4)
    with pytest.raises(ModelError, match="slice of 65 channels does not fit 48"):
        fuse(g, 1, 65)


def test_partial_sums_that_could_leave_int32_are_not_fused():
    g = mbv2()
    project = g.ops[3]
    bias = g[project.inputs[2]]
    huge = replace(bias, data=np.full(bias.shape, 2**31 - 1000, np.int32))
    assert 1 not in fusable_blocks(replace(g, tensors={**g.tensors, bias.name: huge}))


def test_choose_fusion_takes_the_widest_slices_that_reach_the_target():
    g = mbv2(1, size=32)
    fused, blocks = choose_fusion(g)
    assert blocks and plan_memory(fused).lower_bound < plan_memory(g).lower_bound
    peak = max(live_profile(fused))
    for chosen in blocks:
        wider = [w for w in slice_widths(chosen.expanded) if w > chosen.width]
        if wider:  # the next wider slices would raise the peak
            assert max(live_profile(fuse(g, chosen.layer, wider[-1]))) > peak
    _, every = choose_fusion(g, every=True)
    assert [b.layer for b in every] == fusable_blocks(g)


def test_strategy_fused_and_auto_reports():
    g = mbv2(1, size=32)
    fused = schedule(g, "fused")
    assert fused.strategy == "fused" and fused.extra_macs_ratio == 0
    assert fused.plan.arena_bytes < schedule(g, "layer").plan.arena_bytes
    assert "in" in fused.describe() and "slices of" in fused.describe()
    assert schedule(g, "auto").plan.arena_bytes <= fused.plan.arena_bytes
    with pytest.raises(ModelError, match="no inverted-residual block"):
        schedule(load_model(MODELS / "mlperf_ic_resnet8_int8.tflite"), "fused")


def _every_block_fused(graph: Graph) -> Compiled:
    fused, _ = choose_fusion(graph, every=True)
    plan = plan_memory(fused)
    lib = compile_graph(fused, graph.name, plan=plan)
    return Compiled(fused, plan, lib, memory_report(fused, plan, lib.flash_weights_bytes))


@pytest.mark.parametrize("model", [m for m in dev_models() if fusable_blocks(load_model(m))],
                         ids=lambda p: p.stem)
def test_dev_models_bit_exact_with_every_block_fused(model):
    """Every dev model with blocks, each block in its narrowest slices, against the reference and TFLM."""
    graph = load_model(model)
    compiled = _every_block_fused(graph)
    assert any(op.kind == "CONV_1X1_ACC" for op in compiled.graph.ops)
    result = verify(graph, samples=2, tflite_bytes=model.read_bytes(), compiled=compiled)
    assert result.ok, result.mismatches


def test_mcunet_fused_alone_meets_the_peak_target():
    """MCUNet-vww1 with its input in the caller's buffer: fused blocks alone, no extra MACs, <= 47,000 B
    (TinyEngine: 93,992 B)."""
    graph = load_model(MCUNET).with_external_inputs()
    chosen = schedule(graph, "fused")
    assert chosen.plan.arena_bytes <= 47_000 and chosen.extra_macs_ratio == 0
    check_plan(chosen.graph, chosen.plan)
    profiles = layer_profiles(graph)
    assert max(profiles["fused"]) == chosen.plan.arena_bytes < max(profiles["layer"])
    assert len(profiles["fused"]) == len(graph.ops)


def test_cli_compile_json_names_fused_blocks(tmp_path, capsys):
    b = GraphBuilder(2)
    x = b.input((1, 24, 24, 8))
    g = b.build([block(b, x, 96, 16, stride=2)], "one_block")
    path = tmp_path / "one_block.tflite"
    path.write_bytes(write_tflite(g))
    assert main(["compile", str(path), "-o", str(tmp_path / "out"), "--strategy", "fused", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["strategy"] == "fused"
    assert report["blocks"][0]["strategy"] == "fused" and report["blocks"][0]["slices"] > 1


def test_blocks_sharing_constants_fuse_independently():
    """Two blocks that read the same weight and bias tensors, fused with different slices: each keeps its
    own slices of them."""
    b = GraphBuilder(6)
    x = b.input((1, 10, 10, 8))
    y = b.conv2d(b.depthwise_conv2d(b.conv2d(x, 24, 1, activation="RELU6"), 3, activation="RELU6"), 8, 1)
    one = b.build([b.add(x, y)], "shared")
    z = one.outputs[0]
    # a second copy of the block, on the first one's output, reading the very same constants
    copy = [op.with_(inputs=((z,) if k == 0 else (f"{op.inputs[0]}'",)) + op.inputs[1:],
                     outputs=(f"{op.outputs[0]}'",), name=f"{op.name}'") for k, op in enumerate(one.ops[:3])]
    outs = {f"{op.outputs[0]}'": replace(one[op.outputs[0]], name=f"{op.outputs[0]}'") for op in one.ops[:3]}
    g = replace(one.with_ops(list(one.ops) + copy, {**one.tensors, **outs}), outputs=(copy[-1].outputs[0],))
    assert fusable_blocks(g) == [0, 4]
    same_bits(g, fuse(fuse(g, 4, 5), 0, 7), 2)
