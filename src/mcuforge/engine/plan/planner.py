"""plan_memory: the live set (lifetimes -> shared buffers, aliases and in place -> blocks with scratch; one
pass, plan.blocks.live_set) -> packing -> each op's kernel (plan.kernels) -> the state buffer."""
from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from ...ir import Graph
from .blocks import Block, LiveSet, live_set
from .errors import PlanError
from .exact import exact_pack
from .kernels import choose_kernels
from .lifetimes import buffer_bytes
from .memory_plan import MemoryPlan
from .packing import Packing, pack
from .scratch import scratch_bytes

SEARCH = 200  # local-search steps when no greedy order reaches the lower bound
EXACT_BLOCKS = 40  # exact=None: the exact method runs on at most this many blocks ...
EXACT_TIME = 2.0  # ... for at most this many seconds (exact=True: `exact_time`, default the same)


def plan_memory(graph: Graph, *, align: int = 4, inplace: bool = True, search: int = SEARCH,
                exact: bool | None = None, exact_time: float = EXACT_TIME) -> MemoryPlan:
    """Place every activation tensor and kernel scratch of `graph` (ops in execution order) in one arena.

    Aliases (RESHAPE) share their input's bytes; with `inplace`, depthwise convolutions (multiplier 1) and
    elementwise ops write over an input that dies there. Scratch is packed like a tensor living one op.
    When no greedy order reaches the lower bound, up to `search` more orders are tried (0: greedy only);
    if the in-place plan then still packs worse than the plan without in place, the latter is returned
    (in place never raises a step's live bytes, but its shared offsets can pack worse).

    When the packing is still above the lower bound, the exact method (a MILP, plan.exact; needs scipy)
    looks for a smaller one or proves there is none, within `exact_time` seconds: with exact=None only for
    at most EXACT_BLOCKS blocks, with True always, with False never. MemoryPlan.optimal says whether the
    arena is proven minimal for the schedule; a search stopped by the time limit may make plans differ
    from run to run.
    """
    if align < 1:
        raise PlanError(f"alignment must be a positive number of bytes, not {align}")
    if exact_time <= 0:
        raise PlanError(f"exact_time must be a positive number of seconds, not {exact_time}")
    plan = _plan(graph, align, inplace, search, exact, exact_time)
    if plan.inplace_ops and plan.arena_bytes > plan.lower_bound:
        plain = _plan(graph, align, False, search, exact, exact_time)
        if plain.arena_bytes < plan.arena_bytes:
            plan = plain
    if not graph.states():
        return plan
    offsets, total = state_layout(graph, align)
    return replace(plan, state_offsets=MappingProxyType(offsets), state_bytes=total)


def state_layout(graph: Graph, align: int = 4) -> tuple[dict[str, int], int]:
    """Offsets of the state tensors in their own buffer (first-use order, each aligned) and its size."""
    offsets, total = {}, 0
    for n in graph.states():
        offsets[n] = total
        total += buffer_bytes(graph[n].nbytes, align)
    return offsets, total


def plan_blocks(graph: Graph, *, align: int = 4, inplace: bool = True) -> list[Block]:
    """The blocks plan_memory packs for `graph` (its first try, with in place as given): for benchmarks."""
    return _live_set(graph, align, inplace).blocks


def _live_set(graph: Graph, align: int, inplace: bool) -> LiveSet:
    return live_set(graph, align, inplace, lambda op, in_place: scratch_bytes(op, graph, in_place))


def _plan(graph: Graph, align: int, inplace: bool, search: int, exact: bool | None, exact_time: float) -> MemoryPlan:
    found = _live_set(graph, align, inplace)
    sharing, blocks, live = found.sharing, found.blocks, found.live
    lower_bound = max(live)
    peak_step = live.index(lower_bound)
    packing = pack(blocks, lower_bound, peak_step, search)
    how, optimal = packing.order_name, packing.arena_bytes <= lower_bound
    if not optimal and (exact or (exact is None and len(blocks) <= EXACT_BLOCKS)):
        found_exact = exact_pack(blocks, lower_bound, exact_time, packing)
        if found_exact is not None:
            packing = Packing(found_exact.offsets, found_exact.arena_bytes, found_exact.name)
            how, optimal = found_exact.name, found_exact.optimal
    offsets: dict[str, int] = {}
    scratch: dict[int, tuple[int, int]] = {}
    for block, offset in zip(blocks, packing.offsets):
        for name in block.tensors:
            offsets[name] = offset
        if block.scratch_op is not None:
            op = graph.ops[block.scratch_op]
            scratch[block.scratch_op] = (offset, scratch_bytes(op, graph, block.scratch_op in sharing.inplace_ops))
    return MemoryPlan(
        kernels=MappingProxyType(choose_kernels(graph, offsets, found.lifetimes, scratch, sharing.inplace_ops)),
        arena_bytes=packing.arena_bytes,
        lower_bound=lower_bound,
        offsets=MappingProxyType(offsets),
        scratch=MappingProxyType(scratch),
        inplace_ops=sharing.inplace_ops,
        live_bytes=tuple(live[:len(graph.ops)]),
        peak_step=peak_step,
        align=align,
        packing=how,
        optimal=optimal,
    )
