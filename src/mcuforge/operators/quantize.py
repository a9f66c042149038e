"""QUANTIZE and DEQUANTIZE (TFLM's quantize and dequantize kernels). C: mcu_quantize.h.

- QUANTIZE float32 -> int8 (a model's float input): AffineQuantize, roundf(x / (float)scale) + zero point,
  clamped;
- QUANTIZE between int8, uint8, int16 and int32 (ir.ops.QUANTIZE_TYPES; PrepareQuantizeReference):
  MultiplyByQuantizedMultiplier(x - zp_in, M, S) + zp_out with M and S from double(s_in) / double(s_out),
  clamped to the output type's range. The left shift of multipliers > 1 wraps in int32 as TFLM's
  compiled code does (mcu_common's mcu_requantize saturates); only absurd scale ratios (>= 2^23) differ;
- DEQUANTIZE int8 -> float32: (float)(double(scale) * (q - zp)).
`Requant` and `requant_values` are also RELU's (it requantizes input -> output the same way).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..ir.graph import Graph, Op, per_tensor_quant
from ..ir.ops import QUANTIZE_TYPES, OpSpec
from ..ir.shapes import elementwise_shape
from ..quant import intmath
from .base import Operator
from .binary import unary_call

SPEC = OpSpec(("input",), (), elementwise=True)
INT8_MIN, INT8_MAX = -128, 127
TYPE_CODES = {"int8": "s8", "uint8": "u8", "int16": "s16", "int32": "s32"}


@dataclass(frozen=True)
class Requant:
    """out = clamp(zp_out + MultiplyByQuantizedMultiplier(x - zp_in, multiplier, shift), act_min, act_max)."""

    input_zero_point: int
    output_zero_point: int
    multiplier: int
    shift: int
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX


def requantize_quant(op: Op, graph: Graph) -> Requant:
    """QUANTIZE between integer types (TFLM PrepareQuantizeReference): double(s_in) / double(s_out); the
    result clamped to the output type's range."""
    qi, qo = per_tensor_quant(graph, op.inputs[0], op), per_tensor_quant(graph, op.outputs[0], op)
    m, sh = intmath.quantize_multiplier(float(np.float32(qi.s)) / float(np.float32(qo.s)))
    info = np.iinfo(graph[op.outputs[0]].dtype)
    return Requant(qi.zp, qo.zp, m, sh, int(info.min), int(info.max))


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
        v = np.asarray(x, np.float32) / np.float32(scale)
    v = np.where(v > 256, np.float32(256), v)
    v = np.where(v > -256, v, np.float32(-256))  # also NaN -> -256
    r = round_half_away_f32(v).astype(np.int64) + zero_point
    return np.clip(r, INT8_MIN, INT8_MAX).astype(np.int8)


def dequantize_values(scale: float, zero_point: int, x: np.ndarray) -> np.ndarray:
    """TFLM Dequantize: (float)(double(scale) * (q - zp)); the product is exact in float64, so this equals
    the float32 product scale * (float)(q - zp) (one correct rounding either way)."""
    return (float(np.float32(scale)) * (np.asarray(x, np.int64) - zero_point).astype(np.float64)).astype(np.float32)


def _check_types(op: Op, graph: Graph) -> None:
    src, dst = graph[op.inputs[0]], graph[op.outputs[0]]
    if op.kind == "QUANTIZE" and ((src.dtype, dst.dtype) not in QUANTIZE_TYPES or dst.quant is None):
        raise ModelError(f"QUANTIZE {shown(op.name)}: {src.dtype} -> {dst.dtype} is not supported "
                         f"(the engine runs {', '.join(' -> '.join(p) for p in sorted(QUANTIZE_TYPES))})")
    if op.kind == "DEQUANTIZE" and (src.dtype != "int8" or src.quant is None or dst.dtype != "float32"):
        raise ModelError(f"DEQUANTIZE {shown(op.name)}: {src.dtype} -> {dst.dtype} is not supported "
                         f"(int8 -> float32 only)")


def quantize(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    _check_types(op, graph)
    src, dst = graph[op.inputs[0]], graph[op.outputs[0]]
    if src.dtype == "float32":
        qo = per_tensor_quant(graph, op.outputs[0], op)
        return [quantize_f32_values(qo.s, qo.zp, args[0])]
    return [requant_values(requantize_quant(op, graph), args[0], np.dtype(dst.dtype).type)]


def dequantize(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    _check_types(op, graph)
    qi = per_tensor_quant(graph, op.inputs[0], op)
    return [dequantize_values(qi.s, qi.zp, args[0])]


def emit_quantize(op: Op, ctx) -> str:
    from ..engine.codegen.context import c_float
    from ..engine.codegen.literals import c_int, c_struct

    _check_types(op, ctx.graph)
    src, dst = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    ctx.use("mcu_quantize.h")
    if src.dtype == "float32":
        return unary_call(op, ctx, "mcu_quantize_f32_s8", [c_float(dst.quant.s), c_int(dst.quant.zp)])
    q = requantize_quant(op, ctx.graph)
    params = {"input_zero_point": q.input_zero_point, "output_zero_point": q.output_zero_point,
              "multiplier": q.multiplier, "shift": q.shift}
    fn = f"mcu_requantize_{TYPE_CODES[src.dtype]}_{TYPE_CODES[dst.dtype]}".replace("_s8_s8", "_s8")
    return unary_call(op, ctx, fn, [c_struct("mcu_requantize_params", params)])


def emit_dequantize(op: Op, ctx) -> str:
    from ..engine.codegen.context import c_float
    from ..engine.codegen.literals import c_int

    _check_types(op, ctx.graph)
    src = ctx.tensor(op.inputs[0])
    ctx.use("mcu_quantize.h")
    return unary_call(op, ctx, "mcu_dequantize_s8_f32", [c_float(src.quant.s), c_int(src.quant.zp)])


def read(raw, tensors: dict) -> list[Op]:
    return [Op(raw.kind, raw.inputs[:1], raw.outputs[:1])]


def write(low, op: Op) -> None:
    low.emit(op.kind, [low.tensor(op.inputs[0])], [low.tensor(op.outputs[0])])


OPERATORS = (Operator("QUANTIZE", read, (1, 1, ()), write, SPEC, elementwise_shape, quantize, emit_quantize,
                      version=2),
             Operator("DEQUANTIZE", read, (1, 1, ()), write, SPEC, elementwise_shape, dequantize, emit_dequantize,
                      version=2))
