"""Requantization constants of the convolution and fully-connected kernels, as the C kernels take them.

The plain kernels take TFLM's per-channel multiplier and shift. The fast kernels take a
`mcu_requant_params` (mcu_gemm_s8.h): the bias with the input offset folded in and, for almost every layer,
the constants of mcu_requantize_folded: the multiplier, the right shift of the high word (right - 1) and
the rounding constant with the output offset folded in (2^(right-2) + output_offset * 2^(right-1)); for
layers with a fused ReLU, those of mcu_requantize_doubled (one SMMLAR on twice the accumulator).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from ...ir import Op
from ...operators.convolution import ConvQuant, folded_bias
from ...quant.intmath import multiply_by_quantized_multiplier
from .context import EmitContext
from .literals import c_struct


class RequantMode(Enum):
    """How a fast kernel requantizes (mcu_gemm_s8.h's MCU_REQUANT_*): TFLM's general form, the folded form
    almost every layer takes, or the doubled form for layers with a fused ReLU."""

    GENERAL = 0
    FOLDED = 1
    DOUBLED = 2


CHANNEL_ROW = 4  # int32 values per output channel of the per-channel table: bias, multiplier, shift, rounding
PLAIN_CHANNEL_VALUES = 3  # int32 arrays of a plain kernel: bias, multipliers and shifts (requant_arrays)
FOLDED_RIGHT = (2, 23)  # right shifts mcu_requantize_folded takes (the rounding constant fits in int32)


def requant_constants(q: ConvQuant) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel multipliers and shifts; a channel with multiplier 0 (a zero scale) outputs its zero point
    whatever its shift, so it gets shift -2, which keeps the folded requantization usable for the layer."""
    mult = np.asarray(q.multiplier, np.int64)
    shift = np.where(mult == 0, -2, np.asarray(q.shift, np.int64))
    return mult, shift


def requant_arrays(op: Op, ctx: EmitContext, q: ConvQuant) -> tuple[str, str]:
    """Const arrays of TFLM's per-channel multipliers and shifts (the plain kernels)."""
    mult, shift = requant_constants(q)
    return (ctx.const(f"mult_{op.name}", mult.astype(np.int32), "int32_t"),
            ctx.const(f"shift_{op.name}", shift.astype(np.int32), "int32_t"))


def clamped_range(q: ConvQuant, bias: np.ndarray, reach: np.ndarray, mult: np.ndarray,
                  shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the lowest and highest clamped output over every accumulator bias +- reach (TFLM's
    requantization is monotonic in the accumulator)."""
    ends = [np.clip(bias + sign * reach, -(2**31), 2**31 - 1) for sign in (-1, 1)]
    low, high = (np.clip(multiply_by_quantized_multiplier(e, mult, shift) + q.output_offset, q.act_min, q.act_max)
                 for e in ends)
    return low, high


@dataclass(frozen=True)
class Folded:
    """mcu_requantize_folded's constants, one per channel."""

    multiplier: np.ndarray
    round_hi: np.ndarray
    shift_hi: np.ndarray


def folded_constants(q: ConvQuant, bias: np.ndarray, weight_abs_sum: np.ndarray) -> Folded | None:
    """The folded constants when every channel qualifies: multiplier in (2^30, 2^31) or 0 and right shift
    in FOLDED_RIGHT; else None.

    Channels with a larger right shift are dead channels in practice (tiny or zero weights, a huge bias
    that the activation clamp always cuts): where the clamped output is one value v for every accumulator
    the channel can reach (|acc - bias| <= 128 * sum |w| for int8 inputs; TFLM's requantization is
    monotonic in acc), the channel still qualifies as multiplier 0 with a rounding constant that gives v:
    (2v + 1) >> 1 = 2v >> 1 = v whatever the sign of the accumulator."""
    mult, shift = requant_constants(q)
    right = -shift
    lo, hi = FOLDED_RIGHT
    bias = np.asarray(bias, np.int64)
    reach = 128 * np.asarray(weight_abs_sum, np.int64)
    low, high = clamped_range(q, bias, reach, mult, shift)
    constant = (right > hi) & (low == high)
    mult = np.where(constant, 0, mult)
    right = np.where(constant, lo, right)
    ok = np.all((right >= lo) & (right <= hi)) and np.all(((mult > 2**30) & (mult < 2**31)) | (mult == 0))
    if not ok:
        return None
    round_hi = np.where(constant, 2 * low + 1, (1 << (right - 2)) + q.output_offset * (1 << (right - 1)))
    return Folded(mult, round_hi, right - 1)


DOUBLED_RIGHT = (0, 23)  # right shifts mcu_requantize_doubled takes


@dataclass(frozen=True)
class Doubled:
    """mcu_requantize_doubled's constants, one per channel."""

    bias2: np.ndarray  # the bias column: twice the bias (0 for a constant channel)
    multiplier: np.ndarray
    round: np.ndarray
    shift: np.ndarray


def doubled_constants(q: ConvQuant, bias: np.ndarray, weight_abs_sum: np.ndarray) -> Doubled | None:
    """The constants of mcu_requantize_doubled when the layer qualifies, else None: the activation clamp
    cuts every output below the output zero point (act_min >= output_offset: a fused ReLU or ReLU6), twice
    any reachable accumulator (|bias| + 128 * sum |w|) fits in int32, and every channel's right shift is in
    DOUBLED_RIGHT or the channel is constant. A constant channel (one clamped output v for every reachable
    accumulator; see folded_constants) gets multiplier 0, shift 0, rounding constant v and bias 0: its
    sum then stays small however large its bias is (VWW has zero-weight channels with biases of 2^30)."""
    if q.act_min < q.output_offset:
        return None
    mult, shift = requant_constants(q)
    right = -shift
    bias = np.asarray(bias, np.int64)
    reach = 128 * np.asarray(weight_abs_sum, np.int64)
    lo, hi = DOUBLED_RIGHT
    low, high = clamped_range(q, bias, reach, mult, shift)
    constant = (low == high) & ((right < lo) | (right > hi) | (np.abs(bias) + reach >= 2**30))
    bias = np.where(constant, 0, bias)
    mult = np.where(constant, 0, mult)
    right = np.where(constant, 0, right)
    if bias.size and int((np.abs(bias) + reach).max()) >= 2**30:
        return None
    if not (np.all((right >= lo) & (right <= hi)) and np.all((mult >= 0) & (mult < 2**31))):
        return None
    half = np.where(right > 0, 1 << np.maximum(right - 1, 0), 0)
    rounding = np.where(constant, low, half + q.output_offset * (1 << right))
    return Doubled(2 * bias, mult, rounding, right)


def weight_abs_sums(op: Op, ctx: EmitContext) -> np.ndarray:
    """Per output channel, the sum of the channel's |weights|."""
    w = np.abs(np.asarray(ctx.graph.tensors[op.inputs[1]].data, np.int64))
    return w.reshape(-1, w.shape[-1]).sum(axis=0) if op.kind == "DEPTHWISE_CONV_2D" \
        else w.reshape(w.shape[0], -1).sum(axis=1)


def requant_params(op: Op, ctx: EmitContext, q: ConvQuant, per_channel: bool = True) -> str | None:
    """`&(const mcu_requant_params){...}` with the folded bias (operators.convolution.folded_bias), or None when the
    bias does not fold: the layer takes a plain kernel. Per channel: the bias, multiplier, shift and
    rounding constant of each channel side by side in one array; per tensor: the biases and three scalars
    (unless some channels are constant, see folded_constants: then per channel too)."""
    bias = folded_bias(op, ctx.graph)
    if bias is None:
        return None
    abs_sums = weight_abs_sums(op, ctx)
    d = doubled_constants(q, bias, abs_sums)
    f = folded_constants(q, bias, abs_sums) if d is None else None
    mode = RequantMode.DOUBLED if d is not None else RequantMode.FOLDED if f is not None else RequantMode.GENERAL
    if d is not None:
        bias = d.bias2
        columns = [d.multiplier, d.shift, d.round]
        output_offset = 0
    elif f is not None:
        columns = [f.multiplier, f.shift_hi, f.round_hi]
        output_offset = 0
    else:
        mult, shift = requant_constants(q)
        columns = [mult, shift, np.zeros_like(mult)]
        output_offset = q.output_offset
    fields: dict[str, int | str] = {}
    uniform = all(np.all(np.asarray(c) == np.asarray(c).reshape(-1)[0]) for c in columns)
    if per_channel or not uniform:  # per-tensor weights with constant channels still need per-channel constants
        table = np.stack([np.asarray(bias, np.int64), *columns], axis=1)
        assert table.shape[1] == CHANNEL_ROW
        fields.update(channel=ctx.const(f"requant_{op.name}", table.reshape(-1).astype(np.int32), "int32_t"),
                      stride=CHANNEL_ROW, multiplier_all=0, shift_all=0, round_all=0)
    else:
        fields.update(channel=ctx.const(f"bias_folded_{op.name}", np.asarray(bias).astype(np.int32), "int32_t"),
                      stride=1, multiplier_all=int(columns[0][0]), shift_all=int(columns[1][0]),
                      round_all=int(columns[2][0]))
    fields.update({"mode": f"MCU_REQUANT_{mode.name}", "output_offset": output_offset,
                   "act_min": q.act_min, "act_max": q.act_max})
    return c_struct("mcu_requant_params", fields)
