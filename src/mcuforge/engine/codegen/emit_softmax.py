"""C emitters: SOFTMAX and LOG_SOFTMAX (LOGISTIC and TANH: mcuforge.operators.logistic_tanh).

The constants (multipliers, shifts, diff_min) come from the reference kernels' own functions, so the
generated code and the numpy reference cannot drift apart.
"""
from __future__ import annotations


from ...ir import Op
from ..reference.ops_softmax import log_softmax_params, rows, softmax_params
from .context import EmitContext, emitter
from .emit_pool import c_call, c_struct


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
