"""Which tensors share bytes: aliases (RESHAPE) always, and in-place outputs over dying inputs.

Tensors that share bytes form one buffer: they all start at the buffer's base offset. A buffer's members
are chained in time (an alias output starts while its input is live; an in-place output starts at the
step where its input's buffer dies), so the buffer's footprint at a step is the largest member live then.

Which inputs an op's kernel may overwrite is the operator's own fact (Operator.inplace, entered in
INPLACE): the in-place depthwise convolution, PASTE, CONV_1X1_ACC, and by default every elementwise op,
whose kernel loops forward, reading element i before writing element i, so that the output may lie over
an input of the same shape whose elements are at least as wide (QUANTIZE float32 -> int8 fits, DEQUANTIZE
int8 -> float32 does not).
An op runs in place only over an input whose whole buffer dies at that op and holds no graph output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...ir import ALIAS_KINDS, DTYPE_BYTES, Graph, Op
from .lifetimes import Lifetime

# kind -> the inputs its kernel may overwrite with its output (mcuforge.operators; Operator.inplace)
INPLACE: dict[str, Callable[[Op, Graph], list[str]]] = {}


@dataclass(frozen=True)
class Sharing:
    buffers: tuple[tuple[str, ...], ...]  # tensors sharing one base offset, each in first-write order
    inplace_ops: frozenset[int]


def inplace_candidates(op: Op, graph: Graph) -> list[str]:
    """Inputs of `op` its kernel may overwrite with its output (lifetimes not considered)."""
    rule = INPLACE.get(op.kind)
    if rule is None or len(op.outputs) != 1 or not op.outputs[0] or graph[op.outputs[0]].data is not None:
        return []
    return rule(op, graph)


def elementwise_inputs(op: Op, graph: Graph) -> list[str]:
    """An elementwise kernel's rule: the computed inputs of the output's shape, with elements at least as wide."""
    t = graph.tensors
    out = t[op.outputs[0]]
    return [n for n in dict.fromkeys(op.inputs)
            if n and t[n].data is None and t[n].shape == out.shape
            and DTYPE_BYTES[out.dtype] <= DTYPE_BYTES[t[n].dtype]]


def same_as_output(op: Op, graph: Graph, position: int) -> list[str]:
    """Input `position` when it is computed and has the output's shape and type (PASTE's base, CONV_1X1_ACC's acc)."""
    name = op.inputs[position] if len(op.inputs) > position else ""
    src, out = (graph[name] if name else None), graph[op.outputs[0]]
    same = src is not None and src.data is None and src.shape == out.shape and src.dtype == out.dtype
    return [name] if same else []


class _Buffers:
    """Union-find of tensors into buffers, tracking each buffer's last step and whether it is pinned
    (holds a graph output, so it must survive the last op)."""

    def __init__(self, lifetimes: dict[str, Lifetime], pinned: set[str]) -> None:
        self.parent = {n: n for n in lifetimes}
        self.end = {n: lt.end for n, lt in lifetimes.items()}
        self.pinned = {n: n in pinned for n in lifetimes}

    def root(self, name: str) -> str:
        parent = self.parent
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def merge(self, keep: str, join: str) -> None:
        a, b = self.root(keep), self.root(join)
        if a == b:
            return
        self.parent[b] = a
        self.end[a] = max(self.end[a], self.end[b])
        self.pinned[a] = self.pinned[a] or self.pinned[b]

    def dies_at(self, name: str, step: int) -> bool:
        r = self.root(name)
        return self.end[r] == step and not self.pinned[r]


def share_buffers(graph: Graph, lifetimes: dict[str, Lifetime], sizes: dict[str, int],
                  inplace: bool) -> Sharing:
    """Group tensors into buffers: aliases always, in-place outputs when `inplace` and legal."""
    tensors = graph.tensors
    bufs = _Buffers(lifetimes, set(graph.outputs))
    inplace_ops: set[int] = set()
    for i, op in enumerate(graph.ops):
        if op.kind in ALIAS_KINDS:
            src, dst = op.inputs[0], op.outputs[0]
            if src in lifetimes and dst in lifetimes:
                bufs.merge(src, dst)
            continue
        if not inplace:
            continue
        dying = [n for n in inplace_candidates(op, graph) if n in lifetimes and bufs.dies_at(n, i)]
        if not dying:
            continue
        # The widest dying input: the output then fits under it and frees the most.
        src = max(dying, key=lambda n: sizes[n])
        if tensors[op.outputs[0]].name in lifetimes:
            bufs.merge(src, op.outputs[0])
            inplace_ops.add(i)
    groups: dict[str, list[str]] = {}
    for name in lifetimes:
        groups.setdefault(bufs.root(name), []).append(name)
    ordered = tuple(tuple(sorted(g, key=lambda n: lifetimes[n].start)) for g in groups.values())
    return Sharing(ordered, frozenset(inplace_ops))
