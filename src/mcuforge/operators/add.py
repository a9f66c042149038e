"""ADD and SUB on int8 (TFLM's reference kernels, CalculateOpDataAdd / CalculateOpDataSub): each input
rescaled to a common scale with 20 bits of headroom, summed (or subtracted), rescaled to the output, then
clamped to the fused activation. Any two shapes that broadcast (operators/binary.py). C: mcu_add_s8.h.

The three multipliers are computed in float64 from 2 * max(input scales): in = (q - zp) << 20, each input
times its multiplier (< 1), summed, times the output's. Recent TFLM sources compute SUB's factors in
float32; the tflite-micro build we test against, the oracle, computes both in float64, which
tests/test_ops_elementwise.py confirms on scales where the two differ.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import activation_of, options_of
from ..ir.graph import Graph, Op, per_tensor_quant
from ..ir.ops import OpSpec
from ..ir.shapes import elementwise_shape
from ..quant import intmath
from .base import Operator
from .binary import binary_args, binary_call

SPEC = OpSpec(("a", "b"), ("activation",), elementwise=True)
LEFT_SHIFT = 20  # TFLM's headroom shift for int8 ADD/SUB


@dataclass(frozen=True)
class AddQuant:
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


def prepare(op: Op, graph: Graph) -> AddQuant:
    """TFLM CalculateOpDataAdd / CalculateOpDataSub, in float64 from 2 * max(input scales)."""
    q1, q2 = per_tensor_quant(graph, op.inputs[0], op), per_tensor_quant(graph, op.inputs[1], op)
    qo = per_tensor_quant(graph, op.outputs[0], op)
    s1, s2, so = np.float32(q1.s), np.float32(q2.s), np.float32(qo.s)
    twice_max = 2.0 * float(max(s1, s2))
    real1, real2 = float(s1) / twice_max, float(s2) / twice_max
    real_out = twice_max / ((1 << LEFT_SHIFT) * float(so))
    m1, sh1 = _smaller_than_one(real1, op)
    m2, sh2 = _smaller_than_one(real2, op)
    mo, sho = _smaller_than_one(real_out, op)
    lo, hi = intmath.activation_range(op.attrs.get("activation", "NONE"), float(so), qo.zp)
    return AddQuant(-q1.zp, -q2.zp, qo.zp, LEFT_SHIFT, m1, sh1, m2, sh2, mo, sho, lo, hi)


def add_values(q: AddQuant, a: np.ndarray, b: np.ndarray, subtract: bool = False) -> np.ndarray:
    mbqm = intmath.multiply_by_quantized_multiplier
    sa = mbqm((np.asarray(a, np.int64) + q.input1_offset) << q.left_shift, q.input1_multiplier, q.input1_shift)
    sb = mbqm((np.asarray(b, np.int64) + q.input2_offset) << q.left_shift, q.input2_multiplier, q.input2_shift)
    raw = mbqm(sa - sb if subtract else sa + sb, q.output_multiplier, q.output_shift) + q.output_offset
    return np.clip(raw, q.act_min, q.act_max).astype(np.int8)


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    a, b = binary_args(op, graph, args)
    return [add_values(prepare(op, graph), a, b, subtract=op.kind == "SUB")]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_struct

    q = prepare(op, ctx.graph)
    ctx.use("mcu_add_s8.h")
    params = {"input1_offset": q.input1_offset, "input2_offset": q.input2_offset,
              "output_offset": q.output_offset, "left_shift": q.left_shift,
              "input1_multiplier": q.input1_multiplier, "input1_shift": q.input1_shift,
              "input2_multiplier": q.input2_multiplier, "input2_shift": q.input2_shift,
              "output_multiplier": q.output_multiplier, "output_shift": q.output_shift,
              "act_min": q.act_min, "act_max": q.act_max, "subtract": int(op.kind == "SUB")}
    return binary_call(op, ctx, "mcu_add_s8", [c_struct("mcu_add_params", params)])


OPTIONS = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}


def read(raw, tensors: dict) -> list[Op]:
    """ADD, SUB and MUL: the two operands and the fused activation."""
    opt = options_of(raw, OPTIONS[raw.kind])
    attrs = {"activation": activation_of(raw, opt.FusedActivationFunction() if opt else 0)}
    return [Op(raw.kind, raw.inputs, raw.outputs[:1], attrs)]


def write(low, op: Op) -> None:
    from ..frontends.tflite_writer import ACTIVATION_CODES

    fields = {"FusedActivationFunction": ACTIVATION_CODES[op.attrs.get("activation", "NONE")]}
    low.emit(op.kind, [low.tensor(n) for n in op.inputs], [low.tensor(op.outputs[0])], (OPTIONS[op.kind], fields))


OPERATORS = tuple(Operator(kind, read, (2, 2, ()), write, SPEC, elementwise_shape, reference, emit, version=2)
                  for kind in ("ADD", "SUB"))
