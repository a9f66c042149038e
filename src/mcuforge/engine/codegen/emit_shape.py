"""C emitters: RESHAPE (an alias: no code), PAD, CONCATENATION, STRIDED_SLICE and PASTE (TRANSPOSE:
mcuforge.operators.transpose)
(RESIZE_NEAREST_NEIGHBOR lives in operators/resize_nearest.py).

Data movement is described to the kernels as literal loops: a transpose or a slice is a strided copy
(count and input stride per output dimension, contiguous dimensions merged); a pad is its input rows
placed in a filled output (unpadded dimensions merged into their outer neighbour); a concatenation is one
row copy per input.
"""
from __future__ import annotations

import numpy as np

from ...errors import ModelError, shown
from ...ir import DTYPE_BYTES, Op
from ..reference.ops_shape import (concat_activation, concat_axis, concat_requants, pad_amounts, pad_value,
                                   paste_block, slice_ranges)
from .context import EmitContext, emitter
from .literals import c_call, c_struct
from .loops import check_int8, merge_loops, pad_loops, row_major_strides


@emitter("RESHAPE")
def emit_reshape(op: Op, ctx: EmitContext) -> str:
    """An alias: the planner gives input and output the same bytes, so there is nothing to run."""
    if op.inputs[0] in ctx.external:
        return ""  # an external input's alias points into the caller's buffer too
    assert ctx.plan.offsets[op.inputs[0]] == ctx.plan.offsets[op.outputs[0]], op.name
    return ""


def _empty(op: Op, ctx: EmitContext) -> bool:
    return ctx.tensor(op.outputs[0]).size == 0


@emitter("PAD")
def emit_pad(op: Op, ctx: EmitContext) -> str:
    check_int8(op, ctx)
    pads = pad_amounts(op, ctx.graph)
    value = pad_value(op)
    if _empty(op, ctx):
        return ""
    shape = ctx.tensor(op.inputs[0]).shape
    dims: list[tuple[int, int, int]] = []  # (in, before, after), innermost first
    for size, (before, after) in zip(reversed(shape), reversed(pads)):
        if dims and dims[-1][1] == 0 and dims[-1][2] == 0:
            inner = dims.pop()[0]
            dims.append((size * inner, before * inner, after * inner))
        else:
            dims.append((size, before, after))
    dims.reverse()
    if len(dims) > 6:
        raise ModelError(f"{op.kind} {shown(op.name)}: {len(dims)} padded dimensions; the C kernel has 6")
    dims = [(1, 0, 0)] * (6 - len(dims)) + dims
    ctx.use("mcu_pad_s8.h")
    fields = {"in": [d[0] for d in dims], "before": [d[1] for d in dims], "out": [sum(d) for d in dims]}
    return c_call("mcu_pad_s8", [c_struct("mcu_pad_shape", fields), ctx.ptr(op.inputs[0]), str(value),
                                 ctx.ptr(op.outputs[0])])


def copy_loops(op: Op, loops: list[tuple[int, int]]) -> str:
    """mcu_transpose_s8.h's loop struct: (count, stride) per dimension, merged and padded to six."""
    counts, strides = pad_loops(op, merge_loops(loops), 6)
    return c_struct("mcu_copy_loops", {"count": counts, "stride": strides})


@emitter("STRIDED_SLICE")
def emit_strided_slice(op: Op, ctx: EmitContext) -> str:
    check_int8(op, ctx)
    ranges = slice_ranges(op, ctx.graph)
    if _empty(op, ctx):
        return ""
    strides = row_major_strides(ctx.tensor(op.inputs[0]).shape)
    begin = sum(r.start * s for r, s in zip(ranges, strides))
    ctx.use("mcu_transpose_s8.h")
    ctx.use("mcu_slice_s8.h")
    loops = copy_loops(op, [(len(r), r.step * s) for r, s in zip(ranges, strides)])
    return c_call("mcu_slice_s8", [loops, ctx.ptr(op.inputs[0]), str(begin), ctx.ptr(op.outputs[0])])


def _paste_shape(op: Op, block: tuple[slice, ...], shape: tuple[int, ...], elem: int) -> dict:
    """Outer loops (count, output pitch) and the contiguous run of a block of a row-major tensor."""
    strides = [s * elem for s in row_major_strides(shape)]
    d = len(shape) - 1
    while d > 0 and block[d].stop - block[d].start == shape[d]:
        d -= 1  # a dimension the block spans whole: contiguous with the ones inside it
    run = (block[d].stop - block[d].start) * strides[d] if shape else elem
    loops = merge_loops([(b.stop - b.start, s) for b, s in zip(block[:d], strides[:d])])
    counts, pitches = pad_loops(op, loops, 3)
    return {"outer": counts, "pitch": pitches, "run": run}


@emitter("PASTE")
def emit_paste(op: Op, ctx: EmitContext) -> str:
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


@emitter("CONCATENATION")
def emit_concatenation(op: Op, ctx: EmitContext) -> str:
    check_int8(op, ctx)
    axis = concat_axis(op, ctx.graph)
    lo, hi = concat_activation(op, ctx.graph)
    if _empty(op, ctx):
        return ""
    out_shape = ctx.tensor(op.outputs[0]).shape
    outer = int(np.prod(out_shape[:axis], dtype=np.int64))
    out_row = int(np.prod(out_shape[axis:], dtype=np.int64))
    ctx.use("mcu_concat_s8.h")
    calls, offset = [], 0
    for name, rq in zip(op.inputs, concat_requants(op, ctx.graph)):
        in_row = int(np.prod(ctx.tensor(name).shape[axis:], dtype=np.int64))
        if in_row == 0:
            continue
        if rq is None and (lo, hi) == (-128, 127):
            quant = "(const mcu_concat_quant *)0"
        else:
            fields = {"rescale": int(rq is not None), "input_zp": rq.input_zp if rq else 0,
                      "multiplier": rq.multiplier if rq else 0, "shift": rq.shift if rq else 0,
                      "output_zp": rq.output_zp if rq else 0, "act_min": lo, "act_max": hi}
            quant = c_struct("mcu_concat_quant", fields)
        dst = ctx.ptr(op.outputs[0]) + (f" + {offset}" if offset else "")
        calls.append(c_call("mcu_concat_s8", [ctx.ptr(name), str(outer), str(in_row), str(out_row), quant, dst]))
        offset += in_row
    return "\n".join(calls)
