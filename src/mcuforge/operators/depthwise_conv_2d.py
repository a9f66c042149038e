"""DEPTHWISE_CONV_2D on int8 (TFLM semantics, operators/convolution.py), any channel multiplier.

Kernels (the planner picks the variant, engine/plan/kernels.py; each C header explains its own):
- row by row, vectorized over channels (mcu_dwconv_s8_rows.h, `rows`), for multipliers up to 16 and a
  bias that folds; on Arm cores with the DSP extension one padded int16 plane of a channel
  (mcu_dwconv_s8_plane.h, dw_plane_bytes of scratch). The plan is the same for every target, so the
  scratch holds the plane where it fits and the build uses the kernel it has;
- in place, with multiplier 1 (any stride, kernel or padding): output channel c goes to a temporary and is
  then written over input channel c's interleaved positions. `channels` computes one channel at a time
  into N*out_h*out_w bytes; `rows` (mcu_dwconv_s8_inplace_rows) computes whole output rows into a ring of
  `ring_rows` rows of out_w*C bytes (dw_ring_rows), and in place its scratch is the larger of the ring and
  the plane;
- the plain kernel mcu_dwconv_s8.h (the reference variant) takes every other case.
Weights in a format other than int8 (ir/formats.py): `plane` (mcu_dwconv_s8_plane_w, on every build,
in place or not) decodes a channel's taps once and then runs as for int8; where the plane does not apply,
the plain kernel (mcu_dwconv_s8_w, mcu_dwconv_s8_inplace_w) decodes each weight as it reads it.
"""
from __future__ import annotations

import bisect
from typing import Iterator

import numpy as np

from ..errors import ModelError, shown
from ..ir import DTYPE_BYTES
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from ..ir.shapes import expect_bias, expect_rank, windowed
from .base import Operator
from .convolution import (CONV_ATTRS, ConvGeometry, ConvQuant, bias_pointer, check_scratch, conv_geometry,
                          conv_quant, convolution_reference, folded_bias, planned_kernel, quant_fields, read_conv,
                          window_fields, windows, write_conv)
from .variants import NO_SCRATCH, KernelScratch, Variant

SPEC = OpSpec(("input", "weights", "bias?"), CONV_ATTRS + ("multiplier",))  # weights [1,KH,KW,C*multiplier]
MAX_MULTIPLIER = 16  # MCU_DW_BLOCK in mcu_dwconv_s8_rows.h
DW_PLANE_MAX_K = 7  # MCU_DW_PLANE_MAX_K in mcu_dwconv_s8_plane.h


def check(op: Op, graph: Graph, where_: str) -> None:
    w, x = graph[op.inputs[1]].shape, graph[op.inputs[0]].shape
    expect_rank(where_, w, 4, "filter")
    multiplier = op.attrs["multiplier"]
    if w[0] != 1 or multiplier < 1 or w[3] != x[-1] * multiplier:
        raise ModelError(f"{where_}: filter {list(w)} does not fit input {list(x)} with multiplier {multiplier}")
    windowed(op, graph, where_, (w[1], w[2]), w[3])
    expect_bias(op, graph, where_, w[3])


def depthwise_acc(x: np.ndarray, w: np.ndarray, g: ConvGeometry, input_offset: int) -> np.ndarray:
    """int64 accumulators [N, OH, OW, C*multiplier] of a depthwise convolution, without bias."""
    win = windows(np.asarray(x, np.int64) + input_offset, g)
    wk = np.asarray(w, np.int64).reshape(g.k_h, g.k_w, g.in_c, g.multiplier)
    acc = np.zeros((g.batches, g.out_h, g.out_w, g.in_c, g.multiplier), np.int64)
    for ky in range(g.k_h):
        for kx in range(g.k_w):
            acc += win[:, :, :, ky, kx, :, None] * wk[ky, kx]
    return acc.reshape(g.batches, g.out_h, g.out_w, g.out_c)


reference = convolution_reference(depthwise_acc)


def macs(op: Op, graph: Graph) -> int:
    w = graph[op.inputs[1]]  # [1, KH, KW, C]
    return graph[op.outputs[0]].size * w.shape[1] * w.shape[2]


# ---------------------------------------------------------------- planner facts


def inplace(op: Op, graph: Graph) -> list[str]:
    """With multiplier 1, the output may lie over the input (same batches, channels and element size)."""
    src, out = graph[op.inputs[0]], graph[op.outputs[0]]
    if (src.data is not None or op.attrs.get("multiplier", 1) != 1 or DTYPE_BYTES[src.dtype] != DTYPE_BYTES[out.dtype]
            or not src.shape or src.shape[-1] != out.shape[-1] or src.shape[0] != out.shape[0]):
        return []
    return [src.name]


def dw_plane_bytes(out_h: int, out_w: int, k_h: int, k_w: int, stride_h: int, stride_w: int) -> int:
    """Bytes of mcu_dwconv_s8_plane's int16 channel plane (mcu_dw_plane_rows x mcu_dw_plane_cols)."""
    cols = (out_w - 1) * stride_w + k_w + 1
    cols += cols % 2
    return ((out_h - 1) * stride_h + k_h) * cols * 2


def dw_ring_rows(batches: int, in_h: int, in_w: int, out_h: int, out_w: int, k_h: int, stride_h: int,
                 dil_h: int, pad_top: int) -> int:
    """Rows of the in-place ring: output row f is copied to its place right after row f + ring_rows - 1 is
    computed, which must be the last row reading input bytes under row f."""
    reads: list[tuple[int, int, int]] = []  # (first byte, end byte, output row) of rows that read input
    for row in range(batches * out_h):
        b, oy = divmod(row, out_h)
        first = max(0, oy * stride_h - pad_top)
        last = min(in_h - 1, oy * stride_h - pad_top + (k_h - 1) * dil_h)
        if first <= last:
            reads.append(((b * in_h + first) * in_w, (b * in_h + last + 1) * in_w, row))
    starts = [r[0] for r in reads]  # non-decreasing, and so are the end bytes
    ring = 1
    for f in range(batches * out_h):
        lo, hi = f * out_w, (f + 1) * out_w  # the bytes (in units of channels) output row f covers
        k = bisect.bisect_left(starts, hi) - 1  # the last reading row that starts below hi
        if k >= 0 and reads[k][1] > lo:
            ring = max(ring, reads[k][2] - f + 1)
    return ring


def variants(op: Op, graph: Graph, inplace: bool) -> Iterator[KernelScratch]:
    """The smallest scratch (in place: one channel's temporary), then the fast variants, fastest first."""
    if inplace:
        out = graph.tensors[op.outputs[0]]
        channels = out.shape[-1] if out.shape else 1
        yield KernelScratch(Variant.CHANNELS, (out.size // max(channels, 1)) * DTYPE_BYTES[out.dtype])
    else:
        yield NO_SCRATCH
    try:
        g = conv_geometry(op, graph)
    except (ModelError, KeyError, IndexError, ValueError):
        return
    if g.multiplier != 1 or g.out_h * g.out_w * g.batches == 0 or folded_bias(op, graph) is None:
        return
    plane = dw_plane_bytes(g.out_h, g.out_w, g.k_h, g.k_w, g.stride_h, g.stride_w) \
        if g.dil_h == g.dil_w == 1 and max(g.k_h, g.k_w) <= DW_PLANE_MAX_K else 0
    if graph[op.inputs[1]].format != "int8":
        if plane:
            yield KernelScratch(Variant.PLANE, plane, 0, True)
        return
    if not inplace:
        if plane:
            yield KernelScratch(Variant.ROWS, plane, 0, True)
        return
    rows = dw_ring_rows(g.batches, g.in_h, g.in_w, g.out_h, g.out_w, g.k_h, g.stride_h, g.dil_h, g.pad_top)
    ring = KernelScratch(Variant.ROWS, rows * g.out_w * g.in_c, rows)
    if plane:
        yield KernelScratch(Variant.ROWS, max(ring.nbytes, plane), rows, True)
    yield ring


# ---------------------------------------------------------------- C


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_fields
    from ..engine.codegen.requant import requant_arrays, requant_params

    g, q = conv_geometry(op, ctx.graph), conv_quant(op, ctx.graph)
    ctx.use("mcu_dwconv_s8.h")
    shape = c_fields({"batches": g.batches, "in_h": g.in_h, "in_w": g.in_w, "in_c": g.in_c,
                      "out_h": g.out_h, "out_w": g.out_w, "k_h": g.k_h, "k_w": g.k_w,
                      "multiplier": g.multiplier, **window_fields(g)})
    shape = f"&(const mcu_dwconv_shape){{{shape}}}"
    pad_value = str(-q.input_offset)
    encoded = ctx.tensor(op.inputs[1]).format != "int8"
    requant = requant_params(op, ctx, q) if g.multiplier <= MAX_MULTIPLIER and not encoded else None
    choice = planned_kernel(ctx).scratch
    check_scratch(op, ctx, choice.nbytes, choice.variant.value or "plain")
    if ctx.inplace and ctx.plan.offsets[op.inputs[0]] != ctx.plan.offsets[op.outputs[0]]:
        raise ModelError(f"{op.kind} {shown(op.name)}: in place, but input and output are at different offsets")
    if requant is not None and (choice.variant == Variant.ROWS or not ctx.inplace):  # the planner checked the bias
        ctx.use("mcu_dwconv_s8_plane.h")
        scratch = ctx.scratch if choice.nbytes else "(void *)0"
        return c_call("mcu_dwconv_s8_fast", [shape, requant, pad_value, ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]),
                                             ctx.ptr(op.outputs[0]), scratch, str(choice.ring_rows),
                                             str(int(choice.plane))])
    suffix, weights = ("_w", ctx.weights(op.inputs[1])) if encoded else ("", ctx.const(op.inputs[1]))
    if choice.variant == Variant.PLANE:  # weights in a format, decoded once per channel
        ctx.use("mcu_dwconv_s8_plane.h")
        return c_call("mcu_dwconv_s8_plane_w", [shape, requant_params(op, ctx, q), pad_value, ctx.ptr(op.inputs[0]),
                                                weights, ctx.ptr(op.outputs[0]), f"(int16_t *)(void *){ctx.scratch}"])
    if not ctx.inplace:
        return c_call("mcu_dwconv_s8" + suffix, [shape, _plain_quant(q), ctx.ptr(op.inputs[0]), weights,
                                                 bias_pointer(op, ctx), *requant_arrays(op, ctx, q),
                                                 ctx.ptr(op.outputs[0])])
    if g.multiplier != 1 or ctx.scratch is None:
        raise ModelError(f"{op.kind} {shown(op.name)}: in-place depthwise needs multiplier 1 and a scratch "
                         "(planner error)")
    return c_call("mcu_dwconv_s8_inplace" + suffix, [shape, _plain_quant(q), ctx.ptr(op.outputs[0]), weights,
                                                     bias_pointer(op, ctx), *requant_arrays(op, ctx, q), ctx.scratch])


def _plain_quant(q: ConvQuant) -> str:
    from ..engine.codegen.literals import c_fields

    return f"&(const mcu_dwconv_quant){{{c_fields(quant_fields(q))}}}"


OPERATOR = Operator("DEPTHWISE_CONV_2D", read_conv, (2, 3, (2,)), write_conv, SPEC, check, reference, emit,
                    macs=macs, version=3, inplace=inplace, variants=variants)
