"""When each activation tensor is live: from the op that writes it to the last op that reads it.

Steps are op indices. Graph inputs (and any non-constant tensor no op writes) are live from step 0;
graph outputs stay live to the last step, since the caller reads them after the model has run.
Constants (tensor.data is not None) live in flash and have no lifetime here, nor do external inputs
(graph.external: in the caller's own buffer), aliases (RESHAPE) of them, and state tensors (their own
buffer, which lives as long as the program).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir import ALIAS_KINDS, DTYPE_BYTES, Graph
from ...errors import shown
from .errors import PlanError


@dataclass(frozen=True)
class Lifetime:
    start: int  # first step (op index) at which the tensor's bytes must hold
    end: int  # last step, inclusive

    def overlaps(self, other: "Lifetime") -> bool:
        return self.start <= other.end and other.start <= self.end


ALIGN = 4  # the arena's default alignment: every buffer's offset and size is a multiple of it


def round_up(nbytes: int, align: int) -> int:
    return -(-nbytes // align) * align


def buffer_bytes(nbytes: int, align: int = ALIGN) -> int:
    """The arena bytes a tensor of `nbytes` takes: rounded up to `align`, at least `align` (an empty
    tensor still gets an address of its own). The planner, the scheduler and the NAS cost model all size
    buffers with it."""
    return max(round_up(nbytes, align), align)


def element_bytes(graph: Graph, name: str) -> int:
    return DTYPE_BYTES[graph.tensors[name].dtype]


def last_step(graph: Graph) -> int:
    return max(len(graph.ops) - 1, 0)


def external_tensors(graph: Graph) -> frozenset[str]:
    """The external inputs and the aliases (RESHAPE outputs) of them, and the state tensors (kept in their
    own buffer between invocations): bytes outside the arena."""
    outside = set(graph.external) | set(graph.states())
    for op in graph.ops:
        if op.kind in ALIAS_KINDS and op.inputs and op.inputs[0] in outside:
            outside.add(op.outputs[0])
    return frozenset(outside)


def activation_lifetimes(graph: Graph) -> dict[str, Lifetime]:
    """Lifetime of every non-constant tensor the graph or one of its ops touches, in first-use order."""
    tensors = graph.tensors
    outside = external_tensors(graph)
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    read_before_write: dict[str, int] = {}
    for name in graph.inputs:
        if tensors[name].data is None and name not in outside:
            start[name] = end[name] = 0
    for i, op in enumerate(graph.ops):
        for name in op.inputs:
            if not name or tensors[name].data is not None or name in outside:
                continue
            if name not in start:
                start[name] = 0
                read_before_write[name] = i
            end[name] = i
        for name in op.outputs:
            if not name or tensors[name].data is not None or name in outside:
                continue
            if name in read_before_write:
                raise PlanError(f"tensor {shown(name)} is read by op {read_before_write[name]} "
                                f"({graph.ops[read_before_write[name]].name!r}) before op {i} ({shown(op.name)}) "
                                "writes it: the ops are not in execution order")
            if name not in start:
                start[name] = end[name] = i
    last = last_step(graph)
    for name in graph.outputs:
        if tensors[name].data is None and name not in outside:
            start.setdefault(name, 0)
            end[name] = last
    return {name: Lifetime(start[name], end[name]) for name in start}
