"""C emitters: CONV_2D, DEPTHWISE_CONV_2D (normal and in place) and FULLY_CONNECTED.

Shapes, strides, pads and zero points are passed as literals in compound-literal structs, so the
static inline kernels specialise per layer; weights, biases and the per-channel multipliers and shifts
are const arrays (flash). The requantization constants come from the reference kernels' own functions.
"""
from __future__ import annotations

import numpy as np

from ...errors import ModelError
from ...ir import Op
from ..reference.ops_conv import ConvGeometry, ConvQuant, conv_geometry, conv_quant, fc_quant, fc_shape
from .context import EmitContext, emitter

_NO_BIAS = "(const int32_t *)0"


def _bias(op: Op, ctx: EmitContext) -> str:
    return ctx.const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] else _NO_BIAS


def _requant_arrays(op: Op, ctx: EmitContext, q: ConvQuant) -> tuple[str, str]:
    mult = ctx.const(f"mult_{op.name}", np.asarray(q.multiplier, np.int32), "int32_t")
    shift = ctx.const(f"shift_{op.name}", np.asarray(q.shift, np.int32), "int32_t")
    return mult, shift


def _quant_fields(q: ConvQuant) -> dict[str, int]:
    return {"input_offset": q.input_offset, "output_offset": q.output_offset,
            "act_min": q.act_min, "act_max": q.act_max}


def _window_fields(g: ConvGeometry) -> dict[str, int]:
    return {"stride_h": g.stride_h, "stride_w": g.stride_w, "dil_h": g.dil_h, "dil_w": g.dil_w,
            "pad_top": g.pad_top, "pad_left": g.pad_left}


def _call(fn: str, args: list[str]) -> str:
    """`fn(arg, arg, ...);` one argument per line, aligned after the parenthesis."""
    pad = " " * (len(fn) + 1)
    return f"{fn}(" + (",\n" + pad).join(a.replace("\n", "\n" + pad) for a in args) + ");"


@emitter("CONV_2D")
def emit_conv2d(op: Op, ctx: EmitContext) -> str:
    g, q = conv_geometry(op, ctx.graph), conv_quant(op, ctx.graph)
    ctx.use("mcu_conv_s8.h")
    mult, shift = _requant_arrays(op, ctx, q)
    shape = {"batches": g.batches, "in_h": g.in_h, "in_w": g.in_w, "in_c": g.in_c,
             "out_h": g.out_h, "out_w": g.out_w, "out_c": g.out_c, "k_h": g.k_h, "k_w": g.k_w,
             "filter_in_c": g.filter_in_c, **_window_fields(g)}
    return _call("mcu_conv_s8", [
        f"&(const mcu_conv_shape){{{_fields(shape)}}}",
        f"&(const mcu_conv_quant){{{_fields(_quant_fields(q))}}}",
        ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]), _bias(op, ctx), mult, shift, ctx.ptr(op.outputs[0])])


@emitter("DEPTHWISE_CONV_2D")
def emit_depthwise_conv2d(op: Op, ctx: EmitContext) -> str:
    g, q = conv_geometry(op, ctx.graph), conv_quant(op, ctx.graph)
    ctx.use("mcu_dwconv_s8.h")
    mult, shift = _requant_arrays(op, ctx, q)
    shape = {"batches": g.batches, "in_h": g.in_h, "in_w": g.in_w, "in_c": g.in_c,
             "out_h": g.out_h, "out_w": g.out_w, "k_h": g.k_h, "k_w": g.k_w,
             "multiplier": g.multiplier, **_window_fields(g)}
    common = [f"&(const mcu_dwconv_shape){{{_fields(shape)}}}",
              f"&(const mcu_dwconv_quant){{{_fields(_quant_fields(q))}}}"]
    weights = [ctx.const(op.inputs[1]), _bias(op, ctx), mult, shift]
    if not ctx.inplace:
        return _call("mcu_dwconv_s8", [*common, ctx.ptr(op.inputs[0]), *weights, ctx.ptr(op.outputs[0])])
    scratch = ctx.scratch
    need = g.batches * g.out_h * g.out_w
    if g.multiplier != 1 or scratch is None or ctx.plan.scratch[ctx.index][1] < need:
        raise ModelError(f"{op.kind} {op.name}: in-place depthwise needs multiplier 1 and a scratch of "
                         f"{need} bytes (planner error)")
    if ctx.plan.offsets[op.inputs[0]] != ctx.plan.offsets[op.outputs[0]]:
        raise ModelError(f"{op.kind} {op.name}: in place, but input and output are at different offsets")
    return _call("mcu_dwconv_s8_inplace", [*common, ctx.ptr(op.outputs[0]), *weights, scratch])


@emitter("FULLY_CONNECTED")
def emit_fully_connected(op: Op, ctx: EmitContext) -> str:
    batches, in_f, out_f = fc_shape(op, ctx.graph)
    q = fc_quant(op, ctx.graph)
    ctx.use("mcu_fc_s8.h")
    per_tensor = q.multiplier.size == 1
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


def _fields(values: dict[str, int]) -> str:
    """Designated initializers, wrapped to lines of about 90 characters."""
    lines: list[str] = []
    for item in (f".{k} = {_int(v)}" for k, v in values.items()):
        if lines and len(lines[-1]) + len(item) < 88:
            lines[-1] += " " + item + ","
        else:
            lines.append(item + ",")
    return "\n  ".join(lines).rstrip(",")


def _int(v: int) -> str:
    v = int(v)
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)
