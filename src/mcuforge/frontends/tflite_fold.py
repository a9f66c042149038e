"""Constant folding at read time: operators whose result is known before the model runs become constants.

The Keras converter leaves shape arithmetic in models: SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE computes
a RESHAPE's target shape from a tensor whose shape is static anyway. Such subgraphs are evaluated here, in
numpy, while the model is read; their outputs become constant tensors and the operators disappear, so the
planner never sees them and the generated code does not run them.

An operator folds when it is SHAPE (of any tensor: shapes are static), or when every input is a constant
and it is one of FOLDERS: data movement (PACK, UNPACK, SPLIT, SPLIT_V, STRIDED_SLICE, CONCATENATION,
GATHER, RESHAPE, SQUEEZE, EXPAND_DIMS, CAST) on any element type, and integer arithmetic (ADD, SUB, MUL, FLOOR_DIV,
MAXIMUM, MINIMUM) on unquantized int32/int64 tensors, the types shape arithmetic uses. Quantized
arithmetic on constants is left to the engine, which runs it with TFLM's rounding.

A folded value must have the shape and type its output tensor declares; anything else is refused as a
corrupt model, naming the operator.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from ..errors import ModelError
from ..ir import Tensor
from .tflite_ops import RawOp, options_of, where

Folder = Callable[[RawOp, Sequence[np.ndarray], dict[str, Tensor]], list[np.ndarray]]
_SHAPE_TYPES = ("int32", "int64")
MAX_FOLDED = 1 << 16  # elements; shape arithmetic is tiny, a larger constant result is not worth baking in


def _axis(raw: RawOp, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ModelError(f"{where(raw)}: axis {axis} out of range for rank {rank}")
    return axis % rank


def _shape(raw: RawOp, args: Sequence[np.ndarray], tensors: dict[str, Tensor]) -> list[np.ndarray]:
    return [np.array(tensors[raw.inputs[0]].shape, np.int64)]


def _pack(raw: RawOp, args: Sequence[np.ndarray], tensors: dict[str, Tensor]) -> list[np.ndarray]:
    opt = options_of(raw, "PackOptions")
    axis = opt.Axis() if opt else 0
    if len({a.shape for a in args}) != 1:
        raise ModelError(f"{where(raw)}: the packed values differ in shape")
    return [np.stack(args, axis=_axis(raw, axis, args[0].ndim + 1))]


def _unpack(raw: RawOp, args: Sequence[np.ndarray], tensors: dict[str, Tensor]) -> list[np.ndarray]:
    opt = options_of(raw, "UnpackOptions")
    axis = _axis(raw, opt.Axis() if opt else 0, args[0].ndim)
    return [np.take(args[0], i, axis=axis) for i in range(args[0].shape[axis])]


def _split(raw: RawOp, args: Sequence[np.ndarray], tensors: dict[str, Tensor]) -> list[np.ndarray]:
    """SPLIT (axis, tensor) into equal parts; SPLIT_V (tensor, sizes, axis), one size may be -1."""
    if raw.kind == "SPLIT":
        axis, x = int(np.asarray(args[0]).reshape(-1)[0]), args[1]
        axis = _axis(raw, axis, x.ndim)
        if x.shape[axis] % len(raw.outputs):
            raise ModelError(f"{where(raw)}: axis {axis} of {list(x.shape)} does not split into {len(raw.outputs)}")
        return list(np.split(x, len(raw.outputs), axis=axis))
    x, sizes = args[0], [int(v) for v in np.asarray(args[1]).reshape(-1)]
    axis = _axis(raw, int(np.asarray(args[2]).reshape(-1)[0]), x.ndim)
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    if sum(sizes) != x.shape[axis] or min(sizes) < 0:
        raise ModelError(f"{where(raw)}: sizes {sizes[:8]} do not split axis {axis} of {list(x.shape)}")
    return list(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _strided_slice(raw: RawOp, args: Sequence[np.ndarray], tensors: dict[str, Tensor]) -> list[np.ndarray]:
    from ..operators.strided_slice import slices_of

    index = tuple(slice(b, e, s) for b, e, s in slices_of(raw, tensors))
    return [args[0][index]]


def _concat(raw: RawOp, args: Sequence[np.ndarray], tensors: dict[str, Tensor]) -> list[np.ndarray]:
    opt = options_of(raw, "ConcatenationOptions", required=True)
    if opt.FusedActivationFunction():
        raise ModelError(f"{where(raw)}: a fused activation on constant shape values")
    return [np.concatenate(args, axis=_axis(raw, opt.Axis(), args[0].ndim))]


def _gather(raw: RawOp, args: Sequence[np.ndarray], tensors: dict[str, Tensor]) -> list[np.ndarray]:
    opt = options_of(raw, "GatherOptions")
    axis = _axis(raw, opt.Axis() if opt else 0, args[0].ndim)
    if opt is not None and opt.BatchDims():
        raise ModelError(f"{where(raw)}: GATHER with batch dimensions is not supported")
    indices = args[1].astype(np.int64)
    n = args[0].shape[axis]
    if np.any((indices < 0) | (indices >= n)):
        raise ModelError(f"{where(raw)}: an index lies outside axis {axis} of {list(args[0].shape)}")
    return [np.take(args[0], indices, axis=axis)]


def _same(raw: RawOp, args: Sequence[np.ndarray], tensors: dict[str, Tensor]) -> list[np.ndarray]:
    return [args[0]]  # RESHAPE, SQUEEZE, EXPAND_DIMS, CAST: the output's declared shape and type follow


_ARITHMETIC: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "ADD": np.add, "SUB": np.subtract, "MUL": np.multiply, "MAXIMUM": np.maximum, "MINIMUM": np.minimum,
}


def _arithmetic(raw: RawOp, args: Sequence[np.ndarray], tensors: dict[str, Tensor]) -> list[np.ndarray]:
    if any(tensors[n].dtype not in _SHAPE_TYPES or tensors[n].quant is not None for n in (*raw.inputs, *raw.outputs)):
        raise _NotFoldable
    a, b = (x.astype(np.int64) for x in args)
    if raw.kind == "FLOOR_DIV":
        if np.any(b == 0):
            raise ModelError(f"{where(raw)}: division by zero in the model's shape arithmetic")
        return [np.floor_divide(a, b)]
    return [_ARITHMETIC[raw.kind](a, b)]


class _NotFoldable(Exception):
    """The op has constant inputs but is not shape arithmetic: the engine runs it."""


FOLDERS: dict[str, Folder] = {
    "SHAPE": _shape, "PACK": _pack, "UNPACK": _unpack, "SPLIT": _split, "SPLIT_V": _split,
    "STRIDED_SLICE": _strided_slice,
    "CONCATENATION": _concat, "GATHER": _gather, "RESHAPE": _same, "SQUEEZE": _same, "EXPAND_DIMS": _same,
    "CAST": _same, "FLOOR_DIV": _arithmetic, **{k: _arithmetic for k in _ARITHMETIC},
}


def fold_constants(raws: Sequence[RawOp], tensors: dict[str, Tensor]) -> list[RawOp]:
    """The operators left after folding, in order; `tensors` gets the folded values as constants."""
    kept: list[RawOp] = []
    for raw in raws:
        fold = FOLDERS.get(raw.kind)
        inputs = [n for n in raw.inputs if n]
        constant = raw.kind == "SHAPE" or (bool(inputs) and all(tensors[n].is_const for n in inputs))
        if fold is None or not constant:
            kept.append(raw)
            continue
        try:
            values = fold(raw, [tensors[n].data for n in inputs], tensors)
        except _NotFoldable:
            kept.append(raw)
            continue
        if len(values) != len(raw.outputs):
            raise ModelError(f"{where(raw)}: {len(raw.outputs)} outputs, but the operator gives {len(values)}")
        for name, value in zip(raw.outputs, values):
            tensors[name] = _constant(raw, tensors[name], value)
    return kept


def _constant(raw: RawOp, t: Tensor, value: np.ndarray) -> Tensor:
    if value.size > MAX_FOLDED:
        raise ModelError(f"{where(raw)}: folds to {value.size:,} constant values; over the {MAX_FOLDED:,} the "
                         "reader evaluates")
    if value.size != t.size:
        raise ModelError(f"{where(raw)}: gives {list(value.shape)}, but its output is declared {list(t.shape)}")
    kind = np.dtype(t.dtype).kind if t.dtype != "bool" else "b"
    if kind in "iu" and value.dtype.kind in "iu":
        info = np.iinfo(t.dtype)
        if value.size and (value.min() < info.min or value.max() > info.max):
            raise ModelError(f"{where(raw)}: a value does not fit the output's {t.dtype}")
    return dataclasses.replace(t, data=value.astype(t.dtype).reshape(t.shape))
