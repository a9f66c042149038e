"""LEAKY_RELU int8: x for x >= 0, alpha * x below, requantized (TFLM's CalculateOpDataLeakyRelu and
reference kernel). Moved into the registry from the stages' modules; its C kernel is mcu_leaky_relu_s8.h.

Semantics: v = x - x_zp; v >= 0 is rescaled by the identity multiplier (float32 s_in / s_out, widened), v < 0
by the alpha multiplier (float32 s_in * alpha / s_out; for a negative alpha the product with its magnitude,
negated, as recent TFLM does); plus the output zero point, clamped to int8. A left shift inside the
requantization wraps in int32, as TFLM's compiled code does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import options_of, where
from ..ir.graph import Graph, Op, per_tensor_quant
from ..ir.ops import OpSpec
from ..ir.shapes import elementwise_shape
from ..quant import intmath
from .base import Operator

SPEC = OpSpec(("input",), ("alpha",), elementwise=True)
INT8_MIN, INT8_MAX = -128, 127


@dataclass(frozen=True)
class LeakyQuant:
    input_zero_point: int
    output_zero_point: int
    identity_multiplier: int
    identity_shift: int
    alpha_multiplier: int  # negative when alpha < 0
    alpha_shift: int


def prepare(op: Op, graph: Graph) -> LeakyQuant:
    """TFLM CalculateOpDataLeakyRelu: float32 s_in * alpha / s_out and s_in / s_out, widened."""
    qi, qo = per_tensor_quant(graph, op.inputs[0], op), per_tensor_quant(graph, op.outputs[0], op)
    si, so, alpha = np.float32(qi.s), np.float32(qo.s), np.float32(op.attrs.get("alpha", 0.2))
    ma, sa = intmath.quantize_multiplier(float(si * alpha / so))
    mi, shi = intmath.quantize_multiplier(float(si / so))
    return LeakyQuant(qi.zp, qo.zp, mi, shi, ma, sa)


def _requantize(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLM's wrapping MultiplyByQuantizedMultiplier, also for a negative multiplier (alpha < 0) as recent
    TFLM does it: the product with the multiplier's magnitude, negated (older TFLM multiplied by the
    negative multiplier directly; the two differ only at exact rounding ties, never seen in the tests)."""
    if multiplier < 0:
        return -intmath.multiply_by_quantized_multiplier_wrapping(x, -multiplier, shift)
    return intmath.multiply_by_quantized_multiplier_wrapping(x, multiplier, shift)


def leaky_relu_values(q: LeakyQuant, x: np.ndarray) -> np.ndarray:
    v = np.asarray(x, np.int64) - q.input_zero_point
    pos = _requantize(v, q.identity_multiplier, q.identity_shift)
    neg = _requantize(v, q.alpha_multiplier, q.alpha_shift)
    return np.clip(q.output_zero_point + np.where(v >= 0, pos, neg), INT8_MIN, INT8_MAX).astype(np.int8)


def read(raw, tensors: dict) -> list[Op]:
    alpha = float(options_of(raw, "LeakyReluOptions", required=True).Alpha())
    if not np.isfinite(alpha) or abs(alpha) > 1e6:
        raise ModelError(f"{where(raw)}: leaky ReLU alpha {alpha:g} is not a plausible value")
    return [Op("LEAKY_RELU", raw.inputs[:1], raw.outputs[:1], {"alpha": alpha})]


def write(low, op: Op) -> None:
    low.emit("LEAKY_RELU", [low.tensor(op.inputs[0])], [low.tensor(op.outputs[0])],
             ("LeakyReluOptions", {"Alpha": op.attrs["alpha"]}))


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    return [leaky_relu_values(prepare(op, graph), args[0])]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct

    q = prepare(op, ctx.graph)
    if q.alpha_multiplier == -(2**31):
        raise ModelError(f"{op.kind} {shown(op.name)}: alpha multiplier -2^31 has no int32 magnitude")
    ctx.use("mcu_leaky_relu_s8.h")
    params = {"input_zero_point": q.input_zero_point, "output_zero_point": q.output_zero_point,
              "identity_multiplier": q.identity_multiplier, "identity_shift": q.identity_shift,
              "alpha_multiplier": abs(q.alpha_multiplier), "alpha_shift": q.alpha_shift,
              "alpha_negative": int(q.alpha_multiplier < 0)}
    size = ctx.tensor(op.outputs[0]).size
    return c_call("mcu_leaky_relu_s8", [c_struct("mcu_leaky_relu_params", params), str(size),
                                        ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])])


OPERATOR = Operator("LEAKY_RELU", read, (1, 1, ()), write, SPEC, elementwise_shape, reference, emit, version=2)
