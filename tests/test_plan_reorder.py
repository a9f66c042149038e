"""Operator reordering: valid topological orders, never a higher peak, the optimum on small graphs (against
brute force over every order), the peak worked out by hand on a concat, the same outputs bit for bit."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netbuilder import Net
from oracle import dev_models

from mcuforge.engine.plan import check_plan, plan_memory
from mcuforge.engine.plan.reorder import Reordering, reorder_for_memory
from mcuforge.engine.reference import run
from mcuforge.ir import Graph
from mcuforge.models import GraphBuilder
from mcuforge.pipeline import compile_model, load_model
from mcuforge.targets.host import HostModel
from mcuforge.verify import random_inputs

BRUTE_FORCE_ORDERS = 3000  # graphs with more topological orders are not brute-forced




def random_dag(draw, n_ops: int) -> Graph:
    """A DAG of convs, depthwise, relu, add, concat and reshape; each op reads any earlier tensor.
    `draw(choices)` picks one of a list. Outputs: the tensors nobody reads, sometimes one more."""
    h, w, c = draw([2, 4, 6, 8]), draw([2, 4, 6, 8]), draw([1, 2, 4, 8])
    net = Net((1, h, w, c))
    made = [net.input]
    for _ in range(n_ops):
        x = draw(made)
        kind = draw(["conv", "conv", "dw", "relu", "add", "concat", "reshape"])
        if kind == "conv":
            y = net.conv(x, draw([1, 4, 8, 16, 32]), draw([1, 3]))
        elif kind == "dw":
            y = net.dw(x, stride=draw([1, 2]))
        elif kind == "relu":
            y = net.relu(x)
        elif kind == "add":
            y = net.add(x, draw([m for m in made if net.shape(m) == net.shape(x)]))
        elif kind == "concat":
            y = net.concat([x, draw([m for m in made if net.shape(m)[:3] == net.shape(x)[:3]])])
        else:
            y = net.reshape(x)
        made.append(y)
    read = {n for op in net.ops for n in op.inputs}
    outputs = [m for m in made[1:] if m not in read] + [draw(made[1:])]
    return net.graph(*dict.fromkeys(outputs))


def topological_orders(graph: Graph, limit: int) -> list[tuple[int, ...]] | None:
    """Every order of graph.ops in which each op runs after the ops it reads from; None past `limit`."""
    writer = {n: k for k, op in enumerate(graph.ops) for n in op.outputs}
    preds = [{writer[n] for n in op.inputs if n in writer} for op in graph.ops]
    orders: list[tuple[int, ...]] = []

    def extend(order: list[int]) -> None:
        if len(orders) > limit:
            return
        if len(order) == len(graph.ops):
            orders.append(tuple(order))
            return
        for k in range(len(graph.ops)):
            if k not in order and preds[k] <= set(order):
                extend(order + [k])

    extend([])
    return orders if len(orders) <= limit else None


def in_order(graph: Graph, order: tuple[int, ...]) -> Graph:
    return Graph(graph.tensors, tuple(graph.ops[k] for k in order), graph.inputs, graph.outputs, graph.name)


def assert_valid(original: Graph, r: Reordering) -> None:
    """Same ops, each after the ops it reads from; a valid plan; never a higher peak than the given order."""
    assert sorted(r.order) == list(range(len(original.ops)))
    assert r.graph.ops == tuple(original.ops[k] for k in r.order)
    assert (r.graph.inputs, r.graph.outputs) == (original.inputs, original.outputs)
    written = {n for n in original.inputs}
    writes = {n for op in original.ops for n in op.outputs}
    for op in r.graph.ops:
        assert all(n in written or n not in writes for n in op.inputs if n), f"{op.name} reads too early"
        written.update(op.outputs)
    plan = plan_memory(r.graph)
    check_plan(r.graph, plan)
    assert plan.lower_bound == r.peak <= r.original_peak == plan_memory(original).lower_bound
    assert r.arena_bytes <= r.original_arena_bytes
    if not r.improved:
        assert r.graph is original


# ---------------------------------------------------------------- properties on random graphs

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_dags_reorder_validly_and_optimally(data: st.DataObject) -> None:
    def draw(choices: list) -> object:
        return data.draw(st.sampled_from(choices))

    graph = random_dag(draw, data.draw(st.integers(2, 14)))
    r = reorder_for_memory(graph)
    assert_valid(graph, r)
    orders = topological_orders(graph, BRUTE_FORCE_ORDERS) if len(graph.ops) <= 8 else None
    if orders is not None:
        best = min(plan_memory(in_order(graph, o)).lower_bound for o in orders)
        assert r.peak >= best
        if r.optimal:
            assert r.peak == best


def test_small_dags_match_brute_force() -> None:
    """Graphs of at most 8 ops: the search's peak is the least over every topological order, proven."""
    rng = random.Random(0)
    checked = improved = 0
    while checked < 40:
        graph = random_dag(rng.choice, rng.randint(3, 8))
        orders = topological_orders(graph, BRUTE_FORCE_ORDERS)
        if orders is None or len(orders) < 2:
            continue
        r = reorder_for_memory(graph)
        assert_valid(graph, r)
        assert r.optimal
        assert r.peak == min(plan_memory(in_order(graph, o)).lower_bound for o in orders)
        checked += 1
        improved += r.peak < r.original_peak
    assert improved >= 5  # the random graphs do leave something to gain


def test_exact_limit_falls_back_to_the_beam_search() -> None:
    rng = random.Random(1)
    for _ in range(10):
        graph = random_dag(rng.choice, 12)
        r = reorder_for_memory(graph, exact_limit=0, beam=4)
        assert_valid(graph, r)
        exact = reorder_for_memory(graph)
        assert exact.peak <= r.peak or not exact.optimal


# ---------------------------------------------------------------- a concat worked out by hand

def test_big_branch_first_lowers_the_peak_of_a_concat() -> None:
    """x (8x8x4) feeds a small branch b = conv(x, 32 ch) and a big one a = conv(conv(x, 128 ch), 32 ch);
    concat(a, b). Running the small branch first keeps b live while the big intermediate exists."""
    net = Net((1, 8, 8, 4))
    small = net.conv(net.input, 32)  # the builder's order: the small branch first
    wide = net.conv(net.input, 128)
    big = net.conv(wide, 32)
    graph = net.graph(net.concat([big, small]))
    x, b, a1, a2 = 8 * 8 * 4, 8 * 8 * 32, 8 * 8 * 128, 8 * 8 * 32
    given = b + a1 + a2  # at a2: b and the wide intermediate are live (x died at a1)
    best = x + a1 + a2  # big branch first, at a2: x still waits for the small branch
    assert (given, best) == (12288, 10496)
    r = reorder_for_memory(graph)
    assert_valid(graph, r)
    assert (r.original_peak, r.peak, r.optimal) == (given, best, True)
    assert [graph.ops[k].outputs[0] for k in r.order] == [wide, big, small, graph.outputs[0]]


def test_a_chain_is_left_alone() -> None:
    net = Net((1, 8, 8, 4))
    graph = net.graph(net.relu(net.dw(net.conv(net.input, 8))))
    r = reorder_for_memory(graph)
    assert r.graph is graph and not r.improved and r.optimal


# ---------------------------------------------------------------- same outputs, bit for bit

def inception(seed: int = 0) -> Graph:
    """Two inception blocks (1x1; 1x1-3x3; 1x1-3x3-3x3; maxpool-1x1, concatenated) and a classifier."""
    b = GraphBuilder(seed)
    x = b.conv2d(b.input((1, 16, 16, 8)), 16, 3, activation="RELU")
    for _ in range(2):
        one = b.conv2d(x, 8, 1, activation="RELU")
        three = b.conv2d(b.conv2d(x, 4, 1, activation="RELU"), 8, 3, activation="RELU")
        deep = b.conv2d(b.conv2d(b.conv2d(x, 24, 1, activation="RELU"), 24, 3, activation="RELU"), 8, 3)
        pool = b.conv2d(b.max_pool(x, 3, 1, "same"), 8, 1, activation="RELU")
        x = b.concat([one, three, deep, pool])
    x = b.reshape(b.avg_pool(x, 16, 16), (1, 32))
    return b.build([b.softmax(b.fully_connected(x, 10))], "inception")


def detector(seed: int = 0) -> Graph:
    """A backbone with three taps, each feeding a head of three convolutions (three graph outputs)."""
    b = GraphBuilder(seed)
    x, taps = b.input((1, 32, 32, 3)), []
    for c in (8, 16, 32):
        x = b.conv2d(x, c, 3, stride=2, activation="RELU")
        x = b.conv2d(b.depthwise_conv2d(x, 3, activation="RELU"), 2 * c, 1, activation="RELU")
        taps.append(x)
    heads = []
    for t in taps:
        y = b.conv2d(t, 4 * b.shape(t)[-1], 3, activation="RELU")
        heads.append(b.conv2d(b.conv2d(y, 2 * b.shape(t)[-1], 1, activation="RELU"), 6, 1))
    return b.build(heads, "detector")


@pytest.mark.parametrize("build", [inception, detector])
def test_reordered_graph_computes_the_same_bits(build) -> None:
    graph = build()
    r = reorder_for_memory(graph)
    assert_valid(graph, r)
    assert r.improved and r.peak < r.original_peak and r.optimal
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.integers(-128, 128, graph[graph.inputs[0]].shape).astype(np.int8)
        for want, got in zip(run(graph, [x]), run(r.graph, [x])):
            assert want.dtype == got.dtype and np.array_equal(want, got)


def test_compile_runs_the_reordered_graph() -> None:
    """compile_model plans and generates C for the reordered graph (reported), bit-exact with the model."""
    graph = detector(1)
    r = reorder_for_memory(graph)
    compiled = compile_model(graph, strategy="layer")
    assert compiled.report.arena_bytes == r.arena_bytes < r.original_arena_bytes
    assert "ops reordered" in compiled.report.schedule
    model = HostModel.build(compiled.lib)
    for x in random_inputs(graph, 2, 3):
        assert all(np.array_equal(a, b) for a, b in zip(run(graph, x), model.run(x)))


# ---------------------------------------------------------------- the dev models

@pytest.mark.parametrize("path", dev_models(), ids=lambda p: p.stem)
def test_dev_models_never_get_worse(path) -> None:
    graph = load_model(path)
    r = reorder_for_memory(graph)
    assert_valid(graph, r)
