"""MEAN and REDUCE_MAX on int8 over any axes (TFLM's reduce kernels), one module for the pair: they share
the axes, the shape rule and the C kernels' loops (mcu_reduce_s8.h).

MEAN (TFLM reduce_common.cc -> reference_ops::QuantizedMeanOrSum, the integer version this TFLM runs for
every int8 MEAN, whether or not input and output share their quantization; checked against the oracle):
    M, S = QuantizeMultiplier(double(in_scale) / double(out_scale))
    k = min(floor(log2(count)), 32, 31 + S);  M' = (M << k) / count (int64, truncating);  S' = S - k
    out = clamp(MultiplyByQuantizedMultiplier(sum(x) - in_zp * count, M', S') + out_zp, -128, 127)
(Older TFLM builds had other paths: a truncating sum / count when the quantization matched, a float path,
and an integer special case for 4-D axes {1, 2}; the pip `tflite-micro` oracle uses the one above.)

REDUCE_MAX: the largest raw value over the axes; TFLM requires equal input/output quantization.

Moved into the registry from the stages' modules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import options_of, where
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from ..ir.shapes import MAX_SUMMED
from ..quant import intmath
from .base import Operator

SPEC = OpSpec(("input",), ("axes", "keep_dims"))


def check(op: Op, graph: Graph, where_: str) -> None:
    x, y = graph[op.inputs[0]].shape, graph[op.outputs[0]].shape
    axes = op.attrs["axes"]
    if not axes or any(not 0 <= a < len(x) for a in axes):
        raise ModelError(f"{where_}: axes {list(axes)} out of range for input {list(x)}")
    expect = tuple(1 if i in axes else d for i, d in enumerate(x)) if op.attrs["keep_dims"] else \
        tuple(d for i, d in enumerate(x) if i not in axes)
    if y != expect and (op.attrs["keep_dims"] or math.prod(y) != math.prod(expect)):
        raise ModelError(f"{where_}: output {list(y)} does not follow from reducing {list(x)} over axes {list(axes)}")
    count = math.prod(x[a] for a in axes)
    if op.kind == "MEAN" and count > MAX_SUMMED:
        raise ModelError(f"{where_}: sums {count:,} values, more than an int32 sum of int8 values can hold "
                         f"({MAX_SUMMED:,})")


def reduce_axes(op: Op, graph: Graph) -> tuple[int, ...]:
    rank = len(graph[op.inputs[0]].shape)
    axes = [int(a) for a in op.attrs.get("axes", ())]
    if any(not -rank <= a < rank for a in axes):
        raise ModelError(f"{op.kind} {shown(op.name)}: axes {axes} out of range for rank {rank}")
    return tuple(sorted({a % rank for a in axes}))


def reduce_count(op: Op, graph: Graph) -> int:
    """How many input values each output value reduces."""
    shape = graph[op.inputs[0]].shape
    return int(np.prod([shape[a] for a in reduce_axes(op, graph)], dtype=np.int64))


@dataclass(frozen=True)
class MeanQuant:
    """The integer constants of TFLM's int8 MEAN (see the module docstring)."""

    input_zp_times_count: int  # subtracted from the raw sum
    multiplier: int  # Q31, already divided by the count
    shift: int
    output_zp: int


def mean_prepare(op: Op, graph: Graph) -> MeanQuant:
    qi, qo = graph[op.inputs[0]].quant, graph[op.outputs[0]].quant
    if qi is None or qo is None:
        raise ModelError(f"{op.kind} {shown(op.name)}: int8 MEAN needs quantized input and output")
    count = reduce_count(op, graph)
    if count < 1:
        raise ModelError(f"{op.kind} {shown(op.name)}: mean over an empty axis")
    multiplier, shift = intmath.quantize_multiplier(float(np.float64(qi.s) / np.float64(qo.s)))
    k = min(count.bit_length() - 1, 32, 31 + shift)
    if k < 0:
        raise ModelError(f"{op.kind} {shown(op.name)}: input/output scale ratio {qi.s / qo.s:g} is too small")
    multiplier = (multiplier << k) // count
    zp_count = qi.zp * count
    if abs(zp_count) + 128 * count > intmath.INT32_MAX:
        raise ModelError(f"{op.kind} {shown(op.name)}: {count} values per mean overflow the int32 accumulator")
    return MeanQuant(zp_count, multiplier, shift - k, qo.zp)


def check_reduce_max_quant(op: Op, graph: Graph) -> None:
    qi, qo = graph[op.inputs[0]].quant, graph[op.outputs[0]].quant
    if qi is not None and qo is not None and (np.float32(qi.s) != np.float32(qo.s) or qi.zp != qo.zp):
        raise ModelError(f"{op.kind} {shown(op.name)}: int8 REDUCE_MAX needs the same input and output quantization "
                         f"(got scale {qi.s:g}/{qo.s:g}, zero point {qi.zp}/{qo.zp}), as TFLM does")


def read(raw, tensors: dict) -> list[Op]:
    opt = options_of(raw, "ReducerOptions")
    rank = len(tensors[raw.inputs[0]].shape)
    axes_tensor = tensors[raw.inputs[1]]
    if axes_tensor.data is None or axes_tensor.dtype not in ("int32", "int64"):
        raise ModelError(f"{where(raw)}: the axis list must be a constant integer tensor")
    axes = np.atleast_1d(axes_tensor.data).astype(np.int64).tolist()
    if not axes or any(not -rank <= a < rank for a in axes):
        raise ModelError(f"{where(raw)}: axes {axes[:8]} out of range for rank {rank}")
    attrs = {"axes": tuple(sorted({a % rank for a in axes})), "keep_dims": bool(opt.KeepDims()) if opt else False}
    return [Op(raw.kind, raw.inputs[:1], raw.outputs[:1], attrs)]


def write(low, op: Op) -> None:
    axes = low.const_i32(f"{op.name}/axes", list(op.attrs["axes"]))
    low.emit(op.kind, [low.tensor(op.inputs[0]), axes], [low.tensor(op.outputs[0])],
             ("ReducerOptions", {"KeepDims": bool(op.attrs["keep_dims"])}))


def mean(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    q = mean_prepare(op, graph)
    total = np.sum(args[0], axis=reduce_axes(op, graph), dtype=np.int64, keepdims=True)
    acc = intmath.multiply_by_quantized_multiplier(total - q.input_zp_times_count, q.multiplier, q.shift)
    out = np.clip(acc + q.output_zp, -128, 127).astype(np.int8)
    return [out.reshape(graph[op.outputs[0]].shape)]


def reduce_max(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    check_reduce_max_quant(op, graph)
    x = args[0]
    out = np.max(x, axis=reduce_axes(op, graph), keepdims=True) if x.size else np.full(
        graph[op.outputs[0]].shape, -128, x.dtype)
    return [out.astype(x.dtype).reshape(graph[op.outputs[0]].shape)]


def _int8(op: Op, ctx) -> None:
    for name in (*op.inputs, *op.outputs):
        if ctx.tensor(name).dtype != "int8":
            raise ModelError(f"{op.kind} {shown(op.name)}: tensor {shown(name)} is {ctx.tensor(name).dtype}; the C "
                             "kernel handles int8 only")


def reduce_loops(op: Op, ctx) -> str:
    from ..engine.codegen.loops import merge_loops, pad_loops, row_major_strides
    from ..engine.codegen.literals import c_struct

    shape = ctx.tensor(op.inputs[0]).shape
    axes = set(reduce_axes(op, ctx.graph))
    strides = row_major_strides(shape)
    outer = merge_loops([(shape[d], strides[d]) for d in range(len(shape)) if d not in axes])
    inner = merge_loops([(shape[d], strides[d]) for d in range(len(shape)) if d in axes])
    outer_n, outer_s = pad_loops(op, outer, 4)
    inner_n, inner_s = pad_loops(op, inner, 4)
    return c_struct("mcu_reduce_loops", {"outer": outer_n, "outer_stride": outer_s,
                                         "inner": inner_n, "inner_stride": inner_s})


def emit_mean(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct

    _int8(op, ctx)
    q = mean_prepare(op, ctx.graph)
    if ctx.tensor(op.outputs[0]).size == 0:
        return ""
    ctx.use("mcu_reduce_s8.h")
    quant = {"input_zp_times_count": q.input_zp_times_count, "multiplier": q.multiplier, "shift": q.shift,
             "output_zp": q.output_zp}
    return c_call("mcu_mean_s8", [reduce_loops(op, ctx), c_struct("mcu_mean_quant", quant),
                                  ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])])


def emit_reduce_max(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call

    _int8(op, ctx)
    check_reduce_max_quant(op, ctx.graph)
    if ctx.tensor(op.outputs[0]).size == 0:
        return ""
    ctx.use("mcu_reduce_s8.h")
    return c_call("mcu_reduce_max_s8", [reduce_loops(op, ctx), ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])])


OPERATORS = (Operator("MEAN", read, (2, 2, ()), write, SPEC, check, mean, emit_mean, version=2),
             Operator("REDUCE_MAX", read, (2, 2, ()), write, SPEC, check, reduce_max, emit_reduce_max, version=2))
