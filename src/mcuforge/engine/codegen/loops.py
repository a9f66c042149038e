"""Loops the data-movement emitters describe to their kernels: row-major strides, loops merged where
contiguous and padded to a kernel's depth; and the int8 check those kernels need."""
from __future__ import annotations

from typing import Sequence

from ...errors import ModelError, shown
from ...ir import Op
from .context import EmitContext

Loops = list[tuple[int, int]]  # (count, stride in elements), outermost first


def row_major_strides(shape: Sequence[int]) -> list[int]:
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * int(shape[d + 1])
    return strides


def merge_loops(loops: Loops) -> Loops:
    """Drops loops that run once and merges a loop into its outer neighbour where they are contiguous."""
    out: Loops = []
    for count, stride in loops:
        if count == 1:
            continue
        if out and out[-1][1] == count * stride:
            out[-1] = (out[-1][0] * count, stride)
        else:
            out.append((count, stride))
    return out


def pad_loops(op: Op, loops: Loops, depth: int) -> tuple[list[int], list[int]]:
    """(counts, strides) padded to `depth` loops with outer loops that run once."""
    if len(loops) > depth:
        raise ModelError(f"{op.kind} {shown(op.name)}: needs {len(loops)} loops after merging dimensions; the C "
                         f"kernel has {depth}")
    filler = [(1, 0)] * (depth - len(loops))
    if not loops:
        filler[-1] = (1, 1)
    full = filler + loops
    return [c for c, _ in full], [s for _, s in full]


def copy_loops(op: Op, loops: Loops) -> str:
    """mcu_transpose_s8.h's loop struct: (count, stride) per dimension, merged and padded to six."""
    from .literals import c_struct

    counts, strides = pad_loops(op, merge_loops(loops), 6)
    return c_struct("mcu_copy_loops", {"count": counts, "stride": strides})


def check_int8(op: Op, ctx: EmitContext) -> None:
    for name in (*op.inputs, *op.outputs):
        if name and ctx.tensor(name).dtype != "int8":
            raise ModelError(f"{op.kind} {shown(op.name)}: tensor '{shown(name)}' is {ctx.tensor(name).dtype}; the C kernel "
                             "handles int8 only")
