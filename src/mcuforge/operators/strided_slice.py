"""STRIDED_SLICE on int8: a strided block of the input, each axis sliced as a numpy slice (start, stop,
step) with TFLite's masks and negative indices resolved by the reader; a shrunk axis is a slice of length
one that the output's shape drops. TFLM copies raw bytes, and so does the C (mcu_slice_s8.h: a strided
copy, count and input stride per output dimension, contiguous dimensions merged).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import MAX_WINDOW, const_operand, options_of, where
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from .base import Operator

# slices: one (start, stop, step) per input dimension, as for a numpy slice (stop may be None); the output
# tensor's shape then drops shrunk axes (a reshape of the sliced block)
SPEC = OpSpec(("input",), ("slices",))


def check(op: Op, graph: Graph, where_: str) -> None:
    x, y = graph[op.inputs[0]].shape, graph[op.outputs[0]].shape
    slices = op.attrs["slices"]
    if len(slices) != len(x):
        raise ModelError(f"{where_}: {len(slices)} slices for input {list(x)}")
    counts = [len(range(*slice(*s).indices(d))) for s, d in zip(slices, x)]
    if any(s[0] < 0 for s in slices) or math.prod(counts) != math.prod(y) or not all(counts):
        raise ModelError(f"{where_}: the slice {counts} of {list(x)} does not give output {list(y)}")


def slice_ranges(op: Op, graph: Graph) -> tuple[range, ...]:
    """The input indices each dimension keeps (start, step and count of a numpy slice), in order."""
    x, y = graph[op.inputs[0]], graph[op.outputs[0]]
    slices = [tuple(s) for s in op.attrs["slices"]]
    if len(slices) != len(x.shape):
        raise ModelError(f"{op.kind} {shown(op.name)}: {len(slices)} slices for an input of rank {len(x.shape)}")
    ranges = []
    for s, n in zip(slices, x.shape):
        start, stop, step = (tuple(s) + (None, None, None))[:3]
        if step == 0:
            raise ModelError(f"{op.kind} {shown(op.name)}: slice step 0")
        ranges.append(range(*slice(start, stop, step).indices(n)))
    block = int(np.prod([len(r) for r in ranges], dtype=np.int64))
    if block != y.size:
        raise ModelError(f"{op.kind} {shown(op.name)}: slices give {[len(r) for r in ranges]}, output is "
                         f"{list(y.shape)}")
    return tuple(ranges)


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    index = np.ix_(*(np.asarray(r, np.int64) for r in slice_ranges(op, graph)))
    return [np.ascontiguousarray(args[0][index]).reshape(graph[op.outputs[0]].shape)]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call
    from ..engine.codegen.loops import check_int8, copy_loops, row_major_strides

    check_int8(op, ctx)
    ranges = slice_ranges(op, ctx.graph)
    if ctx.tensor(op.outputs[0]).size == 0:
        return ""
    strides = row_major_strides(ctx.tensor(op.inputs[0]).shape)
    begin = sum(r.start * s for r, s in zip(ranges, strides))
    ctx.use("mcu_transpose_s8.h")
    ctx.use("mcu_slice_s8.h")
    loops = copy_loops(op, [(len(r), r.step * s) for r, s in zip(ranges, strides)])
    return c_call("mcu_slice_s8", [loops, ctx.ptr(op.inputs[0]), str(begin), ctx.ptr(op.outputs[0])])


def _slice_length(start: int, stop: int, step: int) -> int:
    return max(0, -((start - stop) // step)) if step > 0 else max(0, -((stop - start) // -step))


def slices_of(raw, tensors: dict) -> list[tuple[int, int | None, int]]:
    """A STRIDED_SLICE's (start, stop, step) per input axis, as for a numpy slice, with TFLite's masks and
    negative indices resolved (a shrunk axis is a slice of length one)."""
    opt = options_of(raw, "StridedSliceOptions")
    x = tensors[raw.inputs[0]]
    begin = const_operand(raw, tensors, 1, "begin").tolist()
    end = const_operand(raw, tensors, 2, "end").tolist()
    strides = const_operand(raw, tensors, 3, "strides").tolist() if len(raw.inputs) > 3 else [1] * len(begin)
    if opt is not None and (opt.EllipsisMask() or opt.NewAxisMask()):
        raise ModelError(f"{where(raw)}: ellipsis and new-axis masks are not supported")
    begin_mask = opt.BeginMask() if opt else 0
    end_mask = opt.EndMask() if opt else 0
    shrink = opt.ShrinkAxisMask() if opt else 0
    offset = bool(opt.Offset()) if opt is not None and hasattr(opt, "Offset") else False
    rank = len(x.shape)
    if not len(begin) == len(end) == len(strides) <= rank:
        raise ModelError(f"{where(raw)}: begin/end/strides lengths do not match the input rank {rank}")
    slices = []
    for d in range(rank):
        n = x.shape[d]
        if d >= len(begin):
            slices.append((0, n, 1))
            continue
        s = strides[d]
        if s == 0 or abs(s) > MAX_WINDOW * MAX_WINDOW:
            raise ModelError(f"{where(raw)}: stride {s} on axis {d}")
        b, e = begin[d], (begin[d] + end[d] if offset else end[d])
        if shrink >> d & 1:
            b = b + n if b < 0 else b
            if not 0 <= b < n:
                raise ModelError(f"{where(raw)}: index {begin[d]} is outside axis {d} of {list(x.shape)}")
            slices.append((b, b + 1, 1))
            continue
        lo, hi = (0, n) if s > 0 else (-1, n - 1)
        b = (lo if s > 0 else hi) if begin_mask >> d & 1 else min(max(b + n if b < 0 else b, lo), hi)
        e = (hi if s > 0 else lo) if end_mask >> d & 1 else min(max(e + n if e < 0 else e, lo), hi)
        if _slice_length(b, e, s) == 0:
            raise ModelError(f"{where(raw)}: the slice of axis {d} is empty")
        slices.append((b, None if e < 0 else e, s))
    return slices


def read(raw, tensors: dict) -> list[Op]:
    y = tensors[raw.outputs[0]]
    slices = slices_of(raw, tensors)
    size = math.prod(_slice_length(b, -1 if e is None else e, s) for b, e, s in slices)
    if size != y.size:
        raise ModelError(f"{where(raw)}: the slice has {size} elements, the output {list(y.shape)} {y.size}")
    return [Op("STRIDED_SLICE", raw.inputs[:1], raw.outputs[:1], {"slices": tuple(slices)})]


def _shrunk_axes(block: Sequence[int], out: Sequence[int]) -> list[int] | None:
    """Which size-1 axes of `block` to drop so that it becomes `out` (None if impossible)."""
    if len(block) == len(out):
        return [] if list(block) == list(out) else None
    if not block:
        return None
    if out and block[0] == out[0]:
        rest = _shrunk_axes(block[1:], out[1:])
        if rest is not None:
            return [i + 1 for i in rest]
    if block[0] == 1:
        rest = _shrunk_axes(block[1:], out)
        if rest is not None:
            return [0] + [i + 1 for i in rest]
    return None


def write(low, op: Op) -> None:
    src, dst = low.graph[op.inputs[0]], low.graph[op.outputs[0]]
    bounds = [slice(*s).indices(d) for s, d in zip(op.attrs["slices"], src.shape)]
    block = [len(range(*b)) for b in bounds]
    shrink = _shrunk_axes(block, dst.shape)
    if shrink is None:
        raise ModelError(f"{op.name}: slices give {tuple(block)}, which cannot become {dst.shape}")
    begin, end, strides, end_mask, shrink_mask = [], [], [], 0, 0
    for axis, (start, stop, step) in enumerate(bounds):
        if axis in shrink:
            begin.append(start), end.append(start + 1), strides.append(1)
            shrink_mask |= 1 << axis
            continue
        begin.append(start), strides.append(step)
        if stop < 0:  # a negative step running past index 0: only the end mask can say so
            end.append(0)
            end_mask |= 1 << axis
        else:
            end.append(stop)
    inputs = [low.tensor(src.name), low.const_i32(f"{op.name}/begin", begin),
              low.const_i32(f"{op.name}/end", end), low.const_i32(f"{op.name}/strides", strides)]
    fields = {"BeginMask": 0, "EndMask": end_mask, "ShrinkAxisMask": shrink_mask}
    low.emit("STRIDED_SLICE", inputs, [low.tensor(dst.name)], ("StridedSliceOptions", fields))


OPERATOR = Operator("STRIDED_SLICE", read, (3, 4, ()), write, SPEC, check, reference, emit, version=2)
