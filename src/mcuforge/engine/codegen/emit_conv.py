"""C emitters: CONV_2D, DEPTHWISE_CONV_2D (normal and in place) and FULLY_CONNECTED.

Shapes, strides, pads and zero points are passed as literals in compound-literal structs, so the
static inline kernels specialise per layer; weights, biases and the per-channel multipliers and shifts
are const arrays (flash). The requantization constants come from the reference kernels' own functions.

Kernel variants (each header explains its own): pointwise convolutions, other one-group convolutions and
fully-connected layers with symmetric weights run as int8 GEMMs whose bias has the input offset folded in
(mcu_conv_s8_1x1, mcu_conv_s8_im2col with the filters in its column order, mcu_fc_s8_gemm); depthwise
convolutions run row by row, vectorized over channels (mcu_dwconv_s8_rows, in place:
mcu_dwconv_s8_inplace_rows when the planner gave the ring its scratch). The plain kernels (mcu_conv_s8,
mcu_dwconv_s8, mcu_fc_s8) are the reference variants and take every other case.
"""
from __future__ import annotations

import numpy as np

from ...errors import ModelError, shown
from ...ir import Op
from ..plan.kernels import KernelChoice
from ..plan.scratch import Variant, im2col_stride, is_pointwise
from ..reference.ops_conv import (
    ConvGeometry,
    ConvQuant,
    conv_geometry,
    conv_quant,
    fc_quant,
    fc_shape,
)
from .context import EmitContext, emitter
from .literals import c_call as _call, c_fields as _fields
from .requant import NULL_I32 as _NULL_I32, requant_arrays as _requant_arrays, requant_params

_NULL = "(int8_t *)0"
_DW_MAX_MULTIPLIER = 16  # MCU_DW_BLOCK in mcu_dwconv_s8_rows.h


def _bias(op: Op, ctx: EmitContext) -> str:
    return ctx.const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] else _NULL_I32


def _quant_fields(q: ConvQuant) -> dict[str, int]:
    return {"input_offset": q.input_offset, "output_offset": q.output_offset,
            "act_min": q.act_min, "act_max": q.act_max}


def _window_fields(g: ConvGeometry) -> dict[str, int]:
    return {"stride_h": g.stride_h, "stride_w": g.stride_w, "dil_h": g.dil_h, "dil_w": g.dil_w,
            "pad_top": g.pad_top, "pad_left": g.pad_left}


@emitter("CONV_2D")
def emit_conv2d(op: Op, ctx: EmitContext) -> str:
    g, q = conv_geometry(op, ctx.graph), conv_quant(op, ctx.graph)
    requant = requant_params(op, ctx, q) if g.groups == 1 else None
    if requant is not None and is_pointwise(g.k_h, g.k_w, g.pad_top, g.pad_left, g.in_h, g.in_w, g.out_h,
                                            g.out_w, g.stride_h, g.stride_w):
        return _pointwise(op, ctx, g, requant)
    if requant is not None:
        return _im2col(op, ctx, g, q, requant)
    ctx.use("mcu_conv_s8.h")
    mult, shift = _requant_arrays(op, ctx, q)
    return _call("mcu_conv_s8", [
        f"&(const mcu_conv_shape){{{_fields(_conv_shape(g))}}}",
        f"&(const mcu_conv_quant){{{_fields(_quant_fields(q))}}}",
        ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]), _bias(op, ctx), mult, shift, ctx.ptr(op.outputs[0])])


def _conv_shape(g: ConvGeometry) -> dict[str, int]:
    return {"batches": g.batches, "in_h": g.in_h, "in_w": g.in_w, "in_c": g.in_c,
            "out_h": g.out_h, "out_w": g.out_w, "out_c": g.out_c, "k_h": g.k_h, "k_w": g.k_w,
            "filter_in_c": g.filter_in_c, **_window_fields(g)}


def _pointwise(op: Op, ctx: EmitContext, g: ConvGeometry, requant: str) -> str:
    ctx.use("mcu_conv_s8_1x1.h")
    if g.stride_h == g.stride_w == 1 and (g.in_h, g.in_w) == (g.out_h, g.out_w):  # one run of pixels
        shape = {"batches": 1, "rows": 1, "cols": g.batches * g.out_h * g.out_w, "in_c": g.in_c,
                 "out_c": g.out_c, "batch_step": 0, "row_step": 0, "col_step": g.in_c}
    else:
        shape = {"batches": g.batches, "rows": g.out_h, "cols": g.out_w, "in_c": g.in_c, "out_c": g.out_c,
                 "batch_step": g.in_h * g.in_w * g.in_c, "row_step": g.stride_h * g.in_w * g.in_c,
                 "col_step": g.stride_w * g.in_c}
    column = _granted_column(op, ctx)
    return _call("mcu_conv_s8_1x1", [f"&(const mcu_conv_1x1_shape){{{_fields(shape)}}}", requant,
                                     ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]), ctx.ptr(op.outputs[0]),
                                     column, str(int(column == _NULL and _kernel(ctx).column_over_input))])


def _im2col(op: Op, ctx: EmitContext, g: ConvGeometry, q: ConvQuant, requant: str) -> str:
    ctx.use("mcu_conv_s8_im2col.h")
    stride = im2col_stride(g.k_h, g.k_w, g.in_c)
    weights = ctx.const(op.inputs[1])
    order = im2col_order(g.k_h, g.k_w, g.in_c)
    if stride != order.size or np.any(order != np.arange(order.size)):
        # filter rows in the column's order, padded with zero weights to whole groups of four
        w = np.asarray(ctx.graph[op.inputs[1]].data, np.int8).reshape(g.out_c, -1)[:, order]
        weights = ctx.const(f"padded_{op.name}", np.pad(w, ((0, 0), (0, stride - w.shape[1]))), "int8_t")
    column = _granted_column(op, ctx)
    quads = _kernel(ctx).variant == Variant.IM2COL4 and column != _NULL
    return _call("mcu_conv_s8_im2col", [
        f"&(const mcu_conv_shape){{{_fields(_conv_shape(g))}}}", requant, str(-q.input_offset),
        ctx.ptr(op.inputs[0]), weights, str(stride), ctx.ptr(op.outputs[0]), column, str(int(quads))])


def im2col_order(k_h: int, k_w: int, in_c: int) -> np.ndarray:
    """mcu_im2col_index's column order: position i of the column holds value order[i] of the window (in the
    filter's [k_h, k_w, in_c] order). Each window row's whole groups of four first, row by row, then the
    remaining row_values % 4 values of every row; the identity when row_values % 4 == 0."""
    row_values = k_w * in_c
    whole = row_values - row_values % 4
    index = np.arange(k_h * row_values).reshape(k_h, row_values)
    return np.concatenate([index[:, :whole].reshape(-1), index[:, whole:].reshape(-1)])


def _kernel(ctx: EmitContext) -> KernelChoice:
    """The kernel the planner chose for the op being emitted (MemoryPlan.kernels)."""
    return ctx.plan.kernels[ctx.index]


def _granted_column(op: Op, ctx: EmitContext) -> str:
    """The scratch of a conv kernel's column (im2col or pointwise) when the planner gave it, else NULL (the
    kernel then borrows the end of its output)."""
    choice = _kernel(ctx)
    if choice.variant in (Variant.IM2COL4, Variant.IM2COL, Variant.COLUMN) and choice.granted:
        _check_scratch(op, ctx, choice.scratch.nbytes, choice.variant.value)
        return ctx.scratch
    return _NULL


def _check_scratch(op: Op, ctx: EmitContext, needed: int, variant: str) -> None:
    """The plan must give the op's kernel the scratch kernel_scratch chose for it."""
    granted = ctx.plan.scratch[ctx.index][1] if ctx.scratch is not None and ctx.index in ctx.plan.scratch else 0
    if granted < needed:
        raise ModelError(f"{op.kind} {shown(op.name)}: the {variant} kernel needs {needed} bytes of scratch, the plan "
                         f"gives {granted} (planner error)")


@emitter("DEPTHWISE_CONV_2D")
def emit_depthwise_conv2d(op: Op, ctx: EmitContext) -> str:
    g, q = conv_geometry(op, ctx.graph), conv_quant(op, ctx.graph)
    ctx.use("mcu_dwconv_s8.h")
    shape = _fields({"batches": g.batches, "in_h": g.in_h, "in_w": g.in_w, "in_c": g.in_c,
                     "out_h": g.out_h, "out_w": g.out_w, "k_h": g.k_h, "k_w": g.k_w,
                     "multiplier": g.multiplier, **_window_fields(g)})
    shape = f"&(const mcu_dwconv_shape){{{shape}}}"
    pad_value = str(-q.input_offset)
    requant = requant_params(op, ctx, q) if g.multiplier <= _DW_MAX_MULTIPLIER else None
    choice = _kernel(ctx).scratch
    _check_scratch(op, ctx, choice.nbytes, choice.variant.value or "plain")
    if ctx.inplace and ctx.plan.offsets[op.inputs[0]] != ctx.plan.offsets[op.outputs[0]]:
        raise ModelError(f"{op.kind} {shown(op.name)}: in place, but input and output are at different offsets")
    if requant is not None and (choice.variant == Variant.ROWS or not ctx.inplace):  # the planner checked the bias
        ctx.use("mcu_dwconv_s8_plane.h")
        scratch = ctx.scratch if choice.nbytes else "(void *)0"
        return _call("mcu_dwconv_s8_fast", [shape, requant, pad_value, ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]),
                                            ctx.ptr(op.outputs[0]), scratch, str(choice.ring_rows),
                                            str(int(choice.plane))])
    if not ctx.inplace:
        return _call("mcu_dwconv_s8", [shape, _plain_quant(q), ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]),
                                       _bias(op, ctx), *_requant_arrays(op, ctx, q), ctx.ptr(op.outputs[0])])
    if g.multiplier != 1 or ctx.scratch is None:
        raise ModelError(f"{op.kind} {shown(op.name)}: in-place depthwise needs multiplier 1 and a scratch (planner error)")
    return _call("mcu_dwconv_s8_inplace", [shape, _plain_quant(q), ctx.ptr(op.outputs[0]), ctx.const(op.inputs[1]),
                                           _bias(op, ctx), *_requant_arrays(op, ctx, q), ctx.scratch])


def _plain_quant(q: ConvQuant) -> str:
    return f"&(const mcu_dwconv_quant){{{_fields(_quant_fields(q))}}}"


@emitter("FULLY_CONNECTED")
def emit_fully_connected(op: Op, ctx: EmitContext) -> str:
    batches, in_f, out_f = fc_shape(op, ctx.graph)
    q = fc_quant(op, ctx.graph)
    per_tensor = q.multiplier.size == 1
    requant = requant_params(op, ctx, q, per_channel=not per_tensor) if q.weights_offset == 0 else None
    if requant is not None:
        ctx.use("mcu_fc_s8_fast.h")
        shape = {"batches": batches, "in_features": in_f, "out_features": out_f}
        return _call("mcu_fc_s8_gemm", [f"&(const mcu_fc_shape){{{_fields(shape)}}}", requant,
                                        ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]), ctx.ptr(op.outputs[0])])
    ctx.use("mcu_fc_s8.h")
    params = {"batches": batches, "in_features": in_f, "out_features": out_f,
              "input_offset": q.input_offset, "weights_offset": q.weights_offset,
              "output_offset": q.output_offset,
              "multiplier": int(q.multiplier[0]) if per_tensor else 0,
              "shift": int(q.shift[0]) if per_tensor else 0,
              "act_min": q.act_min, "act_max": q.act_max}
    args = [f"&(const mcu_fc_params){{{_fields(params)}}}", ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]),
            _bias(op, ctx)]
    if per_tensor:
        return _call("mcu_fc_s8", [*args, ctx.ptr(op.outputs[0])])
    return _call("mcu_fc_s8_per_channel", [*args, *_requant_arrays(op, ctx, q), ctx.ptr(op.outputs[0])])
