"""HARD_SWISH int8: x * relu6(x + 3) / 6 in TFLM's 16-bit fixed point (HardSwishPrepare and the reference
kernel). The first of the older operators moved into the registry: everything the engine knows about it is
here, its C kernel in engine/runtime/mcu_hard_swish_s8.h.

Semantics: hires = (x - x_zp) * 128 (input scale / 128); the output multiplier and the "reluish" multiplier
(hires scale / (3 / 32768)) are Q31 multipliers rounded to Q15 (DownScaleInt32ToInt16Multiplier); reluish is
hires scaled to [-1, 1] in Q15 (saturating shifts), mapped to [0, 1], times the rescaled input (a truncating
doubling high multiply), divided by 2^-output_exponent with gemmlowp's int16 rounding (its 16-bit mask), plus
the output zero point. TFLite requires input_scale / 128 < output_scale; Prepare refuses the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..ir.graph import Graph, Op, per_tensor_quant
from ..ir.ops import OpSpec
from ..ir.shapes import elementwise_shape
from ..quant import intmath
from .base import Operator

SPEC = OpSpec(("input",), (), elementwise=True)
INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT32_MAX_MINUS_ROUNDING = intmath.INT32_MAX - (1 << 15)


@dataclass(frozen=True)
class HardSwishQuant:
    input_zero_point: int
    output_zero_point: int
    output_multiplier: int  # int16 fixed point
    output_exponent: int  # <= 0
    reluish_multiplier: int  # int16 fixed point
    reluish_exponent: int


def _downscale_to_int16(multiplier: int) -> int:
    """TFLM DownScaleInt32ToInt16Multiplier: round a Q31 multiplier to Q15."""
    if multiplier >= INT32_MAX_MINUS_ROUNDING:
        return INT16_MAX
    return (multiplier + (1 << 15)) >> 16


def prepare(op: Op, graph: Graph) -> HardSwishQuant:
    """TFLM HardSwishPrepare (float32 scales, widened): hires = s_in / 128, reluish scale = 3 / 32768."""
    qi, qo = per_tensor_quant(graph, op.inputs[0], op), per_tensor_quant(graph, op.outputs[0], op)
    hires = np.float32(1.0 / 128.0) * np.float32(qi.s)
    om, oe = intmath.quantize_multiplier(float(hires / np.float32(qo.s)))
    if oe > 0:
        raise ModelError(f"{op.kind} {shown(op.name)}: output scale {qo.s} is too small for input scale {qi.s} "
                         f"(TFLite requires input_scale / 128 < output_scale)")
    rm, re = intmath.quantize_multiplier(float(hires / (np.float32(3.0) / np.float32(32768.0))))
    return HardSwishQuant(qi.zp, qo.zp, _downscale_to_int16(om), oe, _downscale_to_int16(rm), re)


# ---------------------------------------------------------------- the int16 fixed-point steps


def _srdhm16(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    total = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    high = np.where(total >= 0, total >> 15, -((-total) >> 15))  # C division truncates toward zero
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, intmath.wrap(high, 16))


def _sdhm16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLM SaturatingDoublingHighMul on int16: like the above but truncating (no rounding nudge)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    high = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, intmath.wrap(high, 16))


def _saturating_left_shift16(x: np.ndarray, amount: int) -> np.ndarray:
    return np.clip(np.asarray(x, np.int64) << amount, INT16_MIN, INT16_MAX)


def _rounding_divide_by_pot16(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT on int16: the mask is (2^exponent - 1) truncated to 16 bits."""
    x = np.asarray(x, np.int64)
    mask = int(intmath.wrap(np.int64((1 << exponent) - 1), 16))
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def hard_swish_values(q: HardSwishQuant, x: np.ndarray) -> np.ndarray:
    hires = (np.asarray(x, np.int64) - q.input_zero_point) * 128
    preshift_out = _srdhm16(hires, q.output_multiplier)
    reluish = hires
    if q.reluish_exponent > 0:
        reluish = _saturating_left_shift16(reluish, q.reluish_exponent - 1)
    reluish = _srdhm16(reluish, q.reluish_multiplier)
    if q.reluish_exponent > 0:
        reluish = _saturating_left_shift16(reluish, 1)
    if q.reluish_exponent < 0:
        reluish = _rounding_divide_by_pot16(reluish, -q.reluish_exponent)
    reluish = (reluish + (1 << 15)) >> 1
    out = _rounding_divide_by_pot16(_sdhm16(reluish, preshift_out), -q.output_exponent)
    # TFLM adds the zero point in int16; |out| <= 32639 here, so that cannot overflow
    return np.clip(out + q.output_zero_point, INT8_MIN, INT8_MAX).astype(np.int8)


def read(raw, tensors: dict) -> list[Op]:
    return [Op("HARD_SWISH", raw.inputs[:1], raw.outputs[:1])]


def write(low, op: Op) -> None:
    low.emit("HARD_SWISH", [low.tensor(op.inputs[0])], [low.tensor(op.outputs[0])], ("HardSwishOptions", {}))


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    return [hard_swish_values(prepare(op, graph), args[0])]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct

    q = prepare(op, ctx.graph)
    ctx.use("mcu_hard_swish_s8.h")
    params = {"input_zero_point": q.input_zero_point, "output_zero_point": q.output_zero_point,
              "output_multiplier": q.output_multiplier, "output_exponent": q.output_exponent,
              "reluish_multiplier": q.reluish_multiplier, "reluish_exponent": q.reluish_exponent}
    size = ctx.tensor(op.outputs[0]).size
    return c_call("mcu_hard_swish_s8", [c_struct("mcu_hard_swish_params", params), str(size),
                                        ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])])


OPERATOR = Operator("HARD_SWISH", read, (1, 1, ()), write, SPEC, elementwise_shape, reference, emit)
