"""MAXIMUM and MINIMUM on int8 (TFLM's reference kernels): the larger or smaller raw value of the two
operands, which broadcast numpy's way; the output's quantization parameters are ignored, as in TFLM. Either
operand may be a constant (a scalar bound, say). C: mcu_minmax_s8.h (its broadcast variant for unequal
shapes). One module for the pair; moved into the registry from the stages' modules.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from ..ir.shapes import elementwise_shape
from .base import Operator
from .binary import binary_args, binary_call

SPEC = OpSpec(("a", "b"), (), elementwise=True)


def read(raw, tensors: dict) -> list[Op]:
    return [Op(raw.kind, raw.inputs, raw.outputs[:1])]


def write(low, op: Op) -> None:
    low.emit(op.kind, [low.tensor(n) for n in op.inputs], [low.tensor(op.outputs[0])],
             ("MaximumMinimumOptions", {}))


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    a, b = binary_args(op, graph, args)
    return [(np.maximum if op.kind == "MAXIMUM" else np.minimum)(a, b).astype(np.int8)]


def emit(op: Op, ctx) -> str:
    ctx.use("mcu_minmax_s8.h")
    return binary_call(op, ctx, "mcu_minmax_s8", [str(int(op.kind == "MAXIMUM"))])


OPERATORS = tuple(Operator(kind, read, (2, 2, ()), write, SPEC, elementwise_shape, reference, emit, version=2)
                  for kind in ("MAXIMUM", "MINIMUM"))
