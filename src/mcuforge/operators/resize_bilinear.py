"""RESIZE_BILINEAR on int8 (TFLM's ResizeBilinearInteger, the pip build's double rounding).

Each output row y (and column x alike) reads the input at the 10-bit fixed-point position
    p = y * s + (s / 2 - 512 with half-pixel centers),  s = round(1024 * in / out)
(align corners: s = round(1024 * (in - 1) / (out - 1))), between rows y0 = max(p / 1024, 0) and
y1 = min(ceil(p / 1024), in - 1), divisions truncating toward zero. The output is the four raw int8
neighbours weighted by (1024 - d) and d per axis, d = p - 1024 * y0 (negative before the first row: the
edge row then weighs more than 1024), summed in 20 fractional bits and rounded half away from zero. The
values are raw: input and output share one quantization (the converter makes them so; TFLM ignores it).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import options_of, where
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from .base import Operator

SPEC = OpSpec(("input",), ("align_corners", "half_pixel_centers"), typed=True)
MAX_SIDE = 1 << 12  # 10-bit positions of a row index stay far inside int32


def check(op: Op, graph: Graph, where_: str) -> None:
    x, y = graph[op.inputs[0]], graph[op.outputs[0]]
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[0] != y.shape[0] or x.shape[3] != y.shape[3]:
        raise ModelError(f"{where_}: input {list(x.shape)} and output {list(y.shape)} must be NHWC with the same "
                         "batch and channels")
    if max(*x.shape[1:3], *y.shape[1:3]) > MAX_SIDE:
        raise ModelError(f"{where_}: sides over {MAX_SIDE} are not supported")
    for t in (x, y):
        if t.dtype != "int8" or t.quant is None or t.quant.per_channel:
            raise ModelError(f"{where_}: {shown(t.name)} is {t.dtype}; int8 quantized per tensor expected")
    if float(x.quant.s) != float(y.quant.s) or x.quant.zp != y.quant.zp:
        raise ModelError(f"{where_}: input and output are quantized differently; TFLM interpolates the raw values, "
                         "so they must share one scale and zero point")
    if op.attrs["align_corners"] and op.attrs["half_pixel_centers"]:
        raise ModelError(f"{where_}: align_corners and half_pixel_centers cannot both be set")


def read(raw, tensors: dict) -> list[Op]:
    opt = options_of(raw, "ResizeBilinearOptions")
    size = tensors[raw.inputs[1]]
    y = tensors[raw.outputs[0]]
    if size.data is None or [int(v) for v in size.data.reshape(-1)] != list(y.shape[1:3]):
        raise ModelError(f"{where(raw)}: the size must be a constant equal to the output's height and width")
    attrs = {"align_corners": bool(opt.AlignCorners()) if opt else False,
             "half_pixel_centers": bool(opt.HalfPixelCenters()) if opt else False}
    return [Op("RESIZE_BILINEAR", raw.inputs[:1], raw.outputs[:1], attrs)]


def write(low, op: Op) -> None:
    size = low.const_i32(f"{op.name}/size", list(low.graph[op.outputs[0]].shape[1:3]))
    low.emit("RESIZE_BILINEAR", [low.tensor(op.inputs[0]), size], [low.tensor(op.outputs[0])],
             ("ResizeBilinearOptions", {"AlignCorners": bool(op.attrs["align_corners"]),
                                        "HalfPixelCenters": bool(op.attrs["half_pixel_centers"])}))


def scale_10(size_in: int, size_out: int, align_corners: bool) -> int:
    if align_corners and size_out > 1:
        return ((1 << 10) * (size_in - 1) + (size_out - 1) // 2) // (size_out - 1)
    return ((1 << 10) * size_in + size_out // 2) // size_out


def _tdiv(a: np.ndarray, b: int) -> np.ndarray:
    """C's integer division: truncation toward zero."""
    return np.sign(a) * (np.abs(a) // b)


def positions(size_in: int, size_out: int, op: Op) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position in 10 fractional bits, lower index, upper index) of every output row or column."""
    s = scale_10(size_in, size_out, bool(op.attrs["align_corners"]))
    p = np.arange(size_out, dtype=np.int64) * s
    if op.attrs["half_pixel_centers"]:
        p = p + s // 2 - (1 << 9)
    lo = np.maximum(_tdiv(p, 1 << 10), 0)
    hi = np.minimum(_tdiv(p + (1 << 10) - 1, 1 << 10), size_in - 1)
    return p, lo, hi


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    x = np.asarray(args[0], np.int64)
    out_h, out_w = graph[op.outputs[0]].shape[1:3]
    py, y0, y1 = positions(x.shape[1], out_h, op)
    px, x0, x1 = positions(x.shape[2], out_w, op)
    dy = (py - (y0 << 10))[None, :, None, None]
    dx = (px - (x0 << 10))[None, None, :, None]
    rows0, rows1 = x[:, y0], x[:, y1]
    total = (rows0[:, :, x0] * ((1 << 10) - dy) * ((1 << 10) - dx) + rows1[:, :, x0] * dy * ((1 << 10) - dx)
             + rows0[:, :, x1] * ((1 << 10) - dy) * dx + rows1[:, :, x1] * dy * dx)
    rounded = _tdiv(total + np.where(total > 0, 1 << 19, -(1 << 19)), 1 << 20)
    return [rounded.astype(np.int8)]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct

    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    ctx.use("mcu_resize_bilinear_s8.h")
    half = bool(op.attrs["half_pixel_centers"])
    params = {"batches": x.shape[0], "in_h": x.shape[1], "in_w": x.shape[2], "channels": x.shape[3],
              "out_h": y.shape[1], "out_w": y.shape[2],
              "scale_h": scale_10(x.shape[1], y.shape[1], bool(op.attrs["align_corners"])),
              "scale_w": scale_10(x.shape[2], y.shape[2], bool(op.attrs["align_corners"])), "half_pixel": int(half)}
    return c_call("mcu_resize_bilinear_s8", [c_struct("mcu_resize_bilinear_params", params), ctx.ptr(op.inputs[0]),
                                             ctx.ptr(op.outputs[0])])


OPERATOR = Operator("RESIZE_BILINEAR", read, (2, 2, ()), write, SPEC, check, reference, emit, version=2)
