"""Kernel scratch: bytes an op's kernel needs for itself while it runs (and only then).

The planner packs each op's scratch into the arena as a tensor that lives for that op alone, so it fills a
gap instead of adding a region. What an operator's kernel needs is the operator's own fact
(mcuforge.operators): a fixed number of bytes (Operator.scratch) or variants (Operator.variants: the
smallest first, then faster ones that need more, fastest first; the convolutions' modules describe theirs).

Which variant runs is decided here, once: a fast one only where its scratch does not raise the model's
lower bound, i.e. the live bytes at that op, with its extra scratch, stay within the largest live set of
the plan that gives every op its smallest scratch. The choice is recorded in the plan
(MemoryPlan.kernels) and the code generator prints it.
"""
from __future__ import annotations

import weakref
from typing import Callable, Iterator

from ...ir import Graph, Op
from ...operators.variants import NO_SCRATCH, KernelScratch, Variant
from .blocks import live_set

SLACK_MARGIN = 64  # bytes of alignment padding the live-set estimate may miss

# kind -> its kernel's scratch variants (Operator.variants, or one fixed Operator.scratch), entered by install()
VARIANTS: dict[str, Callable[[Op, Graph, bool], Iterator[KernelScratch]]] = {}


def fixed_scratch(rule: Callable[[Op, Graph], int]) -> Callable[[Op, Graph, bool], Iterator[KernelScratch]]:
    """The one variant of a kernel whose scratch is a fixed number of bytes (Operator.scratch)."""

    def variants(op: Op, graph: Graph, inplace: bool) -> Iterator[KernelScratch]:
        yield KernelScratch(Variant.PLAIN, rule(op, graph))

    return variants


def scratch_bytes(op: Op, graph: Graph, inplace: bool) -> int:
    """Scratch bytes of `op`'s kernel; `inplace` says whether its output is placed over its input."""
    return kernel_scratch(op, graph, inplace).nbytes


def kernel_scratch(op: Op, graph: Graph, inplace: bool) -> KernelScratch:
    """The scratch variant of `op`'s kernel (the code generator follows the same choice)."""
    rule = VARIANTS.get(op.kind)
    if rule is None:
        return NO_SCRATCH
    cache = _cache(graph)
    key = (id(op), inplace)
    if key not in cache:
        options = rule(op, graph, inplace)
        minimal = next(options)
        choice = minimal
        for fast in options:  # fastest first
            if fast.nbytes <= minimal.nbytes or _fits(op, graph, inplace, fast.nbytes - minimal.nbytes):
                choice = fast
                break
        cache[key] = choice
    return cache[key]


def peak_scratch(op: Op, graph: Graph, inplace: bool) -> int:
    """Scratch bytes of `op`'s kernel at a step where no extra scratch fits under the peak: the first fast
    variant needing no more than the smallest, else the smallest (as kernel_scratch chooses there)."""
    rule = VARIANTS.get(op.kind)
    if rule is None:
        return 0
    options = rule(op, graph, inplace)
    minimal = next(options).nbytes
    return next((f.nbytes for f in options if f.nbytes <= minimal), minimal)


def _minimal(op: Op, graph: Graph, inplace: bool) -> int:
    rule = VARIANTS.get(op.kind)
    return next(rule(op, graph, inplace)).nbytes if rule is not None else 0


# ------------------------------------------------------------------ does the extra scratch fit?

_CACHE: weakref.WeakKeyDictionary[Graph, dict[object, object]] = weakref.WeakKeyDictionary()


def _cache(graph: Graph) -> dict[object, object]:
    """Per-graph memo of the choices and live sets (graphs are immutable; the planner asks several times)."""
    return _CACHE.setdefault(graph, {})


def _fits(op: Op, graph: Graph, inplace: bool, extra: int) -> bool:
    index = next((i for i, o in enumerate(graph.ops) if o is op), None)
    if index is None:
        return False
    live, peak, inplace_ops = _base_live(graph, True)
    if not inplace and index in inplace_ops:  # asked for the plan without in-place ops
        live, peak, _ = _base_live(graph, False)
    return live[index] + extra + SLACK_MARGIN <= peak


def _base_live(graph: Graph, inplace: bool) -> tuple[list[int], int, frozenset[int]]:
    """Live bytes per step when every op gets its smallest scratch (as the planner counts them)."""
    cache = _cache(graph)
    key = ("live", inplace)
    if key not in cache:
        found = live_set(graph, 4, inplace, lambda op, in_place: _minimal(op, graph, in_place))
        cache[key] = (found.live, max(found.live), found.sharing.inplace_ops)
    return cache[key]  # type: ignore[return-value]
