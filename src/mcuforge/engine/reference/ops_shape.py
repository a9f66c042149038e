"""Reference kernels: RESHAPE, PAD, CONCATENATION, STRIDED_SLICE, PASTE (TRANSPOSE: mcuforge.operators).

All of them move int8 values without arithmetic, as TFLM does (its kernels copy raw bytes and ignore the
output's quantization), except:
- PAD writes its `value` attr (the quantized fill value; TFLM uses the output zero point by default);
- CONCATENATION requantizes an input whose scale or zero point differs from the output's, with TFLM's
  int8 requantization (as QUANTIZE int8 -> int8 does: MultiplyByQuantizedMultiplier(x - in_zp, M, S) +
  out_zp, M and S from double(in_scale) / double(out_scale)), then clamps to the fused activation.
  TFLM itself copies raw bytes whatever the parameters (and refuses fused activations), so for differing
  parameters the oracle is CONCATENATION preceded by a QUANTIZE per input, which is exactly what this is;
  with equal parameters and no activation both are the same plain copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...errors import ModelError, shown
from ...ir import Graph, Op, QuantParams
from ...quant import intmath
from .registry import kernel


@kernel("RESHAPE")
def reshape(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    out = graph[op.outputs[0]]
    if args[0].size != out.size:
        raise ModelError(f"{op.kind} {shown(op.name)}: cannot reshape {list(args[0].shape)} into {list(out.shape)}")
    return [args[0].reshape(out.shape)]


# ---------------------------------------------------------------- PAD


def pad_amounts(op: Op, graph: Graph) -> tuple[tuple[int, int], ...]:
    x, y = graph[op.inputs[0]], graph[op.outputs[0]]
    pads = tuple((int(a), int(b)) for a, b in op.attrs["pads"])
    if len(pads) != len(x.shape) or any(a < 0 or b < 0 for a, b in pads):
        raise ModelError(f"{op.kind} {shown(op.name)}: pads {pads} do not fit input {list(x.shape)}")
    if tuple(d + a + b for d, (a, b) in zip(x.shape, pads)) != tuple(y.shape):
        raise ModelError(f"{op.kind} {shown(op.name)}: pads {pads} on {list(x.shape)} do not give {list(y.shape)}")
    return pads


def pad_value(op: Op) -> int:
    value = int(op.attrs.get("value", 0))
    if not -128 <= value <= 127:
        raise ModelError(f"{op.kind} {shown(op.name)}: fill value {value} is not an int8")
    return value


@kernel("PAD")
def pad(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    return [np.pad(args[0], pad_amounts(op, graph), constant_values=pad_value(op))]


# ---------------------------------------------------------------- CONCATENATION


@dataclass(frozen=True)
class Requant:
    """int8 -> int8 requantization of one concatenation input."""

    input_zp: int
    multiplier: int
    shift: int
    output_zp: int


def concat_axis(op: Op, graph: Graph) -> int:
    rank = len(graph[op.outputs[0]].shape)
    axis = int(op.attrs.get("axis", 0))
    if not -rank <= axis < rank:
        raise ModelError(f"{op.kind} {shown(op.name)}: axis {axis} out of range for rank {rank}")
    axis %= rank
    out = graph[op.outputs[0]].shape
    shapes = [graph[n].shape for n in op.inputs]
    if any(len(s) != rank or s[:axis] != out[:axis] or s[axis + 1:] != out[axis + 1:] for s in shapes) \
            or sum(s[axis] for s in shapes) != out[axis]:
        raise ModelError(f"{op.kind} {shown(op.name)}: inputs {[list(s) for s in shapes]} do not concatenate along "
                         f"axis {axis} into {list(out)}")
    return axis


def _same_quant(a: QuantParams | None, b: QuantParams | None) -> bool:
    if a is None or b is None:
        return a is b
    return np.float32(a.s) == np.float32(b.s) and a.zp == b.zp


def concat_requants(op: Op, graph: Graph) -> list[Requant | None]:
    """Per input: None when it is copied as is, else its requantization to the output's parameters."""
    qo = graph[op.outputs[0]].quant
    out: list[Requant | None] = []
    for name in op.inputs:
        qi = graph[name].quant
        if _same_quant(qi, qo):
            out.append(None)
            continue
        if qi is None or qo is None:
            raise ModelError(f"{op.kind} {shown(op.name)}: input '{shown(name)}' and the output mix quantized and raw values")
        multiplier, shift = intmath.quantize_multiplier(float(np.float64(qi.s) / np.float64(qo.s)))
        out.append(Requant(qi.zp, multiplier, shift, qo.zp))
    return out


def concat_activation(op: Op, graph: Graph) -> tuple[int, int]:
    q = graph[op.outputs[0]].quant
    activation = str(op.attrs.get("activation", "NONE"))
    if q is None:
        if activation != "NONE":
            raise ModelError(f"{op.kind} {shown(op.name)}: a fused activation needs a quantized output")
        return -128, 127
    return intmath.activation_range(activation, q.s, q.zp)


@kernel("CONCATENATION")
def concatenation(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    axis = concat_axis(op, graph)
    lo, hi = concat_activation(op, graph)
    dtype = args[0].dtype
    parts = []
    for x, rq in zip(args, concat_requants(op, graph)):
        if rq is not None:
            x = intmath.multiply_by_quantized_multiplier(x.astype(np.int64) - rq.input_zp, rq.multiplier,
                                                         rq.shift) + rq.output_zp
        parts.append(x.astype(np.int64))
    out = np.concatenate(parts, axis=axis)
    if dtype == np.int8:
        out = np.clip(out, lo, hi)
    return [out.astype(dtype)]


# ---------------------------------------------------------------- STRIDED_SLICE


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
        raise ModelError(f"{op.kind} {shown(op.name)}: slices give {[len(r) for r in ranges]}, output is {list(y.shape)}")
    return tuple(ranges)


@kernel("STRIDED_SLICE")
def strided_slice(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    index = np.ix_(*(np.asarray(r, np.int64) for r in slice_ranges(op, graph)))
    return [np.ascontiguousarray(args[0][index]).reshape(graph[op.outputs[0]].shape)]


# ---------------------------------------------------------------- PASTE


def paste_block(op: Op, graph: Graph) -> tuple[slice, ...]:
    """Where in the output the patch goes: one slice per dimension."""
    out, patch = graph[op.outputs[0]], graph[op.inputs[1]]
    origin = tuple(op.attrs["origin"])
    if len(origin) != len(out.shape) or len(patch.shape) != len(out.shape) or any(
            o < 0 or o + p > n for o, p, n in zip(origin, patch.shape, out.shape)):
        raise ModelError(f"{op.kind} {shown(op.name)}: patch {list(patch.shape)} at {list(origin)} does not fit the "
                         f"output {list(out.shape)}")
    return tuple(slice(o, o + p) for o, p in zip(origin, patch.shape))


@kernel("PASTE")
def paste(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    out = graph[op.outputs[0]]
    y = np.zeros(out.shape, args[1].dtype) if args[0] is None else args[0].copy()
    y[paste_block(op, graph)] = args[1]
    return [y]
