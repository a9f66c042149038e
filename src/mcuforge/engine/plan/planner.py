"""plan_memory: lifetimes -> shared buffers (aliases, in place) -> blocks (+ scratch) -> packing."""
from __future__ import annotations

from types import MappingProxyType

from ...ir import Graph
from .blocks import build_blocks, live_bytes
from .errors import PlanError
from .inplace import share_buffers
from .lifetimes import Lifetime, activation_lifetimes, round_up
from .memory_plan import MemoryPlan
from .packing import pack
from .scratch import scratch_bytes

SEARCH = 200  # local-search steps when no greedy order reaches the lower bound


def plan_memory(graph: Graph, *, align: int = 4, inplace: bool = True, search: int = SEARCH) -> MemoryPlan:
    """Place every activation tensor and kernel scratch of `graph` (ops in execution order) in one arena.

    Aliases (RESHAPE) share their input's bytes; with `inplace`, depthwise convolutions (multiplier 1) and
    elementwise ops write over an input that dies there. Scratch is packed like a tensor living one op.
    When no greedy order reaches the lower bound, up to `search` more orders are tried (0: greedy only);
    if the in-place plan then still packs worse than the plan without in place, the latter is returned
    (in place never raises a step's live bytes, but its shared offsets can pack worse).
    """
    if align < 1:
        raise PlanError(f"alignment must be a positive number of bytes, not {align}")
    lifetimes = activation_lifetimes(graph)
    tensors = graph.tensors
    sizes = {n: max(round_up(tensors[n].nbytes, align), align) for n in lifetimes}
    plan = _plan(graph, lifetimes, sizes, align, inplace, search)
    if plan.inplace_ops and plan.arena_bytes > plan.lower_bound:
        plain = _plan(graph, lifetimes, sizes, align, False, search)
        if plain.arena_bytes < plan.arena_bytes:
            return plain
    return plan


def _plan(graph: Graph, lifetimes: dict[str, Lifetime], sizes: dict[str, int], align: int, inplace: bool,
          search: int) -> MemoryPlan:
    sharing = share_buffers(graph, lifetimes, sizes, inplace)
    blocks = build_blocks(graph, sharing, lifetimes, sizes, align)
    live = live_bytes(blocks, max(len(graph.ops), 1))
    lower_bound = max(live)
    peak_step = live.index(lower_bound)
    packing = pack(blocks, lower_bound, peak_step, search)
    offsets: dict[str, int] = {}
    scratch: dict[int, tuple[int, int]] = {}
    for block, offset in zip(blocks, packing.offsets):
        for name in block.tensors:
            offsets[name] = offset
        if block.scratch_op is not None:
            op = graph.ops[block.scratch_op]
            scratch[block.scratch_op] = (offset, scratch_bytes(op, graph, block.scratch_op in sharing.inplace_ops))
    return MemoryPlan(
        arena_bytes=packing.arena_bytes,
        lower_bound=lower_bound,
        offsets=MappingProxyType(offsets),
        scratch=MappingProxyType(scratch),
        inplace_ops=sharing.inplace_ops,
        live_bytes=tuple(live[:len(graph.ops)]),
        peak_step=peak_step,
        align=align,
    )
