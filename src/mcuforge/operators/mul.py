"""MUL on int8 (TFLM CalculateOpDataMul and its reference kernel): (a - zp_a) * (b - zp_b) times one
multiplier double(s_a) * double(s_b) / double(s_out), plus the output zero point, clamped to the fused
activation. Any two shapes that broadcast (operators/binary.py). C: mcu_mul_s8.h.

MultiplyByQuantizedMultiplier's left shift (multipliers > 1) wraps in int32 as TFLM's compiled code does;
it does not saturate. This matters only for absurd scale ratios (>= 2^15), but it is TFLM's behaviour.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..ir.graph import Graph, Op, per_tensor_quant
from ..ir.ops import OpSpec
from ..ir.shapes import elementwise_shape
from ..quant import intmath
from .add import read, write
from .base import Operator
from .binary import binary_args, binary_call

SPEC = OpSpec(("a", "b"), ("activation",), elementwise=True)


@dataclass(frozen=True)
class MulQuant:
    input1_offset: int
    input2_offset: int
    output_offset: int
    multiplier: int
    shift: int
    act_min: int
    act_max: int


def prepare(op: Op, graph: Graph) -> MulQuant:
    """TFLM CalculateOpDataMul: double(s1) * double(s2) / double(so)."""
    q1, q2 = per_tensor_quant(graph, op.inputs[0], op), per_tensor_quant(graph, op.inputs[1], op)
    qo = per_tensor_quant(graph, op.outputs[0], op)
    real = float(np.float32(q1.s)) * float(np.float32(q2.s)) / float(np.float32(qo.s))
    m, sh = intmath.quantize_multiplier(real)
    lo, hi = intmath.activation_range(op.attrs.get("activation", "NONE"), float(np.float32(qo.s)), qo.zp)
    return MulQuant(-q1.zp, -q2.zp, qo.zp, m, sh, lo, hi)


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    a, b = binary_args(op, graph, args)
    q = prepare(op, graph)
    prod = (np.asarray(a, np.int64) + q.input1_offset) * (np.asarray(b, np.int64) + q.input2_offset)
    raw = intmath.multiply_by_quantized_multiplier_wrapping(prod, q.multiplier, q.shift) + q.output_offset
    return [np.clip(raw, q.act_min, q.act_max).astype(np.int8)]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_struct

    q = prepare(op, ctx.graph)
    ctx.use("mcu_mul_s8.h")
    params = {"input1_offset": q.input1_offset, "input2_offset": q.input2_offset,
              "output_offset": q.output_offset, "multiplier": q.multiplier, "shift": q.shift,
              "act_min": q.act_min, "act_max": q.act_max}
    return binary_call(op, ctx, "mcu_mul_s8", [c_struct("mcu_mul_params", params)])


OPERATOR = Operator("MUL", read, (2, 2, ()), write, SPEC, elementwise_shape, reference, emit, version=2)
