"""PASTE, an internal operator of patch-based execution (engine/schedule/patch.py): the output is `base`
(absent: undefined bytes) with the block starting at index `origin` (one start per dimension) replaced by
`patch`. In place over `base`, it writes only that block. C: mcu_paste.h (outer loops with the output's
pitch, one contiguous run of bytes inside).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..ir import DTYPE_BYTES
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from .base import Operator

SPEC = OpSpec(("base?", "patch"), ("origin",))


def paste_block(op: Op, graph: Graph) -> tuple[slice, ...]:
    """Where in the output the patch goes: one slice per dimension."""
    out, patch = graph[op.outputs[0]], graph[op.inputs[1]]
    origin = tuple(op.attrs["origin"])
    if len(origin) != len(out.shape) or len(patch.shape) != len(out.shape) or any(
            o < 0 or o + p > n for o, p, n in zip(origin, patch.shape, out.shape)):
        raise ModelError(f"{op.kind} {shown(op.name)}: patch {list(patch.shape)} at {list(origin)} does not fit the "
                         f"output {list(out.shape)}")
    return tuple(slice(o, o + p) for o, p in zip(origin, patch.shape))


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    out = graph[op.outputs[0]]
    y = np.zeros(out.shape, args[1].dtype) if args[0] is None else args[0].copy()
    y[paste_block(op, graph)] = args[1]
    return [y]


def _paste_shape(op: Op, block: tuple[slice, ...], shape: tuple[int, ...], elem: int) -> dict:
    """Outer loops (count, output pitch) and the contiguous run of a block of a row-major tensor."""
    from ..engine.codegen.loops import merge_loops, pad_loops, row_major_strides

    strides = [s * elem for s in row_major_strides(shape)]
    d = len(shape) - 1
    while d > 0 and block[d].stop - block[d].start == shape[d]:
        d -= 1  # a dimension the block spans whole: contiguous with the ones inside it
    run = (block[d].stop - block[d].start) * strides[d] if shape else elem
    loops = merge_loops([(b.stop - b.start, s) for b, s in zip(block[:d], strides[:d])])
    counts, pitches = pad_loops(op, loops, 3)
    return {"outer": counts, "pitch": pitches, "run": run}


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct
    from ..engine.codegen.loops import row_major_strides

    base, patch = op.inputs
    out = ctx.tensor(op.outputs[0])
    block = paste_block(op, ctx.graph)
    if out.size == 0:
        return ""
    elem = DTYPE_BYTES[out.dtype]
    arena = lambda name: f"&{ctx.arena}[{ctx.plan.offsets[name]}]"  # noqa: E731
    ctx.use("mcu_paste.h")
    calls = []
    if base and ctx.plan.offsets[base] != ctx.plan.offsets[op.outputs[0]]:
        whole = {"outer": [1, 1, 1], "pitch": [0, 0, 0], "run": out.nbytes}
        calls.append(c_call("mcu_paste", [c_struct("mcu_paste_shape", whole), arena(base), arena(op.outputs[0])]))
    begin = sum(b.start * s for b, s in zip(block, row_major_strides(out.shape))) * elem
    dst = arena(op.outputs[0]) + (f" + {begin}" if begin else "")
    shape = _paste_shape(op, block, out.shape, elem)
    calls.append(c_call("mcu_paste", [c_struct("mcu_paste_shape", shape), arena(patch), dst]))
    return "\n".join(calls)


def inplace(op: Op, graph: Graph) -> list[str]:
    from ..engine.plan.inplace import same_as_output

    return same_as_output(op, graph, 0)


OPERATOR = Operator("PASTE", None, None, None, SPEC, None, reference, emit, inplace=inplace)
