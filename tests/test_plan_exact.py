"""Exact packing (plan/exact.py): never worse than the heuristic nor below the lower bound, valid (checked
step by step, independently of packing.neighbours), and optimal: equal to a brute force over first-fit
orders on tiny instances (some order's first fit reaches the optimum: packing._improve)."""
from __future__ import annotations

import itertools
import random
import sys

import pytest
from hypothesis import HealthCheck, given, settings

from mcuforge.engine.plan import MemoryPlan, PlanError, check_plan, plan_memory, planner
from mcuforge.engine.plan.blocks import Block, live_bytes
from mcuforge.engine.plan.exact import EXACT, exact_pack
from mcuforge.engine.plan.packing import pack
from netbuilder import Net, random_graphs

pytest.importorskip("scipy.optimize")


def random_blocks(rng: random.Random, n: int, steps: int, flat: float = 0.6) -> list[Block]:
    """Few sizes and spans, so that twins (identical blocks) and flat instances are common."""
    blocks = []
    for _ in range(n):
        start = rng.randrange(steps)
        end = min(steps - 1, start + rng.randrange(4))
        if rng.random() < flat:
            footprint = (rng.choice([4, 8, 12, 20, 28, 44]),) * (end - start + 1)
        else:
            footprint = tuple(sorted((4 * rng.randint(1, 12) for _ in range(end - start + 1)), reverse=True))
        blocks.append(Block(("t",), None, start, end, footprint))
    return blocks


def bound(blocks: list[Block]) -> int:
    return max(live_bytes(blocks, max(b.end for b in blocks) + 1))


def heuristic(blocks: list[Block], search: int = 200):
    live = live_bytes(blocks, max(b.end for b in blocks) + 1)
    return pack(blocks, max(live), live.index(max(live)), search)


def overlaps(a: Block, x: int, b: Block, y: int) -> bool:
    for t in range(max(a.start, b.start), min(a.end, b.end) + 1):
        fa, fb = a.footprint[t - a.start], b.footprint[t - b.start]
        if x < y + fb and y < x + fa:
            return True
    return False


def assert_valid(blocks: list[Block], offsets: tuple[int, ...], arena: int) -> None:
    assert len(offsets) == len(blocks)
    for b, x in zip(blocks, offsets):
        assert 0 <= x and x + b.peak <= arena
    assert arena == max((x + b.peak for b, x in zip(blocks, offsets)), default=0)
    for i, j in itertools.combinations(range(len(blocks)), 2):
        assert not overlaps(blocks[i], offsets[i], blocks[j], offsets[j]), (i, j, offsets)


def brute_force(blocks: list[Block]) -> int:
    """Smallest arena over all orders, each placed by first fit (own implementation, step by step)."""
    best = 1 << 62
    for order in itertools.permutations(range(len(blocks))):
        placed: list[tuple[Block, int]] = []
        for i in order:
            b = blocks[i]
            tops = sorted({0} | {y + f for a, y in placed for f in a.footprint})
            x = next(x for x in tops if not any(overlaps(b, x, a, y) for a, y in placed))
            placed.append((b, x))
        best = min(best, max(x + b.peak for b, x in placed))
    return best


def test_exact_equals_brute_force_on_tiny_instances() -> None:
    """60 random instances, then 40 more where greedy first fit by size is above the lower bound."""
    rng = random.Random(3)
    checked = above_bound = solved = 0
    while solved < 40:  # the last ones flat: the MILP then also breaks the mirror symmetry
        blocks = random_blocks(rng, rng.randint(1, 6), rng.randint(1, 5), 0.6 if solved < 30 else 1.0)
        lb, heur = bound(blocks), heuristic(blocks, search=0)
        if checked >= 60 and heur.arena_bytes == lb:
            continue
        found = exact_pack(blocks, lb, 10.0, heur)
        best = brute_force(blocks)
        assert found.optimal and found.arena_bytes == found.proven_bound == best
        assert lb <= found.arena_bytes <= heur.arena_bytes
        assert_valid(blocks, found.offsets, found.arena_bytes)
        checked += 1
        solved += heur.arena_bytes > lb
        above_bound += best > lb
    assert above_bound >= 5  # some optima lie above the lower bound: the MILP proved them


def test_exact_is_valid_and_never_worse_than_the_heuristic() -> None:
    rng = random.Random(11)
    for _ in range(12):
        blocks = random_blocks(rng, rng.randint(12, 30), rng.randint(4, 8))
        lb, heur = bound(blocks), heuristic(blocks)
        found = exact_pack(blocks, lb, 1.0, heur)
        assert lb <= found.proven_bound <= found.arena_bytes <= heur.arena_bytes
        assert_valid(blocks, found.offsets, found.arena_bytes)
        assert found.name == EXACT or found.offsets == heur.offsets


# A graph's blocks (bench/packing.py's random graph 12/1655): every greedy order and 200 steps of local
# search stop at 1112 B; the lower bound 960 B is reachable.
GAP = [Block(("a",), None, 0, 5, (240,) * 6), Block(("b",), None, 1, 10, (240,) * 7 + (60,) * 3),
       Block(("c",), None, 2, 11, (240,) * 10), Block(("d",), None, 3, 3, (240,)),
       Block(("e",), None, 10, 11, (660, 660)), Block((), 1, 1, 1, (392,)), Block((), 7, 7, 7, (220,)),
       Block((), 9, 9, 9, (80,))]


def test_exact_reaches_the_bound_where_the_heuristic_does_not() -> None:
    heur = heuristic(GAP)
    assert bound(GAP) == 960 < heur.arena_bytes == 1112
    found = exact_pack(GAP, 960, 5.0, heur)
    assert found.arena_bytes == found.proven_bound == 960 and found.optimal and found.name == EXACT
    assert_valid(GAP, found.offsets, 960)
    assert exact_pack(GAP, 960, 5.0).arena_bytes == 960  # its own incumbent (first fit by size)


def test_exact_proves_an_optimum_above_the_bound() -> None:
    # bench/packing.py's random graph 10/1640: the lower bound is 720 B, yet no packing beats 740 B
    blocks = [Block((), None, 0, 9, (504,) * 4 + (140,) * 6), Block((), None, 0, 9, (72, 72) + (24,) * 8),
              Block((), None, 2, 7, (8,) * 6), Block((), None, 4, 9, (264,) * 6),
              Block((), None, 6, 9, (264,) * 4), Block((), None, 7, 8, (20, 20)), Block((), 1, 1, 1, (8,)),
              Block((), 2, 2, 2, (112,)), Block((), 3, 3, 3, (28,)), Block((), 4, 4, 4, (152,)),
              Block((), 8, 8, 8, (4,))]
    assert bound(blocks) == 720
    found = exact_pack(blocks, 720, 10.0, heuristic(blocks))
    assert found.arena_bytes == found.proven_bound == 740 and found.optimal
    assert_valid(blocks, found.offsets, 740)


def gap_graph():
    """The graph GAP comes from: the heuristic packs 1112 B, the optimum is the lower bound, 960 B."""
    net = Net((1, 12, 10, 2))
    t1 = net.add(net.input, net.input)
    t4 = net.dw(t1, 3)
    t7 = net.dw(t4, 5)
    net.relu(t7)
    t9 = net.add(t7, t7)
    net.reshape(t1, (1, 10, 12, 2))
    t11 = net.add(t9, t4)
    t14 = net.dw(t11, 1, 2)
    t15 = net.reshape(t14, (1, 5, 6, 2))
    t18 = net.dw(t15, 1)
    t21 = net.conv(t18, 22, 3)
    return net.graph(net.relu(t21), t9)


def test_plan_memory_exact_on_a_graph() -> None:
    graph = gap_graph()
    heur = plan_memory(graph, exact=False)
    check_plan(graph, heur)
    assert heur.arena_bytes > heur.lower_bound == 960 and not heur.optimal and heur.packing != EXACT
    for exact in (True, None):  # None: 8 blocks, few enough for the automatic mode
        plan = plan_memory(graph, exact=exact)
        check_plan(graph, plan)
        assert plan.arena_bytes == plan.lower_bound == 960 and plan.optimal and plan.packing == EXACT
        assert plan.live_bytes == heur.live_bytes and plan.inplace_ops == heur.inplace_ops


def test_automatic_mode_skips_many_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = gap_graph()
    monkeypatch.setattr(planner, "EXACT_BLOCKS", 7)
    assert plan_memory(graph) == plan_memory(graph, exact=False)
    assert plan_memory(graph, exact=True).arena_bytes == 960


def test_without_scipy_the_heuristic_plan_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = gap_graph()
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # import fails
    assert exact_pack(GAP, 960, 1.0) is None
    assert plan_memory(graph, exact=True) == plan_memory(graph, exact=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_exact_plans_of_random_graphs_are_valid(graph) -> None:
    heur = plan_memory(graph, exact=False)
    plan = plan_memory(graph, exact=True, exact_time=1.0)
    check_plan(graph, plan)
    assert plan.lower_bound <= plan.arena_bytes <= heur.arena_bytes
    assert heur.optimal == (heur.arena_bytes == heur.lower_bound)
    if plan.arena_bytes == plan.lower_bound:
        assert plan.optimal


def test_at_the_bound_nothing_is_solved() -> None:
    blocks = [Block(("a",), None, 0, 1, (8, 8)), Block(("b",), None, 1, 2, (4, 4))]
    found = exact_pack(blocks, 12, 1.0, heuristic(blocks))
    assert found.optimal and found.arena_bytes == 12 and found.seconds == 0.0 and found.name != EXACT
    assert exact_pack([], 0).arena_bytes == 0


def test_bad_arguments_raise_plan_errors() -> None:
    with pytest.raises(PlanError, match="time limit"):
        exact_pack(GAP, 960, 0.0)
    with pytest.raises(PlanError, match="offsets"):
        exact_pack(GAP, 960, 1.0, heuristic(GAP[:3]))
    with pytest.raises(PlanError, match="exact_time"):
        plan_memory(gap_graph(), exact_time=-1)


def test_memory_plan_keeps_its_old_fields_and_defaults() -> None:
    plan = MemoryPlan(8, 8, {"x": 0}, {}, frozenset(), (8,), 0)
    assert plan.align == 4 and plan.packing == "" and not plan.optimal
    assert "optimal" in plan_memory(gap_graph(), exact=True).summary()
