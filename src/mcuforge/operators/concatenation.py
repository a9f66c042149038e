"""CONCATENATION on int8: the inputs' rows one after the other along `axis` (C: mcu_concat_s8.h, one row
copy per input), with a fused activation.

TFLM copies raw bytes whatever the quantization parameters (and refuses fused activations). Here an input
whose scale or zero point differs from the output's is requantized with TFLM's int8 requantization (as
QUANTIZE int8 -> int8: MultiplyByQuantizedMultiplier(x - in_zp, M, S) + out_zp, M and S from
double(in_scale) / double(out_scale)), then clamped to the fused activation. For differing parameters the
oracle is therefore CONCATENATION preceded by a QUANTIZE per input, which is exactly what this is; with
equal parameters and no activation both are the same plain copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import activation_of, options_of, where
from ..ir.graph import Graph, Op, QuantParams
from ..ir.ops import OpSpec
from ..quant import intmath
from .base import Operator

SPEC = OpSpec(("inputs...",), ("axis", "activation"))  # axis: non-negative


def check(op: Op, graph: Graph, where_: str) -> None:
    y = graph[op.outputs[0]].shape
    axis = op.attrs["axis"]
    shapes = [graph[n].shape for n in op.inputs]
    if not 0 <= axis < len(y) or any(len(s) != len(y) for s in shapes):
        raise ModelError(f"{where_}: inputs {[list(s) for s in shapes[:4]]} do not concatenate into {list(y)}")
    rest = [tuple(d for i, d in enumerate(s) if i != axis) for s in (*shapes, y)]
    if len(set(rest)) != 1 or sum(s[axis] for s in shapes) != y[axis]:
        raise ModelError(f"{where_}: inputs {[list(s) for s in shapes[:4]]} do not concatenate into {list(y)} "
                         f"on axis {axis}")


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
            raise ModelError(f"{op.kind} {shown(op.name)}: input '{shown(name)}' and the output mix quantized "
                             "and raw values")
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


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
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


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct
    from ..engine.codegen.loops import check_int8

    check_int8(op, ctx)
    axis = concat_axis(op, ctx.graph)
    lo, hi = concat_activation(op, ctx.graph)
    out_shape = ctx.tensor(op.outputs[0]).shape
    if ctx.tensor(op.outputs[0]).size == 0:
        return ""
    outer = int(np.prod(out_shape[:axis], dtype=np.int64))
    out_row = int(np.prod(out_shape[axis:], dtype=np.int64))
    ctx.use("mcu_concat_s8.h")
    calls, offset = [], 0
    for name, rq in zip(op.inputs, concat_requants(op, ctx.graph)):
        in_row = int(np.prod(ctx.tensor(name).shape[axis:], dtype=np.int64))
        if in_row == 0:
            continue
        if rq is None and (lo, hi) == (-128, 127):
            quant = "(const mcu_concat_quant *)0"
        else:
            fields = {"rescale": int(rq is not None), "input_zp": rq.input_zp if rq else 0,
                      "multiplier": rq.multiplier if rq else 0, "shift": rq.shift if rq else 0,
                      "output_zp": rq.output_zp if rq else 0, "act_min": lo, "act_max": hi}
            quant = c_struct("mcu_concat_quant", fields)
        dst = ctx.ptr(op.outputs[0]) + (f" + {offset}" if offset else "")
        calls.append(c_call("mcu_concat_s8", [ctx.ptr(name), str(outer), str(in_row), str(out_row), quant, dst]))
        offset += in_row
    return "\n".join(calls)


def read(raw, tensors: dict) -> list[Op]:
    opt = options_of(raw, "ConcatenationOptions", required=True)
    rank = len(tensors[raw.outputs[0]].shape)
    axis = opt.Axis()
    if not -rank <= axis < rank:
        raise ModelError(f"{where(raw)}: axis {axis} out of range for rank {rank}")
    attrs = {"axis": axis % rank, "activation": activation_of(raw, opt.FusedActivationFunction())}
    return [Op("CONCATENATION", raw.inputs, raw.outputs[:1], attrs)]


def write(low, op: Op) -> None:
    from ..frontends.tflite_writer import ACTIVATION_CODES

    fields = {"Axis": int(op.attrs["axis"]),
              "FusedActivationFunction": ACTIVATION_CODES[op.attrs.get("activation", "NONE")]}
    low.emit("CONCATENATION", [low.tensor(n) for n in op.inputs], [low.tensor(op.outputs[0])],
             ("ConcatenationOptions", fields))


OPERATOR = Operator("CONCATENATION", read, (1, 1 << 10, ()), write, SPEC, check, reference, emit, version=2)
