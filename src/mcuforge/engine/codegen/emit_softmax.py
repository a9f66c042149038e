"""C emitters: SOFTMAX, LOG_SOFTMAX, LOGISTIC and TANH.

The constants (multipliers, shifts, diff_min, input radius) come from the reference kernels' own
functions, so the generated code and the numpy reference cannot drift apart.

LOGISTIC and TANH map each int8 value to one int8 value, so for tensors of LUT_MIN_SIZE elements or more
the emitter stores the 256-entry table the reference computes (256 bytes of flash) and emits a lookup;
smaller tensors run the fixed-point kernel (no table in flash). Both give the same bits.
"""
from __future__ import annotations

import numpy as np

from ...ir import Op
from ..reference.ops_softmax import (log_softmax_params, logistic_table, nonlinearity_params, rows,
                                     softmax_params, tanh_table)
from .context import EmitContext, emitter
from .emit_pool import c_call, c_struct

LUT_MIN_SIZE = 256


def _use(ctx: EmitContext, header: str) -> None:
    """Declare a kernel header and the fixed-point library every one of them includes."""
    ctx.use("mcu_fixedpoint.h")
    ctx.use(header)


@emitter("SOFTMAX")
def emit_softmax(op: Op, ctx: EmitContext) -> str:
    p = softmax_params(op, ctx.graph)
    outer, depth = rows(ctx.tensor(op.inputs[0]).shape)
    if outer * depth == 0:
        return ""
    _use(ctx, "mcu_softmax_s8.h")
    quant = c_struct("mcu_softmax_quant", {"multiplier": p.multiplier, "left_shift": p.left_shift,
                                           "diff_min": p.diff_min})
    fn = "mcu_softmax_s8" if p.output_bits == 8 else "mcu_softmax_s8_s16"
    return c_call(fn, [ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0]), str(outer), str(depth), quant])


@emitter("LOG_SOFTMAX")
def emit_log_softmax(op: Op, ctx: EmitContext) -> str:
    p = log_softmax_params(op, ctx.graph)
    outer, depth = rows(ctx.tensor(op.inputs[0]).shape)
    if outer * depth == 0:
        return ""
    _use(ctx, "mcu_softmax_s8.h")
    quant = c_struct("mcu_log_softmax_quant", {
        "multiplier": p.multiplier, "left_shift": p.left_shift, "reverse_multiplier": p.reverse_multiplier,
        "reverse_shift": p.reverse_shift, "diff_min": p.diff_min})
    return c_call("mcu_log_softmax_s8", [ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0]), str(outer), str(depth),
                                         quant])


@emitter("LOGISTIC", "TANH")
def emit_nonlinearity(op: Op, ctx: EmitContext) -> str:
    p = nonlinearity_params(op, ctx.graph)
    size = ctx.tensor(op.inputs[0]).size
    if size == 0:
        return ""
    x, y = ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])
    if size >= LUT_MIN_SIZE:
        _use(ctx, "mcu_fixedpoint.h")
        table = (logistic_table if op.kind == "LOGISTIC" else tanh_table)(p)
        ident = ctx.const(f"{op.kind.lower()}_lut", np.asarray(table, np.int8), "int8_t")
        return c_call("mcu_lut_s8", [x, y, str(size), ident])
    name = "logistic" if op.kind == "LOGISTIC" else "tanh"
    _use(ctx, f"mcu_{name}_s8.h")
    quant = c_struct(f"mcu_{name}_quant", {"input_zero_point": p.input_zero_point, "multiplier": p.multiplier,
                                           "left_shift": p.left_shift,
                                           "input_range_radius": p.input_range_radius})
    return c_call(f"mcu_{name}_s8", [x, y, str(size), quant])
