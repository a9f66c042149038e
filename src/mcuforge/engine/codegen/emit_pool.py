"""C emitters: AVERAGE_POOL_2D and MAX_POOL_2D (MEAN and REDUCE_MAX: mcuforge.operators.reduce).

Shapes, windows and quantization constants are literals in compound-literal structs, so the static inline
kernels specialise per layer. A reduction over any axes becomes loops: the kept dimensions (in output
order) and the reduced ones, each merged with its neighbours where they are contiguous in the input, as
(count, input stride) pairs. The constants come from the reference kernels' own functions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ...errors import ModelError, shown
from ...ir import Op
from ..reference.ops_pool import pool_activation, pool_geometry
from .context import EmitContext, emitter
from .literals import c_call, c_struct

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


def check_int8(op: Op, ctx: EmitContext) -> None:
    for name in (*op.inputs, *op.outputs):
        if name and ctx.tensor(name).dtype != "int8":
            raise ModelError(f"{op.kind} {shown(op.name)}: tensor '{shown(name)}' is {ctx.tensor(name).dtype}; the C kernel "
                             "handles int8 only")


def _pool(op: Op, ctx: EmitContext, fn: str) -> str:
    check_int8(op, ctx)
    g = pool_geometry(op, ctx.graph)
    lo, hi = pool_activation(op, ctx.graph)
    if fn == "mcu_avgpool_s8":
        for o, stride, pad, filt, size in ((g.out_h, g.stride_h, g.pad_top, g.filter_h, g.in_h),
                                           (g.out_w, g.stride_w, g.pad_left, g.filter_w, g.in_w)):
            first = np.arange(o) * stride - pad
            if o and (np.minimum(filt, size - first) <= np.maximum(0, -first)).any():
                raise ModelError(f"{op.kind} {shown(op.name)}: some pooling windows lie entirely in the padding")
    if ctx.tensor(op.outputs[0]).size == 0:
        return ""
    ctx.use("mcu_pool_s8.h")
    params = {"batches": g.batches, "in_h": g.in_h, "in_w": g.in_w, "channels": g.channels,
              "out_h": g.out_h, "out_w": g.out_w, "filter_h": g.filter_h, "filter_w": g.filter_w,
              "stride_h": g.stride_h, "stride_w": g.stride_w, "pad_top": g.pad_top, "pad_left": g.pad_left,
              "act_min": lo, "act_max": hi}
    # the fast variant (channels innermost) of each pool kernel; mcu_avgpool_s8 / mcu_maxpool_s8 are the
    # reference variants with the same results
    return c_call(fn + "_channels", [c_struct("mcu_pool_params", params), ctx.ptr(op.inputs[0]),
                                     ctx.ptr(op.outputs[0])])


@emitter("AVERAGE_POOL_2D")
def emit_average_pool_2d(op: Op, ctx: EmitContext) -> str:
    return _pool(op, ctx, "mcu_avgpool_s8")


@emitter("MAX_POOL_2D")
def emit_max_pool_2d(op: Op, ctx: EmitContext) -> str:
    return _pool(op, ctx, "mcu_maxpool_s8")
