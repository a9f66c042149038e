"""One TFLite tensor -> an IR Tensor, with every field checked: type, shape, data, quantization."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..errors import ModelError, shown
from ..ir import QuantParams, Tensor

TFLITE_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16",
                 9: "int8", 17: "int4"}  # int4: packed two per byte; read as int8 values in the int4 format
MAX_RANK = 6
MAX_ELEMENTS = 1 << 28
# Scales outside [2^-60, 2^60] are corrupt, not quantization: products of two stay normal float32 values.
MIN_SCALE, MAX_SCALE = 2.0 ** -60, 2.0 ** 60
ZERO_POINT_RANGE = {"int4": (-8, 7), "int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (0, 0), "int64": (0, 0)}


def read_tensor(model, t, index: int, taken: Mapping[str, Tensor]) -> Tensor:
    """Tensor #index of the subgraph; `taken`: the names given so far (duplicates get '#index')."""
    name = _unique_name(t.Name(), index, taken)
    label = f"tensor #{index} {shown(name)}"
    ttype = t.Type()
    if ttype not in TFLITE_DTYPES:
        raise ModelError(f"{label}: element type #{ttype} is not supported (int8 models only)")
    dtype = TFLITE_DTYPES[ttype]
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    if len(shape) > MAX_RANK:
        raise ModelError(f"{label}: rank {len(shape)}; the engine runs tensors of rank {MAX_RANK} at most")
    if any(d < 0 for d in shape):
        raise ModelError(f"{label}: dynamic or negative shape {list(shape)}; "
                         "give the model a fixed input shape before converting")
    if math.prod(shape) > MAX_ELEMENTS:
        raise ModelError(f"{label}: shape {list(shape)} is implausibly large (corrupt file?)")
    if t.Sparsity() is not None:
        raise ModelError(f"{label}: sparse tensors are not supported; convert with dense weights")
    quant = _quant(t.Quantization(), shape, dtype, label)
    data = _data(model, t, shape, dtype, label)
    if t.IsVariable() and data is not None:
        raise ModelError(f"{label}: a state (variable) tensor with initial values; the engine, as TFLM, starts "
                         "state at its zero point")
    if dtype == "int4":
        if data is None:
            raise ModelError(f"{label}: an int4 tensor without data; only constant weights may be int4")
        return Tensor(name=name, shape=shape, dtype="int8", quant=quant, data=data, format="int4")
    return Tensor(name=name, shape=shape, dtype=dtype, quant=quant, data=data, variable=bool(t.IsVariable()))


def _unique_name(raw: bytes | None, index: int, taken: Mapping[str, Tensor]) -> str:
    name = raw.decode("utf-8", "replace") if raw else f"tensor_{index}"
    if name in taken:
        name = f"{name}#{index}"
        while name in taken:
            name += "'"
    return name


def _data(model, t, shape: tuple[int, ...], dtype: str, label: str) -> np.ndarray | None:
    b = t.Buffer()
    if not 0 <= b < model.BuffersLength():
        raise ModelError(f"{label}: buffer #{b} does not exist (the model has {model.BuffersLength()})")
    buf = model.Buffers(b)
    if buf.Offset() > 1:
        raise ModelError(f"{label}: weights stored outside the flatbuffer (models over 2 GB) are not supported")
    if buf.DataLength() == 0:
        return None
    if dtype == "float16":
        raise ModelError(f"{label}: float16 weights are not supported; convert with int8 quantization")
    raw = buf.DataAsNumpy().tobytes()
    if dtype == "int4":  # two values per byte, low nibble first (ir.formats)
        from ..ir.formats import unpack_int4

        count = math.prod(shape)
        if len(raw) != (count + 1) // 2:
            raise ModelError(f"{label}: {len(raw)} bytes of int4 data for shape {list(shape)} "
                             f"({(count + 1) // 2} expected)")
        return unpack_int4(np.frombuffer(raw, np.uint8), count).reshape(shape)
    expect = math.prod(shape) * np.dtype(dtype).itemsize
    if len(raw) != expect:
        raise ModelError(f"{label}: {len(raw)} bytes of data for shape {list(shape)} {dtype} ({expect} expected)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _quant(q, shape: tuple[int, ...], dtype: str, label: str) -> QuantParams | None:
    if q is None or q.ScaleLength() == 0:
        if q is not None and q.ZeroPointLength():
            raise ModelError(f"{label}: zero points without scales")
        return None
    scale = q.ScaleAsNumpy().astype(np.float32)
    zp = q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else np.zeros(scale.size, np.int64)
    if zp.size == 1 and scale.size > 1:
        zp = np.full(scale.size, zp[0], np.int64)
    if zp.size != scale.size:
        raise ModelError(f"{label}: {scale.size} scales but {zp.size} zero points")
    bad = ~np.isfinite(scale) | (scale < MIN_SCALE) | (scale > MAX_SCALE)
    if np.any(bad):
        raise ModelError(f"{label}: quantization scale {float(scale[bad][0]):g} is not a plausible scale "
                         f"(a finite value in [2^-60, 2^60]); the file is corrupt")
    lo, hi = ZERO_POINT_RANGE.get(dtype, (-(1 << 31), (1 << 31) - 1))
    if dtype in ("float32", "float16", "bool"):
        lo, hi = -(1 << 31), (1 << 31) - 1
    if np.any((zp < lo) | (zp > hi)):
        raise ModelError(f"{label}: zero point {int(zp[(zp < lo) | (zp > hi)][0])} lies outside the {dtype} "
                         f"range [{lo}, {hi}]")
    if scale.size == 1:
        return QuantParams(scale=scale, zero_point=zp, axis=None)
    axis = int(q.QuantizedDimension())
    if not 0 <= axis < len(shape) or shape[axis] != scale.size:
        raise ModelError(f"{label}: {scale.size} per-channel scales on dimension {axis} of shape {list(shape)}; "
                         "they must match that dimension")
    return QuantParams(scale=scale, zero_point=zp, axis=axis)
