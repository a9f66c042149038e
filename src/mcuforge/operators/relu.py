"""RELU on int8 (TFLM CalculateReluOpData and its reference kernel): the input requantized to the output's
parameters, double(s_in) / double(s_out), and clamped below at the output zero point (RELU6, which does
not requantize, is operators/relu6.py). C: mcu_activation_s8.h.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..ir.graph import Graph, Op, per_tensor_quant
from ..ir.ops import OpSpec
from ..ir.shapes import elementwise_shape
from ..quant import intmath
from .base import Operator
from .binary import unary_call
from .quantize import INT8_MAX, INT8_MIN, Requant, read, requant_values, write

SPEC = OpSpec(("input",), (), elementwise=True)


def prepare(op: Op, graph: Graph) -> Requant:
    """TFLM CalculateReluOpData: double(s_in) / double(s_out); clamp below at the output zero point."""
    qi, qo = per_tensor_quant(graph, op.inputs[0], op), per_tensor_quant(graph, op.outputs[0], op)
    m, sh = intmath.quantize_multiplier(float(np.float32(qi.s)) / float(np.float32(qo.s)))
    return Requant(qi.zp, qo.zp, m, sh, max(INT8_MIN, qo.zp), INT8_MAX)


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    return [requant_values(prepare(op, graph), args[0])]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_struct

    q = prepare(op, ctx.graph)
    ctx.use("mcu_activation_s8.h")
    params = {"input_zero_point": q.input_zero_point, "output_zero_point": q.output_zero_point,
              "multiplier": q.multiplier, "shift": q.shift, "act_min": q.act_min, "act_max": q.act_max}
    return unary_call(op, ctx, "mcu_relu_s8", [c_struct("mcu_relu_params", params)])


OPERATOR = Operator("RELU", read, (1, 1, ()), write, SPEC, elementwise_shape, reference, emit, version=2)
