"""Reference kernels: elementwise int8 operators, bit-exact with TFLite Micro's reference kernels.

ADD, SUB, MUL (numpy broadcasting of any two shapes, fused activation), RELU, QUANTIZE
(float32 -> int8 and between int8, uint8, int16 and int32) and DEQUANTIZE (int8 -> float32). RELU6,
LEAKY_RELU and HARD_SWISH live in mcuforge.operators.

The `*_quant` functions compute each op's constants exactly as TFLM's Prepare does (float32 vs float64
matters; each one says which), and the C emitter calls the same functions, so the reference and the
generated code cannot drift apart. Notes on TFLM's semantics that are easy to get wrong:
- ADD and SUB compute their three multipliers in float64 from 2*max(input scales), with 20 bits of
  headroom: in = (q - zp) << 20, each input times its multiplier (< 1), summed, times the output's.
- RELU requantizes input -> output (RELU6 does not: operators/relu6.py).
- MultiplyByQuantizedMultiplier's left shift (multipliers > 1) wraps in int32 as TFLM's compiled code
  does, it does not saturate (mcu_common's mcu_requantize saturates): this matters only for absurd
  scale ratios (>= 2^15 for MUL, >= 2^23 for the unary ops), but it is TFLM's behaviour.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...errors import ModelError, shown
from ...ir import Graph, Op
from ...ir.graph import per_tensor_quant
from ...ir.ops import QUANTIZE_TYPES
from ...quant import intmath
from .registry import kernel

INT8_MIN, INT8_MAX = -128, 127
ADD_LEFT_SHIFT = 20  # TFLM's headroom shift for int8 ADD/SUB


def _f32(x: float) -> np.float32:
    return np.float32(x)


# ---------------------------------------------------------------- constants (TFLM Prepare)


@dataclass(frozen=True)
class AddQuant:
    """ADD/SUB: each input rescaled to a common scale with 20 bits of headroom, summed, rescaled."""

    input1_offset: int  # minus the zero points
    input2_offset: int
    output_offset: int  # the output zero point
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int


def _smaller_than_one(real: float, op: Op) -> tuple[int, int]:
    if not 0.0 < real < 1.0:
        raise ModelError(f"{op.kind} {shown(op.name)}: rescale factor {real} is outside (0, 1): "
                         f"TFLite cannot run these quantization parameters")
    return intmath.quantize_multiplier_smaller_than_one_exp(real)


def add_quant(op: Op, graph: Graph) -> AddQuant:
    """TFLM CalculateOpDataAdd / CalculateOpDataSub, in float64 from 2 * max(input scales).

    (Recent TFLM sources compute SUB's factors in float32; the tflite-micro build we test against, the
    oracle, computes both in float64, which the tests confirm on scales where the two differ.)"""
    q1, q2 = per_tensor_quant(graph, op.inputs[0], op), per_tensor_quant(graph, op.inputs[1], op)
    qo = per_tensor_quant(graph, op.outputs[0], op)
    s1, s2, so = _f32(q1.s), _f32(q2.s), _f32(qo.s)
    twice_max = 2.0 * float(max(s1, s2))
    real1, real2 = float(s1) / twice_max, float(s2) / twice_max
    real_out = twice_max / ((1 << ADD_LEFT_SHIFT) * float(so))
    m1, sh1 = _smaller_than_one(real1, op)
    m2, sh2 = _smaller_than_one(real2, op)
    mo, sho = _smaller_than_one(real_out, op)
    lo, hi = intmath.activation_range(op.attrs.get("activation", "NONE"), float(so), qo.zp)
    return AddQuant(-q1.zp, -q2.zp, qo.zp, ADD_LEFT_SHIFT, m1, sh1, m2, sh2, mo, sho, lo, hi)


@dataclass(frozen=True)
class MulQuant:
    input1_offset: int
    input2_offset: int
    output_offset: int
    multiplier: int
    shift: int
    act_min: int
    act_max: int


def mul_quant(op: Op, graph: Graph) -> MulQuant:
    """TFLM CalculateOpDataMul: double(s1) * double(s2) / double(so)."""
    q1, q2 = per_tensor_quant(graph, op.inputs[0], op), per_tensor_quant(graph, op.inputs[1], op)
    qo = per_tensor_quant(graph, op.outputs[0], op)
    real = float(_f32(q1.s)) * float(_f32(q2.s)) / float(_f32(qo.s))
    m, sh = intmath.quantize_multiplier(real)
    lo, hi = intmath.activation_range(op.attrs.get("activation", "NONE"), float(_f32(qo.s)), qo.zp)
    return MulQuant(-q1.zp, -q2.zp, qo.zp, m, sh, lo, hi)


@dataclass(frozen=True)
class Requant:
    """out = clamp(zp_out + MultiplyByQuantizedMultiplier(x - zp_in, multiplier, shift), act_min, act_max)."""

    input_zero_point: int
    output_zero_point: int
    multiplier: int
    shift: int
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX


def relu_quant(op: Op, graph: Graph) -> Requant:
    """TFLM CalculateReluOpData: double(s_in) / double(s_out); clamp below at the output zero point."""
    qi, qo = per_tensor_quant(graph, op.inputs[0], op), per_tensor_quant(graph, op.outputs[0], op)
    m, sh = intmath.quantize_multiplier(float(_f32(qi.s)) / float(_f32(qo.s)))
    return Requant(qi.zp, qo.zp, m, sh, max(INT8_MIN, qo.zp), INT8_MAX)


def requantize_quant(op: Op, graph: Graph) -> Requant:
    """QUANTIZE int8 or uint8 -> int8, int8 -> uint8 (TFLM PrepareQuantizeReference): double(s_in) /
    double(s_out); the result clamped to the output type's range."""
    qi, qo = per_tensor_quant(graph, op.inputs[0], op), per_tensor_quant(graph, op.outputs[0], op)
    m, sh = intmath.quantize_multiplier(float(_f32(qi.s)) / float(_f32(qo.s)))
    info = np.iinfo(graph[op.outputs[0]].dtype)
    return Requant(qi.zp, qo.zp, m, sh, int(info.min), int(info.max))


# ---------------------------------------------------------------- integer helpers


# ---------------------------------------------------------------- elementwise math


def add_values(q: AddQuant, a: np.ndarray, b: np.ndarray, subtract: bool = False) -> np.ndarray:
    mbqm = intmath.multiply_by_quantized_multiplier
    sa = mbqm((np.asarray(a, np.int64) + q.input1_offset) << q.left_shift, q.input1_multiplier, q.input1_shift)
    sb = mbqm((np.asarray(b, np.int64) + q.input2_offset) << q.left_shift, q.input2_multiplier, q.input2_shift)
    raw = mbqm(sa - sb if subtract else sa + sb, q.output_multiplier, q.output_shift) + q.output_offset
    return np.clip(raw, q.act_min, q.act_max).astype(np.int8)


def mul_values(q: MulQuant, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    prod = (np.asarray(a, np.int64) + q.input1_offset) * (np.asarray(b, np.int64) + q.input2_offset)
    raw = intmath.multiply_by_quantized_multiplier_wrapping(prod, q.multiplier, q.shift) + q.output_offset
    return np.clip(raw, q.act_min, q.act_max).astype(np.int8)


def requant_values(q: Requant, x: np.ndarray, dtype: type = np.int8) -> np.ndarray:
    raw = intmath.multiply_by_quantized_multiplier_wrapping(np.asarray(x, np.int64) - q.input_zero_point,
                                                    q.multiplier, q.shift) + q.output_zero_point
    return np.clip(raw, q.act_min, q.act_max).astype(dtype)


def round_half_away_f32(v: np.ndarray) -> np.ndarray:
    """roundf: float32 values rounded to integers, halves away from zero (exact, no float64 detour)."""
    v = np.asarray(v, np.float32)
    t = np.trunc(v)
    frac = v - t  # exact in float32
    return t + (frac >= np.float32(0.5)).astype(np.float32) - (frac <= np.float32(-0.5)).astype(np.float32)


def quantize_f32_values(scale: float, zero_point: int, x: np.ndarray) -> np.ndarray:
    """TFLM AffineQuantize float32 -> int8: roundf(x / (float)scale) + zero point, clamped.

    |x / scale| beyond 256 (and NaN, as -256) is clamped before the integer conversion, where TFLM's C++
    has undefined behaviour; for finite values inside int32's range the results are identical."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = np.asarray(x, np.float32) / _f32(scale)
    v = np.where(v > 256, np.float32(256), v)
    v = np.where(v > -256, v, np.float32(-256))  # also NaN -> -256
    r = round_half_away_f32(v).astype(np.int64) + zero_point
    return np.clip(r, INT8_MIN, INT8_MAX).astype(np.int8)


def dequantize_values(scale: float, zero_point: int, x: np.ndarray) -> np.ndarray:
    """TFLM Dequantize: (float)(double(scale) * (q - zp)); the product is exact in float64, so this equals
    the float32 product scale * (float)(q - zp) (one correct rounding either way)."""
    return (float(_f32(scale)) * (np.asarray(x, np.int64) - zero_point).astype(np.float64)).astype(np.float32)


# ---------------------------------------------------------------- registered kernels


def binary_args(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """A binary elementwise op's two operands, after checking that they broadcast to the output."""
    a, b = args[0], args[1]
    assert a is not None and b is not None
    out_shape = graph[op.outputs[0]].shape
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError as e:
        raise ModelError(f"{op.kind} {shown(op.name)}: shapes {a.shape} and {b.shape} do not broadcast") from e
    if int(np.prod(shape)) != int(np.prod(out_shape)):
        raise ModelError(f"{op.kind} {shown(op.name)}: inputs broadcast to {shape}, output is {out_shape}")
    return a, b


@kernel("ADD", "SUB")
def add_sub(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    a, b = binary_args(op, graph, args)
    return [add_values(add_quant(op, graph), a, b, subtract=op.kind == "SUB")]


@kernel("MUL")
def mul(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    a, b = binary_args(op, graph, args)
    return [mul_values(mul_quant(op, graph), a, b)]


@kernel("RELU")
def relu(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    return [requant_values(relu_quant(op, graph), args[0])]


@kernel("QUANTIZE")
def quantize(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    src, dst = graph[op.inputs[0]], graph[op.outputs[0]]
    if (src.dtype, dst.dtype) not in QUANTIZE_TYPES:
        raise ModelError(f"QUANTIZE {shown(op.name)}: {src.dtype} -> {dst.dtype} is not supported "
                         f"(the engine runs {', '.join(' -> '.join(p) for p in sorted(QUANTIZE_TYPES))})")
    if src.dtype == "float32":
        qo = per_tensor_quant(graph, op.outputs[0], op)
        return [quantize_f32_values(qo.s, qo.zp, args[0])]
    return [requant_values(requantize_quant(op, graph), args[0], np.dtype(dst.dtype).type)]


@kernel("DEQUANTIZE")
def dequantize(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    src, dst = graph[op.inputs[0]], graph[op.outputs[0]]
    if src.dtype != "int8" or dst.dtype != "float32":
        raise ModelError(f"DEQUANTIZE {shown(op.name)}: {src.dtype} -> {dst.dtype} is not supported "
                         f"(int8 -> float32 only)")
    qi = per_tensor_quant(graph, op.inputs[0], op)
    return [dequantize_values(qi.s, qi.zp, args[0])]
