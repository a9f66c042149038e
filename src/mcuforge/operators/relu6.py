"""RELU6 int8 as TFLM runs it (Relu6Prepare and the reference kernel): the raw input clamped to
[input zero point, quantized 6.0] in the input's own quantization; the output's parameters are ignored.
Moved into the registry from the stages' modules; its C kernel is mcu_relu6_s8.h.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..ir.graph import Graph, Op, per_tensor_quant
from ..ir.ops import OpSpec
from ..ir.shapes import elementwise_shape
from ..quant import intmath
from .base import Operator

SPEC = OpSpec(("input",), (), elementwise=True)
INT8_MIN, INT8_MAX = -128, 127


def prepare(op: Op, graph: Graph) -> tuple[int, int]:
    """TFLM Relu6Prepare: [input zero point, FloatToQuantizedType(6.0f)] in the input's own domain."""
    qi = per_tensor_quant(graph, op.inputs[0], op)
    six = qi.zp + intmath.tfl_round(float(np.float32(6.0) / np.float32(qi.s)))
    return qi.zp, int(np.clip(six, INT8_MIN, INT8_MAX))


def read(raw, tensors: dict) -> list[Op]:
    return [Op("RELU6", raw.inputs[:1], raw.outputs[:1])]


def write(low, op: Op) -> None:
    low.emit("RELU6", [low.tensor(op.inputs[0])], [low.tensor(op.outputs[0])])


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    lo, hi = prepare(op, graph)
    return [np.clip(np.asarray(args[0]), lo, hi).astype(np.int8)]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call

    lo, hi = prepare(op, ctx.graph)
    ctx.use("mcu_relu6_s8.h")
    return c_call("mcu_relu6_s8", [str(lo), str(hi), str(ctx.tensor(op.outputs[0]).size), ctx.ptr(op.inputs[0]),
                                   ctx.ptr(op.outputs[0])])


OPERATOR = Operator("RELU6", read, (1, 1, ()), write, SPEC, elementwise_shape, reference, emit, version=2)
