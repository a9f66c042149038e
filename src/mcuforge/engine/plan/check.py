"""check_plan: an independent check that a memory plan is valid for its graph.

It recomputes lifetimes from the graph (not from the planner's buffers) and verifies that every activation
and scratch region lies inside the arena at an aligned offset, that every in-place op is one its kernel can
run, and that no two regions live at the same step overlap, except aliases (RESHAPE: the same bytes) and
an in-place op's input and output at that op's own step.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir import ALIAS_KINDS, Graph
from ...errors import shown
from .errors import PlanError
from .inplace import inplace_candidates
from .lifetimes import Lifetime, activation_lifetimes
from .memory_plan import MemoryPlan
from .scratch import scratch_bytes


@dataclass(frozen=True)
class _Region:
    label: str
    alias_class: str  # regions of one class are the same bytes by construction
    life: Lifetime
    lo: int
    hi: int  # exclusive

    def describe(self) -> str:
        return f"{self.label} (bytes {self.lo}..{self.hi}, ops {self.life.start}..{self.life.end})"


def _alias_classes(graph: Graph, lifetimes: dict[str, Lifetime]) -> dict[str, str]:
    parent = {n: n for n in lifetimes}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    for op in graph.ops:
        if op.kind in ALIAS_KINDS and op.inputs[0] in parent and op.outputs[0] in parent:
            a, b = root(op.inputs[0]), root(op.outputs[0])
            if a != b:
                parent[b] = a
    return {n: root(n) for n in lifetimes}


def _region(plan: MemoryPlan, label: str, alias_class: str, life: Lifetime, offset: int, nbytes: int) -> _Region:
    if offset % plan.align:
        raise PlanError(f"{label} is at offset {offset}, not a multiple of the alignment {plan.align}")
    if offset < 0 or offset + nbytes > plan.arena_bytes:
        raise PlanError(f"{label} (bytes {offset}..{offset + nbytes}) lies outside the arena of "
                        f"{plan.arena_bytes} bytes")
    return _Region(label, alias_class, life, offset, offset + nbytes)


def _regions(graph: Graph, plan: MemoryPlan, lifetimes: dict[str, Lifetime],
             classes: dict[str, str]) -> list[_Region]:
    regions = []
    for name, life in lifetimes.items():
        if name not in plan.offsets:
            raise PlanError(f"activation tensor {shown(name)} has no offset in the memory plan")
        regions.append(_region(plan, f"tensor {name!r}", classes[name], life, plan.offsets[name],
                               graph.tensors[name].nbytes))
    for i, op in enumerate(graph.ops):
        need = scratch_bytes(op, graph, i in plan.inplace_ops)
        if need and (i not in plan.scratch or plan.scratch[i][1] < need):
            raise PlanError(f"op {i} ({shown(op.name)}) needs {need} bytes of scratch, the plan gives "
                            f"{plan.scratch.get(i, (0, 0))[1]}")
    for i, (offset, nbytes) in plan.scratch.items():
        if not 0 <= i < len(graph.ops):
            raise PlanError(f"scratch planned for op {i}, which the graph does not have")
        label = f"scratch of op {i} ({graph.ops[i].name!r})"
        regions.append(_region(plan, label, label, Lifetime(i, i), offset, nbytes))
    return regions


def _inplace_pairs(graph: Graph, plan: MemoryPlan, classes: dict[str, str]) -> dict[frozenset[str], int]:
    """For each in-place op: the alias classes of its overwritten input and its output -> the op's index."""
    pairs: dict[frozenset[str], int] = {}
    for k in sorted(plan.inplace_ops):
        if not 0 <= k < len(graph.ops):
            raise PlanError(f"op {k} is marked in place but the graph has {len(graph.ops)} ops")
        op = graph.ops[k]
        out = op.outputs[0] if op.outputs else ""
        sources = [n for n in inplace_candidates(op, graph) if plan.offsets.get(n) == plan.offsets.get(out)]
        if not sources:
            raise PlanError(f"op {k} ({shown(op.name)}, {op.kind}) is marked in place, but no input its kernel "
                            "may overwrite starts at its output's offset")
        pairs[frozenset((classes[sources[0]], classes[out]))] = k
    return pairs


def _allowed(a: _Region, b: _Region, pairs: dict[frozenset[str], int]) -> bool:
    if a.alias_class == b.alias_class:
        return True
    k = pairs.get(frozenset((a.alias_class, b.alias_class)))
    return k is not None and max(a.life.start, b.life.start) == k == min(a.life.end, b.life.end)


def check_plan(graph: Graph, plan: MemoryPlan) -> None:
    """Raise PlanError naming the culprits if `plan` is not a valid memory plan of `graph`."""
    if plan.align < 1:
        raise PlanError(f"alignment {plan.align} is not a positive number of bytes")
    if plan.arena_bytes < plan.lower_bound:
        raise PlanError(f"arena of {plan.arena_bytes} bytes is below the plan's own lower bound "
                        f"{plan.lower_bound}: the live-set accounting is wrong")
    lifetimes = activation_lifetimes(graph)
    classes = _alias_classes(graph, lifetimes)
    regions = _regions(graph, plan, lifetimes, classes)
    pairs = _inplace_pairs(graph, plan, classes)
    regions.sort(key=lambda r: r.lo)
    active: list[_Region] = []
    for r in regions:
        if r.hi == r.lo:
            continue
        active = [a for a in active if a.hi > r.lo]
        for a in active:
            if a.life.overlaps(r.life) and not _allowed(a, r, pairs):
                step = max(a.life.start, r.life.start)
                raise PlanError(f"{a.describe()} and {r.describe()} overlap while both are live at op {step} "
                                f"({graph.ops[step].name if graph.ops else '-'!r})")
        active.append(r)
