"""The memory planner: valid plans (no live overlap, inside the arena, aligned), lower bound, in place."""
from __future__ import annotations

import dataclasses
import glob
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcuforge.engine.plan import MemoryPlan, PlanError, activation_lifetimes, check_plan, plan_memory, scratch_bytes
from mcuforge.engine.plan.blocks import Block, live_bytes
from mcuforge.engine.plan.packing import greedy, neighbours, pack
from mcuforge.engine.plan.scratch import kernel_scratch
from mcuforge.ir import Graph
from mcuforge.operators.conv_2d import pointwise_column_bytes
from netbuilder import Net, random_graphs

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models")


def occupied_bytes(graph: Graph, plan: MemoryPlan, step: int) -> int:
    """Measure of the union of the (aligned) byte ranges live at `step`: what the step really occupies."""
    ranges = []
    for name, life in activation_lifetimes(graph).items():
        if life.start <= step <= life.end:
            size = max(-(-graph[name].nbytes // plan.align) * plan.align, plan.align)
            ranges.append((plan.offsets[name], plan.offsets[name] + size))
    if step in plan.scratch:
        off, n = plan.scratch[step]
        ranges.append((off, off + -(-n // plan.align) * plan.align))
    total, reach = 0, 0
    for lo, hi in sorted(ranges):
        if hi > reach:
            total += hi - max(lo, reach)
            reach = hi
    return total


def alias_class(graph: Graph, name: str) -> set[str]:
    """`name` and every tensor joined to it by RESHAPE ops (the same bytes)."""
    members, grew = {name}, True
    while grew:
        grew = False
        for op in graph.ops:
            if op.kind == "RESHAPE" and (op.inputs[0] in members) != (op.outputs[0] in members):
                members |= {op.inputs[0], op.outputs[0]}
                grew = True
    return members


def in_place_source(graph: Graph, plan: MemoryPlan, index: int) -> str | None:
    op = graph.ops[index]
    return next((n for n in op.inputs if n and not graph[n].is_const
                 and plan.offsets[n] == plan.offsets[op.outputs[0]]), None)


# ---------------------------------------------------------------- (a) properties on random graphs

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(), st.sampled_from([1, 4, 8]), st.booleans())
def test_random_graphs_plan_validly(graph: Graph, align: int, inplace: bool) -> None:
    plan = plan_memory(graph, align=align, inplace=inplace)
    check_plan(graph, plan)
    assert plan.arena_bytes >= plan.lower_bound == max(plan.live_bytes) == plan.live_bytes[plan.peak_step]
    assert set(plan.offsets) == set(graph.activations())
    assert all(off % align == 0 for off in plan.offsets.values())
    for step in range(len(graph.ops)):
        assert occupied_bytes(graph, plan, step) == plan.live_bytes[step]
    if not inplace:  # no in-place op; scratch only for convolution columns and depthwise planes (where they fit)
        assert not plan.inplace_ops
        choices = [kernel_scratch(graph.ops[i], graph, False) for i in plan.scratch]
        assert all(c.variant in ("im2col4", "im2col", "column") or (c.variant == "rows" and c.plane and not c.ring_rows)
                   for c in choices)
    # the planner drops in place altogether when the plain plan packs smaller (in place packed badly)
    fell_back = inplace and not plan.inplace_ops and plan == plan_memory(graph, align=align, inplace=False)
    for i in plan.inplace_ops:
        op = graph.ops[i]
        src = in_place_source(graph, plan, i)
        assert src is not None, op
        assert graph.consumers(src)[-1] == i and src not in graph.outputs
        if op.kind == "DEPTHWISE_CONV_2D":
            assert src == op.inputs[0] and plan.scratch[i][1] == scratch_bytes(op, graph, True) > 0
    for i, op in enumerate(graph.ops):
        if op.kind == "RESHAPE":
            assert plan.offsets[op.inputs[0]] == plan.offsets[op.outputs[0]]
        if op.kind == "DEPTHWISE_CONV_2D" and inplace and i not in plan.inplace_ops and not fell_back:
            same_bytes = alias_class(graph, op.inputs[0])
            assert any(n in graph.outputs or max(graph.consumers(n), default=-1) > i for n in same_bytes), \
                f"depthwise op {i} could have run in place"


@settings(max_examples=100, deadline=None)
@given(random_graphs())
def test_in_place_never_raises_the_lower_bound(graph: Graph) -> None:
    """In place never needs more at the peak; at other steps a fast kernel may use the slack (e.g. a
    depthwise plane larger than the ring of rows), so single steps may hold more."""
    with_inplace, without = plan_memory(graph), plan_memory(graph, inplace=False)
    assert with_inplace.lower_bound <= without.lower_bound


# ---------------------------------------------------------------- (b) check_plan catches bad plans

def _chain() -> tuple[Graph, dict[str, str]]:
    net = Net((1, 8, 8, 4))
    a = net.conv(net.input, 8)
    b = net.dw(a)
    c = net.conv(b, 4)
    return net.graph(c), {"x": net.input, "a": a, "b": b, "c": c}


def test_check_plan_catches_overlapping_live_tensors() -> None:
    g, t = _chain()
    plan = plan_memory(g)
    bad = dataclasses.replace(plan, offsets={**plan.offsets, t["x"]: plan.offsets[t["a"]]})
    with pytest.raises(PlanError, match=f"'{t['x']}'.*'{t['a']}'|'{t['a']}'.*'{t['x']}'"):
        check_plan(g, bad)


def test_check_plan_catches_scratch_over_a_live_tensor() -> None:
    g, t = _chain()
    plan = plan_memory(g)
    bad = dataclasses.replace(plan, scratch={1: (plan.offsets[t["a"]], plan.scratch[1][1])})
    with pytest.raises(PlanError, match="scratch of op 1"):
        check_plan(g, bad)


def test_check_plan_catches_outside_arena_and_misaligned() -> None:
    g, t = _chain()
    plan = plan_memory(g)
    with pytest.raises(PlanError, match="outside the arena"):
        check_plan(g, dataclasses.replace(plan, offsets={**plan.offsets, t["c"]: plan.arena_bytes - 4}))
    with pytest.raises(PlanError, match="alignment"):
        check_plan(g, dataclasses.replace(plan, offsets={**plan.offsets, t["c"]: plan.offsets[t["c"]] + 2}))
    with pytest.raises(PlanError, match="no offset"):
        check_plan(g, dataclasses.replace(plan, offsets={k: v for k, v in plan.offsets.items() if k != t["b"]}))


def test_check_plan_catches_missing_scratch_and_bogus_in_place() -> None:
    g, t = _chain()
    plan = plan_memory(g)
    with pytest.raises(PlanError, match="scratch"):
        check_plan(g, dataclasses.replace(plan, scratch={}))
    with pytest.raises(PlanError, match="in place"):  # a 1x1 conv has no in-place kernel
        check_plan(g, dataclasses.replace(plan, inplace_ops=plan.inplace_ops | {2}))


def test_check_plan_catches_in_place_over_an_input_read_later() -> None:
    net = Net((1, 6, 6, 8))
    y = net.dw(net.input)
    z = net.add(y, net.input)  # the depthwise input is read again: it may not be overwritten
    g = net.graph(z)
    plan = plan_memory(g)
    bad = dataclasses.replace(plan, offsets={**plan.offsets, y: plan.offsets[net.input]},
                              inplace_ops=frozenset({0}), scratch={0: (plan.arena_bytes, 36)})
    bad = dataclasses.replace(bad, arena_bytes=plan.arena_bytes + 36)
    with pytest.raises(PlanError, match="overlap"):
        check_plan(g, bad)


# ---------------------------------------------------------------- (c) specific cases

def test_chain_with_in_place_depthwise_has_the_predicted_arena() -> None:
    g, t = _chain()  # x 256 B -> conv -> a 512 -> dw (in place) -> b 512 -> conv -> c 256
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.inplace_ops == {1}
    assert plan.offsets[t["a"]] == plan.offsets[t["b"]]
    assert plan.scratch == {1: (plan.scratch[1][0], 128)}  # a ring of two output rows (8 x 8 channels)
    assert plan.live_bytes == (256 + 512, 512 + 128, 512 + 256)
    assert plan.arena_bytes == plan.lower_bound == 768
    plain = plan_memory(g, inplace=False)
    assert plain.live_bytes == (768, 1024, 768) and plain.arena_bytes == 1024


def test_strided_in_place_depthwise_shrinks_its_buffer() -> None:
    net = Net((1, 8, 8, 8))
    a = net.dw(net.input, stride=2)  # 512 B in, 128 B out, over the input
    b = net.conv(a, 16)  # 256 B
    g = net.graph(b)
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.inplace_ops == {0} and plan.offsets[a] == plan.offsets[net.input]
    # the 1x1 conv also gets its column scratch (it fits under the peak)
    assert plan.live_bytes == (512 + 16, 128 + 256 + pointwise_column_bytes(8))
    assert plan.arena_bytes == 528


def test_depthwise_whose_input_is_read_later_is_not_in_place() -> None:
    net = Net((1, 6, 6, 8))
    y = net.dw(net.input)
    z = net.add(y, net.input)
    g = net.graph(z)
    plan = plan_memory(g)
    check_plan(g, plan)
    assert 0 not in plan.inplace_ops and 0 not in plan.scratch
    assert plan.offsets[y] != plan.offsets[net.input]
    assert 1 in plan.inplace_ops  # the add writes over one of its dying inputs


def test_depthwise_over_a_graph_output_or_with_multiplier_is_not_in_place() -> None:
    net = Net((1, 6, 6, 8))
    a = net.conv(net.input, 8)
    b = net.dw(a)
    g = net.graph(b, a)
    plan = plan_memory(g)
    check_plan(g, plan)
    assert not plan.inplace_ops
    op = g.ops[1].with_(attrs={**g.ops[1].attrs, "multiplier": 2})
    g2 = g.with_ops([g.ops[0], op])
    g2 = Graph(g2.tensors, g2.ops, g2.inputs, (b,))
    assert 1 not in plan_memory(g2).inplace_ops


def test_reshape_shares_offsets() -> None:
    net = Net((1, 4, 4, 8))
    a = net.conv(net.input, 8)
    r = net.reshape(a, (1, 128))
    r2 = net.reshape(r, (1, 2, 8, 8))
    d = net.dw(r2)  # in place over the whole alias chain, which dies here
    g = net.graph(d)
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.offsets[a] == plan.offsets[r] == plan.offsets[r2] == plan.offsets[d]
    assert plan.inplace_ops == {3}
    assert plan.live_bytes[1] == 128  # the alias costs nothing


def test_reshape_read_later_blocks_in_place() -> None:
    net = Net((1, 4, 4, 8))
    a = net.conv(net.input, 8)
    r = net.reshape(a, (1, 4, 4, 8))
    d = net.dw(a)
    s = net.add(d, r)  # the alias of the depthwise input is read after it
    g = net.graph(s)
    plan = plan_memory(g)
    check_plan(g, plan)
    assert 2 not in plan.inplace_ops


def test_graph_output_is_alive_to_the_end() -> None:
    net = Net((1, 8, 8, 4))
    early = net.conv(net.input, 4)
    big = net.conv(early, 32)
    last = net.conv(big, 2)
    g = net.graph(last, early)
    plan = plan_memory(g)
    check_plan(g, plan)
    assert activation_lifetimes(g)[early].end == len(g.ops) - 1
    assert plan.live_bytes[-1] == 256 + 2048 + 128  # early still held while the last conv runs
    lo, hi = plan.offsets[early], plan.offsets[early] + 256
    for name in (big, last):
        assert plan.offsets[name] >= hi or plan.offsets[name] + g[name].nbytes <= lo


def test_quantize_writes_over_its_float_input_but_dequantize_does_not() -> None:
    net = Net((1, 10, 10, 3), "float32")
    q = net.quantize(net.input)  # 1200 B float -> 300 B int8, in place
    c = net.conv(q, 8)  # 800 B
    f = net.dequantize(c)  # 3200 B float: wider, not in place
    g = net.graph(f)
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.inplace_ops == {0} and plan.offsets[q] == plan.offsets[net.input]
    assert plan.live_bytes == (1200, 300 + 800 + pointwise_column_bytes(3), 800 + 3200)
    assert plan.arena_bytes == plan.lower_bound == 4000


def test_packing_beats_greedy_by_size_when_lowest_offsets_mislead() -> None:
    # Greedy by size puts the big-then-small buffer at 0; the 384 B block then sits at 112 and the last
    # block goes on top (832 B). The optimum (720 B = the lower bound) stacks the 336 B block under it.
    blocks = [Block(("a",), None, 0, 2, (448, 112, 112)), Block(("b",), None, 2, 5, (384,) * 4),
              Block(("c",), None, 5, 6, (336, 336))]
    lower_bound = max(live_bytes(blocks, 7))
    assert lower_bound == 720
    assert pack(blocks, lower_bound, 5).arena_bytes == 720
    offsets, arena = greedy([0, 1, 2], blocks, neighbours(blocks), False, 1 << 62)
    assert arena == 832


def test_plans_are_deterministic() -> None:
    g, _ = _chain()
    assert plan_memory(g) == plan_memory(g)


def test_empty_and_tiny_graphs() -> None:
    net = Net((1, 3))
    g = net.graph(net.input)
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.offsets == {net.input: 0} and plan.arena_bytes == 4


def test_ops_out_of_order_are_rejected() -> None:
    net = Net((1, 4, 4, 4))
    a = net.relu(net.input)
    b = net.relu(a)
    g = net.graph(b)
    with pytest.raises(PlanError, match="execution order"):
        plan_memory(Graph(g.tensors, tuple(reversed(g.ops)), g.inputs, g.outputs))


# ---------------------------------------------------------------- (d) the reference models

TARGETS = {  # arena we must not exceed: TFLM's 'head' (bench/memory.py, pip tflite-micro, x86-64),
    # and for two models the tighter bounds (0.6 x TFLM's 103,680 B; TinyEngine's 93,992 B)
    "ambiq_har_conv1d_int8.tflite": 50_688,
    "mlperf_ad_fc_autoencoder_int8.tflite": 768,
    "mlperf_ic_resnet8_int8.tflite": 49_152,
    "mlperf_kws_dscnn_int8.tflite": 16_000,
    "mlperf_vww_mobilenetv1_025_96_int8.tflite": 62_208,
    "st_har_gmp_wl24_wisdm_int8_floatio.tflite": 1_728,
    "tflm_hello_world_int8.tflite": 32,
    "tflm_micro_speech_int8.tflite": 5_968,
    "tinyengine_mcunet_vww_80_int8_floatio.tflite": 93_991,
}


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(MODELS, "*.tflite"))), ids=os.path.basename)
def test_reference_models(path: str) -> None:
    reader = pytest.importorskip("mcuforge.frontends.tflite_reader")
    with open(path, "rb") as f:
        graph = reader.read_tflite(f.read())
    t0 = time.perf_counter()
    plan = plan_memory(graph)
    ms = (time.perf_counter() - t0) * 1e3
    check_plan(graph, plan)
    plain = plan_memory(graph, inplace=False)
    check_plan(graph, plain)
    name = os.path.basename(path)
    print(f"\n{name}: {len(graph.ops)} ops, arena {plan.arena_bytes} B, lower bound {plan.lower_bound} B "
          f"(peak at op {plan.peak_step}), {len(plan.inplace_ops)} in place; without in place "
          f"{plain.arena_bytes} B; planned in {ms:.2f} ms")
    assert plan.arena_bytes >= plan.lower_bound
    assert plan.arena_bytes <= plain.arena_bytes
    if name in TARGETS:
        assert plan.arena_bytes <= TARGETS[name]
