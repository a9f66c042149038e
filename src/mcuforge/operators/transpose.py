"""TRANSPOSE of an int8 tensor by a constant permutation (TFLM's reference kernel: a byte copy). The C is
a strided copy (mcu_transpose_s8.h, whose loop struct STRIDED_SLICE's copy shares): one (count, stride)
loop per output dimension, contiguous dimensions merged. Moved into the registry from the stages' modules.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import where
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from .base import Operator

SPEC = OpSpec(("input",), ("perm",))


def check(op: Op, graph: Graph, where_: str) -> None:
    x, y = graph[op.inputs[0]].shape, graph[op.outputs[0]].shape
    perm = op.attrs["perm"]
    if sorted(perm) != list(range(len(x))) or y != tuple(x[p] for p in perm):
        raise ModelError(f"{where_}: output {list(y)} is not input {list(x)} permuted by {list(perm)}")


def transpose_perm(op: Op, graph: Graph) -> tuple[int, ...]:
    rank = len(graph[op.inputs[0]].shape)
    perm = tuple(int(p) for p in op.attrs["perm"])
    if sorted(perm) != list(range(rank)):
        raise ModelError(f"{op.kind} {shown(op.name)}: {list(perm)} is not a permutation of {rank} axes")
    return perm


def read(raw, tensors: dict) -> list[Op]:
    t = tensors[raw.inputs[1]]
    if t.data is None or t.dtype not in ("int32", "int64"):
        raise ModelError(f"{where(raw)}: the permutation must be a constant integer tensor")
    perm = tuple(int(p) for p in np.asarray(t.data).reshape(-1))
    rank = len(tensors[raw.inputs[0]].shape)
    if len(perm) != rank or any(not -rank <= p < rank for p in perm) or len({p % rank for p in perm}) != rank:
        raise ModelError(f"{where(raw)}: {list(perm)[:8]} is not a permutation of {rank} axes")
    return [Op("TRANSPOSE", raw.inputs[:1], raw.outputs[:1], {"perm": tuple(p % rank for p in perm)})]


def write(low, op: Op) -> None:
    perm = low.const_i32(f"{op.name}/perm", list(op.attrs["perm"]))
    low.emit("TRANSPOSE", [low.tensor(op.inputs[0]), perm], [low.tensor(op.outputs[0])], ("TransposeOptions", {}))


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    return [np.ascontiguousarray(np.transpose(args[0], transpose_perm(op, graph)))]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call
    from ..engine.codegen.loops import check_int8, copy_loops, row_major_strides

    check_int8(op, ctx)
    perm = transpose_perm(op, ctx.graph)
    if ctx.tensor(op.outputs[0]).size == 0:
        return ""
    shape = ctx.tensor(op.inputs[0]).shape
    strides = row_major_strides(shape)
    ctx.use("mcu_transpose_s8.h")
    loops = copy_loops(op, [(shape[p], strides[p]) for p in perm])
    return c_call("mcu_transpose_s8", [loops, ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])])


OPERATOR = Operator("TRANSPOSE", read, (2, 2, ()), write, SPEC, check, reference, emit, version=2)
