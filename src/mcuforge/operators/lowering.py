"""Shared by the operators the reader lowers into canonical ones (PACK, UNPACK, SPLIT, SPLIT_V, GATHER):
fresh tensor names, the byte-copy contract, slices along one axis.

These operators move bytes: TFLM copies them unchanged, so every input and output must have the same type
and quantization (the converter makes them so); the lowered ops then copy the same bytes. Every op a
lowering makes is named after the operator's first output: its origin layer, as data.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import ModelError, shown
from ..frontends.tflite_ops import where
from ..ir.graph import Op, Tensor


def fresh(tensors: dict[str, Tensor], base: str) -> str:
    """A tensor name not yet taken, made from `base`."""
    name, n = base, 1
    while name in tensors:
        name, n = f"{base}_{n}", n + 1
    return name


def same_bytes(raw, tensors: dict[str, Tensor], names: Sequence[str]) -> Tensor:
    """The first tensor of `names`, after checking that all are int8 with its quantization."""
    first = tensors[names[0]]
    for n in names:
        t = tensors[n]
        if t.dtype != "int8" or t.quant is None or t.quant.per_channel:
            raise ModelError(f"{where(raw)}: {shown(n)} is {t.dtype}; the engine runs this operator on int8 "
                             "activations quantized per tensor")
        if float(t.quant.s) != float(first.quant.s) or t.quant.zp != first.quant.zp:
            raise ModelError(f"{where(raw)}: {shown(n)} is quantized unlike {shown(first.name)}; TFLM copies the "
                             "bytes unchanged, so all must share one scale and zero point")
    return first


def axis_of(raw, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ModelError(f"{where(raw)}: axis {axis} out of range for rank {rank}")
    return axis % rank


def axis_slice(raw, source: Tensor, axis: int, start: int, stop: int, output: str) -> Op:
    """output = source[..., start:stop, ...] along `axis` (the output's shape may drop that axis)."""
    slices = tuple((start, stop, 1) if d == axis else (0, n, 1) for d, n in enumerate(source.shape))
    return Op("STRIDED_SLICE", (source.name,), (output,), {"slices": slices}, name=raw.outputs[0])
