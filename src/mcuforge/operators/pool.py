"""AVERAGE_POOL_2D and MAX_POOL_2D on int8 (TFLM semantics), one module for the pair: geometry, reference,
emitter over mcu_pool_s8.h (its channels-innermost variants). Moved into the registry from the stages'
modules.

Pooling (TFLM reference_integer_ops::AveragePool / MaxPool), per output element:
- the window starts at (oy * stride_h - pad_top, ox * stride_w - pad_left) and is clipped to the input
  (only the top/left pads matter; the bottom/right ones are implied by the output size);
- average: sum of the raw int8 values inside the input (no zero point), divided by the number of those
  values, rounded half away from zero (C truncating division of acc +- count/2); an empty window is an
  error in TFLM (Eval fails), so it is a ModelError here;
- max: the largest raw value inside the input, starting from -128;
- then a clamp to the fused activation's range on the output's quantization. Nothing is rescaled: TFLite
  pools keep their input's quantization.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ModelError, shown
from ..frontends.tflite_ops import activation_of, check_rank, options_of, window, window_pads
from ..ir.graph import Graph, Op, Tensor
from ..ir.ops import OpSpec
from ..ir.shapes import check_summed, windowed
from ..quant import intmath
from .base import Operator

SPEC = OpSpec(("input",), ("filter", "stride", "pad", "activation"))


def check(op: Op, graph: Graph, where_: str) -> None:
    windowed(op, graph, where_, tuple(op.attrs["filter"]), graph[op.inputs[0]].shape[-1])
    if op.kind == "AVERAGE_POOL_2D":
        check_summed(where_, math.prod(op.attrs["filter"]))


@dataclass(frozen=True)
class PoolGeometry:
    batches: int
    in_h: int
    in_w: int
    channels: int
    out_h: int
    out_w: int
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int


def pool_geometry(op: Op, graph: Graph) -> PoolGeometry:
    x, y = graph[op.inputs[0]], graph[op.outputs[0]]
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise ModelError(f"{op.kind} {shown(op.name)}: input {list(x.shape)} and output {list(y.shape)} must be 4-D")
    if x.shape[0] != y.shape[0] or x.shape[3] != y.shape[3]:
        raise ModelError(f"{op.kind} {shown(op.name)}: input {list(x.shape)} and output {list(y.shape)} differ in "
                         "batches or channels")
    fh, fw = (int(v) for v in op.attrs["filter"])
    sh, sw = (int(v) for v in op.attrs["stride"])
    top, _, left, _ = (int(v) for v in op.attrs["pad"])
    if min(fh, fw, sh, sw) < 1 or min(top, left) < 0:
        raise ModelError(f"{op.kind} {shown(op.name)}: invalid filter {(fh, fw)}, stride {(sh, sw)} or pads")
    return PoolGeometry(x.shape[0], x.shape[1], x.shape[2], x.shape[3], y.shape[1], y.shape[2],
                        fh, fw, sh, sw, top, left)


def _activation_bounds(op: Op, out: Tensor) -> tuple[int, int]:
    q = out.quant
    if q is None:
        raise ModelError(f"{op.kind} {shown(op.name)}: output '{out.name}' has no quantization")
    return intmath.activation_range(str(op.attrs.get("activation", "NONE")), q.s, q.zp)


def pool_activation(op: Op, graph: Graph) -> tuple[int, int]:
    """The clamp of the fused activation, on the output's quantization (as TFLM's pooling Prepare)."""
    return _activation_bounds(op, graph[op.outputs[0]])


def _windows(x: np.ndarray, g: PoolGeometry, fill: int) -> tuple[np.ndarray, np.ndarray]:
    """Every output position's window: values [N, OH, OW, C, FH, FW] (int64, `fill` outside the input)
    and the in-bounds mask [OH, OW, FH, FW]."""
    need_h = (g.out_h - 1) * g.stride_h + g.filter_h
    need_w = (g.out_w - 1) * g.stride_w + g.filter_w
    below = max(need_h - g.pad_top - g.in_h, 0)
    right = max(need_w - g.pad_left - g.in_w, 0)
    spatial = ((g.pad_top, below), (g.pad_left, right))
    padded = np.pad(x.astype(np.int64), ((0, 0), *spatial, (0, 0)), constant_values=fill)
    inside = np.pad(np.ones((g.in_h, g.in_w), np.bool_), spatial, constant_values=False)
    values = sliding_window_view(padded, (g.filter_h, g.filter_w), axis=(1, 2))
    mask = sliding_window_view(inside, (g.filter_h, g.filter_w))
    rows = slice(0, need_h - g.filter_h + 1, g.stride_h)
    cols = slice(0, need_w - g.filter_w + 1, g.stride_w)
    return values[:, rows, cols], mask[rows, cols]


def divide_round_half_away(acc: np.ndarray, count: np.ndarray | int) -> np.ndarray:
    """TFLM's pooling division: acc > 0 ? (acc + count/2) / count : (acc - count/2) / count, C truncation."""
    acc = np.asarray(acc, np.int64)
    count = np.asarray(count, np.int64)
    half = count // 2
    return np.where(acc > 0, (acc + half) // count, -((half - acc) // count))


def average_pool_2d(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    g = pool_geometry(op, graph)
    lo, hi = pool_activation(op, graph)
    values, mask = _windows(args[0], g, 0)
    count = mask.sum(axis=(-2, -1)).astype(np.int64)  # [OH, OW]
    if count.size and count.min() == 0:
        raise ModelError(f"{op.kind} {shown(op.name)}: some pooling windows lie entirely in the padding")
    acc = values.sum(axis=(-2, -1))  # [N, OH, OW, C]
    out = divide_round_half_away(acc, count[None, :, :, None])
    return [np.clip(out, lo, hi).astype(np.int8)]


def max_pool_2d(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    g = pool_geometry(op, graph)
    lo, hi = pool_activation(op, graph)
    values, _ = _windows(args[0], g, -128)
    return [np.clip(values.max(axis=(-2, -1)), lo, hi).astype(np.int8)]


def read(raw, tensors: dict) -> list[Op]:
    opt = options_of(raw, "Pool2DOptions", required=True)
    x = check_rank(raw, tensors, 0, 4, "input")
    y = check_rank(raw, tensors, -1, 4, "output")
    kernel = window(raw, "filter", (opt.FilterHeight(), opt.FilterWidth()))
    stride = window(raw, "stride", (opt.StrideH(), opt.StrideW()))
    pads = window_pads(raw, opt.Padding(), x.shape[1:3], y.shape[1:3], kernel, stride, (1, 1))
    attrs = {"filter": kernel, "stride": stride, "pad": pads,
             "activation": activation_of(raw, opt.FusedActivationFunction())}
    return [Op(raw.kind, raw.inputs[:1], raw.outputs[:1], attrs)]


def write(low, op: Op) -> None:
    from ..frontends.tflite_writer import ACTIVATION_CODES, window_op

    a = op.attrs
    src, padding = window_op(low, op, a["filter"], (1, 1))
    fields = {"Padding": padding, "StrideH": a["stride"][0], "StrideW": a["stride"][1],
              "FilterHeight": a["filter"][0], "FilterWidth": a["filter"][1],
              "FusedActivationFunction": ACTIVATION_CODES[a.get("activation", "NONE")]}
    low.emit(op.kind, [src], [low.tensor(op.outputs[0])], ("Pool2DOptions", fields))


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct
    from ..engine.codegen.loops import check_int8

    fn = "mcu_avgpool_s8" if op.kind == "AVERAGE_POOL_2D" else "mcu_maxpool_s8"
    check_int8(op, ctx)
    g = pool_geometry(op, ctx.graph)
    lo, hi = pool_activation(op, ctx.graph)
    if fn == "mcu_avgpool_s8":
        for o, stride, pad, filt, size in ((g.out_h, g.stride_h, g.pad_top, g.filter_h, g.in_h),
                                           (g.out_w, g.stride_w, g.pad_left, g.filter_w, g.in_w)):
            first = np.arange(o) * stride - pad
            if o and (np.minimum(filt, size - first) <= np.maximum(0, -first)).any():
                raise ModelError(f"{op.kind} {shown(op.name)}: some pooling windows lie entirely in the padding")
    if ctx.tensor(op.outputs[0]).size == 0:
        return ""
    ctx.use("mcu_pool_s8.h")
    params = {"batches": g.batches, "in_h": g.in_h, "in_w": g.in_w, "channels": g.channels,
              "out_h": g.out_h, "out_w": g.out_w, "filter_h": g.filter_h, "filter_w": g.filter_w,
              "stride_h": g.stride_h, "stride_w": g.stride_w, "pad_top": g.pad_top, "pad_left": g.pad_left,
              "act_min": lo, "act_max": hi}
    # the fast variant (channels innermost) of each pool kernel; mcu_avgpool_s8 / mcu_maxpool_s8 are the
    # reference variants with the same results
    return c_call(fn + "_channels", [c_struct("mcu_pool_params", params), ctx.ptr(op.inputs[0]),
                                     ctx.ptr(op.outputs[0])])


OPERATORS = (Operator("AVERAGE_POOL_2D", read, (1, 1, ()), write, SPEC, check, average_pool_2d, emit, version=2),
             Operator("MAX_POOL_2D", read, (1, 1, ()), write, SPEC, check, max_pool_2d, emit, version=2))
