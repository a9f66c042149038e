"""SPLIT and SPLIT_V on int8 activations, lowered by the reader: one STRIDED_SLICE per output.

SPLIT cuts an axis into equal parts (its operands: the axis, then the tensor); SPLIT_V into the given sizes,
one of which may be -1 (the rest). TFLM copies the bytes, so all tensors share one quantization.
"""
from __future__ import annotations

from ..errors import ModelError
from ..frontends.tflite_ops import options_of, where
from ..ir.graph import Op, Tensor
from .base import Operator
from .lowering import axis_of, axis_slice, same_bytes


def _constant(raw, tensors: dict[str, Tensor], name: str, what: str) -> list[int]:
    t = tensors[name]
    if t.data is None or t.dtype not in ("int32", "int64"):
        raise ModelError(f"{where(raw)}: the {what} must be a constant integer tensor")
    return [int(v) for v in t.data.reshape(-1)]


def _parts(raw, tensors: dict[str, Tensor], x: Tensor, axis: int, sizes: list[int]) -> list[Op]:
    if len(sizes) != len(raw.outputs) or sum(sizes) != x.shape[axis] or min(sizes) < 1:
        raise ModelError(f"{where(raw)}: sizes {sizes[:8]} do not split axis {axis} of {list(x.shape)} into "
                         f"{len(raw.outputs)} outputs")
    ops, start = [], 0
    for size, name in zip(sizes, raw.outputs):
        expect = (*x.shape[:axis], size, *x.shape[axis + 1:])
        if tensors[name].shape != expect:
            raise ModelError(f"{where(raw)}: output {list(tensors[name].shape)}; {list(expect)} expected")
        ops.append(axis_slice(raw, x, axis, start, start + size, name))
        start += size
    return ops


def read_split(raw, tensors: dict[str, Tensor]) -> list[Op]:
    opt = options_of(raw, "SplitOptions")
    x = same_bytes(raw, tensors, (raw.inputs[1], *raw.outputs))
    axis_values = _constant(raw, tensors, raw.inputs[0], "axis")
    if len(axis_values) != 1:
        raise ModelError(f"{where(raw)}: the axis must be one value")
    axis = axis_of(raw, axis_values[0], len(x.shape))
    count = opt.NumSplits() if opt else len(raw.outputs)
    if count != len(raw.outputs) or x.shape[axis] % count:
        raise ModelError(f"{where(raw)}: axis {axis} of {list(x.shape)} does not split into {count} equal parts")
    return _parts(raw, tensors, x, axis, [x.shape[axis] // count] * count)


def read_split_v(raw, tensors: dict[str, Tensor]) -> list[Op]:
    x = same_bytes(raw, tensors, (raw.inputs[0], *raw.outputs))
    sizes = _constant(raw, tensors, raw.inputs[1], "size list")
    axis_values = _constant(raw, tensors, raw.inputs[2], "axis")
    if len(axis_values) != 1:
        raise ModelError(f"{where(raw)}: the axis must be one value")
    axis = axis_of(raw, axis_values[0], len(x.shape))
    if sizes.count(-1) > 1:
        raise ModelError(f"{where(raw)}: more than one size is -1")
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    return _parts(raw, tensors, x, axis, sizes)


def _sizes(low, op: Op) -> list[int]:
    return [low.graph[n].shape[int(op.attrs["axis"])] for n in op.outputs]


def write_split(low, op: Op) -> None:
    axis = low.const_i32(f"{op.name}/axis", [int(op.attrs["axis"])], shape=())
    low.emit("SPLIT", [axis, low.tensor(op.inputs[0])], [low.tensor(n) for n in op.outputs],
             ("SplitOptions", {"NumSplits": len(op.outputs)}))


def write_split_v(low, op: Op) -> None:
    sizes = low.const_i32(f"{op.name}/sizes", _sizes(low, op))
    axis = low.const_i32(f"{op.name}/axis", [int(op.attrs["axis"])], shape=())
    low.emit("SPLIT_V", [low.tensor(op.inputs[0]), sizes, axis], [low.tensor(n) for n in op.outputs],
             ("SplitVOptions", {"NumSplits": len(op.outputs)}))


OPERATORS = (Operator("SPLIT", read_split, (2, 2, ()), write_split, version=2, many_outputs=True),
             Operator("SPLIT_V", read_split_v, (3, 3, ()), write_split_v, version=2, many_outputs=True))
