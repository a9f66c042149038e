"""RESIZE_NEAREST_NEIGHBOR int8 (TFLM's reference kernel): every output pixel copies one input pixel, the
source row and column chosen with TFLM's float32 index arithmetic (align_corners rounds half away from
zero, half-pixel centers add 0.5 first). The source indices are computed once here: the C kernel
(mcu_resize_s8.h) reads them from const tables. Moved into the registry from the stages' modules.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import options_of, where
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from .base import Operator

SPEC = OpSpec(("input",), ("align_corners", "half_pixel_centers"))


def check(op: Op, graph: Graph, where_: str) -> None:
    x, y = graph[op.inputs[0]].shape, graph[op.outputs[0]].shape
    if len(x) != 4 or len(y) != 4 or y[0] != x[0] or y[3] != x[3]:
        raise ModelError(f"{where_}: output {list(y)} is not a resized input {list(x)}")


def nearest_source_indices(in_size: int, out_size: int, align_corners: bool,
                           half_pixel_centers: bool) -> np.ndarray:
    """TFLM's GetNearestNeighbor for every output index, in its float32 arithmetic."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    offset = f32(0.5) if half_pixel_centers else f32(0.0)
    pos = (np.arange(out_size).astype(f32) + offset) * scale  # float32 add, then float32 multiply
    if align_corners:  # std::round on a float: halves away from zero (exact in float64, pos >= 0)
        src = np.floor(np.abs(pos.astype(np.float64)) + 0.5) * np.sign(pos)
    else:
        src = np.floor(pos)
    src = np.minimum(src.astype(np.int64), in_size - 1)
    if half_pixel_centers:
        src = np.maximum(src, 0)
    return src


def resize_indices(op: Op, graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """Source row for every output row and source column for every output column."""
    x, y = graph[op.inputs[0]], graph[op.outputs[0]]
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[0] != y.shape[0] or x.shape[3] != y.shape[3]:
        raise ModelError(f"{op.kind} {shown(op.name)}: input {list(x.shape)} and output {list(y.shape)} must be NHWC "
                         "with the same batches and channels")
    align, half = bool(op.attrs.get("align_corners", False)), bool(op.attrs.get("half_pixel_centers", False))
    return (nearest_source_indices(x.shape[1], y.shape[1], align, half),
            nearest_source_indices(x.shape[2], y.shape[2], align, half))


def read(raw, tensors: dict) -> list[Op]:
    opt = options_of(raw, "ResizeNearestNeighborOptions")
    x, y, size = tensors[raw.inputs[0]], tensors[raw.outputs[0]], tensors[raw.inputs[1]]
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise ModelError(f"{where(raw)}: input {list(x.shape)} and output {list(y.shape)} must have rank 4")
    if size.data is None or [int(v) for v in size.data.reshape(-1)] != list(y.shape[1:3]):
        raise ModelError(f"{where(raw)}: the size must be a constant equal to the output's height and width "
                         f"{list(y.shape[1:3])}")
    attrs = {"align_corners": bool(opt.AlignCorners()) if opt else False,
             "half_pixel_centers": bool(opt.HalfPixelCenters()) if opt else False}
    return [Op("RESIZE_NEAREST_NEIGHBOR", raw.inputs[:1], raw.outputs[:1], attrs)]


def write(low, op: Op) -> None:
    size = low.const_i32(f"{op.name}/size", list(low.graph[op.outputs[0]].shape[1:3]))
    fields = {"AlignCorners": bool(op.attrs.get("align_corners", False)),
              "HalfPixelCenters": bool(op.attrs.get("half_pixel_centers", False))}
    low.emit(op.kind, [low.tensor(op.inputs[0]), size], [low.tensor(op.outputs[0])],
             ("ResizeNearestNeighborOptions", fields), 3 if fields["HalfPixelCenters"] else 2)


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    rows, cols = resize_indices(op, graph)
    return [np.ascontiguousarray(args[0][:, rows][:, :, cols])]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct

    rows, cols = resize_indices(op, ctx.graph)
    (n, in_h, in_w, c), (_, out_h, out_w, _) = ctx.tensor(op.inputs[0]).shape, ctx.tensor(op.outputs[0]).shape
    ctx.use("mcu_resize_s8.h")
    shape = {"batches": n, "in_h": in_h, "in_w": in_w, "channels": c, "out_h": out_h, "out_w": out_w}
    return c_call("mcu_resize_nearest_s8", [
        c_struct("mcu_resize_shape", shape),
        ctx.const("resize_src_rows", rows.astype(np.int32), "int32_t"),
        ctx.const("resize_src_cols", cols.astype(np.int32), "int32_t"),
        ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])])


OPERATOR = Operator("RESIZE_NEAREST_NEIGHBOR", read, (2, 2, ()), write, SPEC, check, reference, emit, version=2)
