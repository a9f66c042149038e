"""RESHAPE, SQUEEZE and EXPAND_DIMS, all read as RESHAPE: the same bytes with a new shape (the output
tensor's). An alias (ir.ops.ALIAS_KINDS): the planner gives input and output one buffer, so no code runs.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import where
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from .base import Operator

SPEC = OpSpec(("input",), ())


def check(op: Op, graph: Graph, where_: str) -> None:
    x, y = graph[op.inputs[0]].shape, graph[op.outputs[0]].shape
    if math.prod(x) != math.prod(y):
        raise ModelError(f"{where_}: output {list(y)} does not hold the {math.prod(x)} values of input {list(x)}")


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    out = graph[op.outputs[0]]
    if args[0].size != out.size:
        raise ModelError(f"{op.kind} {shown(op.name)}: cannot reshape {list(args[0].shape)} into {list(out.shape)}")
    return [args[0].reshape(out.shape)]


def emit(op: Op, ctx) -> str:
    """Nothing to run: the planner gave input and output the same bytes."""
    if op.inputs[0] in ctx.external:
        return ""  # an external input's alias points into the caller's buffer too
    assert ctx.plan.offsets[op.inputs[0]] == ctx.plan.offsets[op.outputs[0]], op.name
    return ""


def read(raw, tensors: dict) -> list[Op]:
    x, y = tensors[raw.inputs[0]], tensors[raw.outputs[0]]
    if x.size != y.size:
        raise ModelError(f"{where(raw)}: cannot reshape {list(x.shape)} into {list(y.shape)}")
    return [Op("RESHAPE", raw.inputs[:1], raw.outputs[:1])]


def write(low, op: Op) -> None:
    shape = [int(d) for d in low.graph[op.outputs[0]].shape]
    low.emit("RESHAPE", [low.tensor(op.inputs[0]), low.const_i32(f"{op.name}/shape", shape)],
             [low.tensor(op.outputs[0])], ("ReshapeOptions", {"NewShape": shape}))


OPERATOR = Operator("RESHAPE", read, (1, 2, (1,)), write, SPEC, check, reference, emit,
                    also_reads=(("SQUEEZE", (1, 1, ())), ("EXPAND_DIMS", (2, 2, ()))))
