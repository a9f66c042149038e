"""CONV_1X1_ACC and ACC_REQUANTIZE, internal operators: the two halves of a pointwise convolution that
fused inverted-residual execution runs slice by slice (engine/schedule/fuse.py). C: mcu_conv_acc_s8.h.

- CONV_1X1_ACC: a pointwise convolution over a slice of the input channels, added into an int32
  accumulator [N,H,W,O]: acc (absent: 0) + bias (absent: 0) + sum over the slice of (input - input zero
  point) * weights; in place over `acc`. Each slice's call gets its own `fold` constants (the input offset
  times each filter's sum over the slice, plus the bias in the first slice), so the kernel multiplies the
  raw int8 inputs.
- ACC_REQUANTIZE: the int32 accumulator -> its int8 output, requantized as the whole convolution would be
  (input_scale and filter_scales, one per output channel, are the convolution's); mcu_requantize_folded's
  constants where every channel qualifies (codegen/requant.py), else TFLM's multipliers and shifts.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from ..quant import intmath
from .base import Operator
from .convolution import ConvQuant, effective_scale, exact_matmul, folded_bias, requantize

ACC_SPEC = OpSpec(("input", "weights", "bias?", "acc?"), ())
REQUANTIZE_SPEC = OpSpec(("acc",), ("input_scale", "filter_scales", "activation"), elementwise=True)


def accumulate(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    x, w, bias, acc = args
    assert x is not None and w is not None
    x_t = graph[op.inputs[0]]
    assert x_t.quant is not None
    out_c = w.shape[0]
    rows = np.asarray(x, np.int64).reshape(-1, x.shape[-1]) - x_t.quant.zp
    total = exact_matmul(rows, np.asarray(w, np.int64).reshape(out_c, -1).T)
    if bias is not None:
        total += np.asarray(bias, np.int64).reshape(out_c)
    if acc is not None:
        total += np.asarray(acc, np.int64).reshape(-1, out_c)
    return [total.reshape(graph[op.outputs[0]].shape).astype(np.int32)]


def accumulate_macs(op: Op, graph: Graph) -> int:
    w = graph[op.inputs[1]]  # [O, 1, 1, slice]
    return graph[op.outputs[0]].size * w.shape[1] * w.shape[2] * w.shape[3]


def accumulate_inplace(op: Op, graph: Graph) -> list[str]:
    from ..engine.plan.inplace import same_as_output

    return same_as_output(op, graph, 3)


def emit_accumulate(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_fields

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


def acc_quant(op: Op, graph: Graph) -> ConvQuant:
    """Requantization constants of an ACC_REQUANTIZE: those of the convolution whose accumulator it reads."""
    acc, y = graph[op.inputs[0]], graph[op.outputs[0]]
    if acc.dtype != "int32" or y.dtype != "int8" or y.quant is None:
        raise ModelError(f"{op.kind} {shown(op.name)}: needs an int32 accumulator and a quantized int8 output")
    scales = np.asarray(op.attrs["filter_scales"], np.float32).ravel()
    if scales.size != y.shape[-1]:
        raise ModelError(f"{op.kind} {shown(op.name)}: {scales.size} filter scales for {y.shape[-1]} output channels")
    reals = [effective_scale(float(op.attrs["input_scale"]), s, y.quant.s) for s in scales]
    mult, shift = intmath.quantize_multipliers(np.array(reals, np.float64))
    lo, hi = intmath.activation_range(str(op.attrs.get("activation", "NONE")), y.quant.s, y.quant.zp)
    return ConvQuant(0, 0, y.quant.zp, mult, shift, lo, hi)


def acc_requantize(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    assert args[0] is not None
    return [requantize(np.asarray(args[0], np.int64), acc_quant(op, graph))]


def emit_requantize(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call
    from ..engine.codegen.requant import folded_constants, requant_arrays

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


OPERATORS = (Operator("CONV_1X1_ACC", None, None, None, ACC_SPEC, None, accumulate, emit_accumulate,
                      macs=accumulate_macs, inplace=accumulate_inplace),
             Operator("ACC_REQUANTIZE", None, None, None, REQUANTIZE_SPEC, None, acc_requantize, emit_requantize))
