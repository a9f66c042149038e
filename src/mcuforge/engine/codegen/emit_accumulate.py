"""C emitters: CONV_1X1_ACC and ACC_REQUANTIZE, the two halves of a pointwise convolution that fused
inverted-residual execution runs slice by slice (runtime/mcu_conv_acc_s8.h, engine/schedule/fuse.py).

Each slice's call gets its own `fold` constants: the input offset times each filter's sum over the slice,
plus the bias in the first slice, so the kernel multiplies the raw int8 inputs. The requantization takes
mcu_requantize_folded's constants where every channel qualifies (requant.folded_constants), else TFLM's
multipliers and shifts."""
from __future__ import annotations

import numpy as np

from ...ir import Op
from ..reference.ops_conv import acc_quant
from ..plan.scratch import folded_bias
from .context import EmitContext, emitter
from .literals import c_call, c_fields
from .requant import folded_constants, requant_arrays


@emitter("CONV_1X1_ACC")
def emit_conv_1x1_acc(op: Op, ctx: EmitContext) -> str:
    w, out = ctx.tensor(op.inputs[1]), ctx.tensor(op.outputs[0])
    acc = op.inputs[3] if len(op.inputs) > 3 else ""
    out_c, in_c = w.shape[0], w.shape[-1]
    if out.size == 0:
        return ""
    fold = folded_bias(op, ctx.graph)  # the bias (first slice only) with the input offset folded in
    assert fold is not None, "fuse.is_block admits only blocks whose partial sums fit int32"
    ctx.use("mcu_conv_acc_s8.h")
    calls = []
    if acc and ctx.plan.offsets[acc] != ctx.plan.offsets[op.outputs[0]]:
        calls.append(c_call("memcpy", [ctx.ptr(op.outputs[0]), ctx.ptr(acc), str(out.nbytes)]))
    shape = {"pixels": out.size // out_c, "in_c": in_c, "out_c": out_c}
    calls.append(c_call("mcu_conv_1x1_acc_s8", [
        f"&(const mcu_conv_acc_shape){{{c_fields(shape)}}}", ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]),
        ctx.const(f"fold_{op.name}", fold.astype(np.int32), "int32_t"), str(int(not acc)),
        ctx.ptr(op.outputs[0])]))
    return "\n".join(calls)


@emitter("ACC_REQUANTIZE")
def emit_acc_requantize(op: Op, ctx: EmitContext) -> str:
    out = ctx.tensor(op.outputs[0])
    if out.size == 0:
        return ""
    q = acc_quant(op, ctx.graph)
    channels = out.shape[-1]
    ctx.use("mcu_conv_acc_s8.h")
    shape = [str(out.size // channels), str(channels), ctx.ptr(op.inputs[0])]
    clamp = [str(q.act_min), str(q.act_max), ctx.ptr(op.outputs[0])]
    # any accumulator may arrive: a channel counts as constant only if it is over the whole int32 range
    folded = folded_constants(q, np.zeros(channels, np.int64), np.full(channels, 2**24, np.int64))
    if folded is not None:
        arrays = [ctx.const(f"{tag}_{op.name}", values.astype(np.int32), "int32_t") for tag, values in
                  (("mult", folded.multiplier), ("round", folded.round_hi), ("shift", folded.shift_hi))]
        return c_call("mcu_acc_requantize_folded_s8", shape + arrays + clamp)
    mult, shift = requant_arrays(op, ctx, q)
    return c_call("mcu_acc_requantize_s8", shape + [mult, shift, str(q.output_offset)] + clamp)
