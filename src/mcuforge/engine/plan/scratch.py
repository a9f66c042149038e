"""Kernel scratch: bytes an op's kernel needs for itself while it runs (and only then).

This is the one place that knows which kernels need scratch; the planner packs each op's scratch into the
arena as a tensor that lives for that op alone, so it fills a gap instead of adding a region.

Some kernels have a fast variant that needs more scratch than the plain one. The fast one is chosen only
where its scratch does not raise the model's lower bound: the live bytes at that op, with its extra
scratch, stay within the largest live set of the plan that gives every op its smallest scratch.
- In-place depthwise: `channels` computes one channel at a time into N*out_h*out_w bytes; `rows`
  (mcu_dwconv_s8_inplace_rows) computes whole output rows, vectorized over channels, into a ring of
  `ring_rows` rows of out_w*C bytes.
- Depthwise on Arm cores with the DSP extension (mcu_dwconv_s8_plane): one padded int16 plane of a
  channel (dw_plane_bytes), in place or not. The plan is the same for every target, so in place the
  scratch is the larger of the ring and the plane (`plane` set), and the build uses the kernel it has.
- Convolutions through im2col (mcu_conv_s8_im2col), the window depth D = K_h*K_w*C_in rounded up to a
  multiple of 4: `im2col4`, four windows as int16 and one as int8 (9*D + 4 bytes); `im2col`, a column of
  two windows as int16 (4*D bytes, plus 8); without scratch the kernel borrows the unwritten end of its
  output (and computes its last pixels without a column).
- Pointwise convolutions (mcu_conv_s8_1x1): the int16 column of four pixels (8*C_in bytes, plus 4 to
  align it); without it the kernel borrows the end of its output, and the pixels whose outputs reach
  there run on the slower int8 path.
"""
from __future__ import annotations

import bisect
import weakref
from dataclasses import dataclass
from enum import Enum
from typing import Callable

import numpy as np

from ...errors import ModelError
from ...ir import DTYPE_BYTES, Graph, Op
from .blocks import live_set

SLACK_MARGIN = 64  # bytes of alignment padding the live-set estimate may miss
_INT32_MAX = 2**31 - 1
_MAX_PRODUCT = 128 * 128  # |x * w| for int8 x and w


class Variant(str, Enum):
    """A kernel's scratch variant, decided here and recorded in the plan (MemoryPlan.kernels)."""

    PLAIN = ""  # no scratch (or a registry operator's fixed scratch)
    CHANNELS = "channels"  # in-place depthwise, one channel at a time
    ROWS = "rows"  # depthwise by output rows (in place: a ring), with the DSP plane when `plane`
    IM2COL4 = "im2col4"  # im2col convolution, four windows at a time
    IM2COL = "im2col"  # im2col convolution, a column of two windows
    COLUMN = "column"  # pointwise convolution's int16 column of four pixels


@dataclass(frozen=True)
class KernelScratch:
    variant: Variant
    nbytes: int
    ring_rows: int = 0  # rows: the in-place ring (0: not in place)
    plane: bool = False  # rows: the scratch also holds a depthwise plane (mcu_dwconv_s8_plane)


_NONE = KernelScratch(Variant.PLAIN, 0)

# The registered operators' scratch rules (mcuforge.operators): bytes, one variant, never in place.
SCRATCH: dict[str, Callable[[Op, Graph], int]] = {}


def scratch_bytes(op: Op, graph: Graph, inplace: bool) -> int:
    """Scratch bytes of `op`'s kernel; `inplace` says whether its output is placed over its input."""
    return kernel_scratch(op, graph, inplace).nbytes


def kernel_scratch(op: Op, graph: Graph, inplace: bool) -> KernelScratch:
    """The scratch variant of `op`'s kernel (the code generator follows the same choice)."""
    if op.kind in SCRATCH:
        return KernelScratch(Variant.PLAIN, SCRATCH[op.kind](op, graph))
    if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return _NONE
    cache = _cache(graph)
    key = (id(op), inplace)
    if key not in cache:
        minimal = _minimal(op, graph, inplace)
        choice = minimal
        for fast in _fast(op, graph, inplace):  # fastest first
            if fast.nbytes <= minimal.nbytes or _fits(op, graph, inplace, fast.nbytes - minimal.nbytes):
                choice = fast
                break
        cache[key] = choice
    return cache[key]


def peak_scratch(op: Op, graph: Graph, inplace: bool) -> int:
    """Scratch bytes of `op`'s kernel at a step where no extra scratch fits under the peak: the first fast
    variant needing no more than the smallest, else the smallest (as kernel_scratch chooses there)."""
    if op.kind in SCRATCH:
        return SCRATCH[op.kind](op, graph)
    minimal = _minimal(op, graph, inplace).nbytes
    return next((f.nbytes for f in _fast(op, graph, inplace) if f.nbytes <= minimal), minimal)


def _minimal(op: Op, graph: Graph, inplace: bool) -> KernelScratch:
    if op.kind == "DEPTHWISE_CONV_2D" and inplace:
        # The channel kernel computes one output channel (all N*H*W positions) into a temporary, then
        # writes it into the channel's interleaved positions, which only held that input channel.
        out = graph.tensors[op.outputs[0]]
        channels = out.shape[-1] if out.shape else 1
        return KernelScratch(Variant.CHANNELS, (out.size // max(channels, 1)) * DTYPE_BYTES[out.dtype])
    return _NONE


def _fast(op: Op, graph: Graph, inplace: bool) -> list[KernelScratch]:
    """The fast variants of `op`'s kernel that need scratch, fastest first."""
    from ..reference.ops_conv import conv_geometry

    if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return []
    try:
        g = conv_geometry(op, graph)
    except (ModelError, KeyError, IndexError, ValueError):
        return []
    if op.kind == "DEPTHWISE_CONV_2D":
        if g.multiplier != 1 or g.out_h * g.out_w * g.batches == 0 or folded_bias(op, graph) is None:
            return []
        plane = dw_plane_bytes(g.out_h, g.out_w, g.k_h, g.k_w, g.stride_h, g.stride_w) \
            if g.dil_h == g.dil_w == 1 and max(g.k_h, g.k_w) <= DW_PLANE_MAX_K else 0
        if not inplace:
            return [KernelScratch(Variant.ROWS, plane, 0, True)] if plane else []
        rows = dw_ring_rows(g.batches, g.in_h, g.in_w, g.out_h, g.out_w, g.k_h, g.stride_h, g.dil_h, g.pad_top)
        ring = KernelScratch(Variant.ROWS, rows * g.out_w * g.in_c, rows)
        return [KernelScratch(Variant.ROWS, max(ring.nbytes, plane), rows, True), ring] if plane else [ring]
    if g.groups != 1 or folded_bias(op, graph) is None:
        return []
    if uses_im2col(g.k_h, g.k_w, g.groups, g.pad_top, g.pad_left, g.in_h, g.in_w, g.out_h, g.out_w,
                   g.stride_h, g.stride_w):
        stride = im2col_stride(g.k_h, g.k_w, g.in_c)
        return [KernelScratch(Variant.IM2COL4, 9 * stride + 4), KernelScratch(Variant.IM2COL, 4 * (stride + 1) + 4)]
    return [KernelScratch(Variant.COLUMN, pointwise_column_bytes(g.in_c))]


def im2col_stride(k_h: int, k_w: int, in_c: int) -> int:
    """Values per filter row of mcu_conv_s8_im2col: the window's depth rounded up to a multiple of 4 (the
    codegen pads the weights with zeros)."""
    depth = k_h * k_w * in_c
    return depth + (-depth) % 4


def pointwise_column_bytes(in_c: int) -> int:
    """mcu_conv_s8_1x1's column scratch: four pixels' int16 values (two when in_c is not a multiple of 4,
    each rounded up to even), plus 4 bytes to align it."""
    values = 4 * in_c if in_c % 4 == 0 else 2 * (in_c + in_c % 2)
    return 2 * values + 4


DW_PLANE_MAX_K = 7  # MCU_DW_PLANE_MAX_K in mcu_dwconv_s8_plane.h


def dw_plane_bytes(out_h: int, out_w: int, k_h: int, k_w: int, stride_h: int, stride_w: int) -> int:
    """Bytes of mcu_dwconv_s8_plane's int16 channel plane (mcu_dw_plane_rows x mcu_dw_plane_cols)."""
    cols = (out_w - 1) * stride_w + k_w + 1
    cols += cols % 2
    return ((out_h - 1) * stride_h + k_h) * cols * 2


def folded_bias(op: Op, graph: Graph) -> np.ndarray | None:
    """The bias the fast kernels take: bias + input_offset * (sum of the output channel's weights), int64
    per output channel (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED); None when the accumulation could
    then leave int32 (the plain kernels run instead) or the op has no int8 weights."""
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if w.data is None or x.quant is None:
        return None
    weights = np.asarray(w.data, np.int64)
    rows = weights.reshape(-1, weights.shape[-1]).T if op.kind == "DEPTHWISE_CONV_2D" else \
        weights.reshape(weights.shape[0], -1)
    bias_name = op.inputs[2] if len(op.inputs) > 2 else ""
    bias = graph.tensors[bias_name].data if bias_name else None
    folded = (np.zeros(rows.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)) \
        - int(x.quant.zp) * rows.sum(axis=1)
    if folded.size and int(np.abs(folded).max()) + _MAX_PRODUCT * rows.shape[1] > _INT32_MAX:
        return None
    return folded


def uses_im2col(k_h: int, k_w: int, groups: int, pad_top: int, pad_left: int, in_h: int, in_w: int,
                out_h: int, out_w: int, stride_h: int, stride_w: int) -> bool:
    """CONV_2D kernels: one group and not a plain pointwise conv (that one needs no column)."""
    if groups != 1:
        return False
    return not is_pointwise(k_h, k_w, pad_top, pad_left, in_h, in_w, out_h, out_w, stride_h, stride_w)


def is_pointwise(k_h: int, k_w: int, pad_top: int, pad_left: int, in_h: int, in_w: int, out_h: int,
                 out_w: int, stride_h: int, stride_w: int) -> bool:
    """A 1x1 kernel whose every output pixel reads an input pixel (no padding on any side)."""
    return (k_h == 1 and k_w == 1 and pad_top == 0 and pad_left == 0
            and (out_h - 1) * stride_h < in_h and (out_w - 1) * stride_w < in_w)


def dw_ring_rows(batches: int, in_h: int, in_w: int, out_h: int, out_w: int, k_h: int, stride_h: int,
                 dil_h: int, pad_top: int) -> int:
    """Rows of the in-place depthwise ring: output row f is copied to its place right after row
    f + ring_rows - 1 is computed, which must be the last row reading input bytes under row f."""
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


# ------------------------------------------------------------------ does the extra scratch fit?

_CACHE: weakref.WeakKeyDictionary[Graph, dict[object, object]] = weakref.WeakKeyDictionary()


def _cache(graph: Graph) -> dict[object, object]:
    """Per-graph memo of the choices and live sets (graphs are immutable; the planner asks several times)."""
    return _CACHE.setdefault(graph, {})


def _fits(op: Op, graph: Graph, inplace: bool, extra: int) -> bool:
    index = next((i for i, o in enumerate(graph.ops) if o is op), None)
    if index is None:
        return False
    live, peak, inplace_ops = _base_live(graph, True)
    if not inplace and index in inplace_ops:  # asked for the plan without in-place ops
        live, peak, _ = _base_live(graph, False)
    return live[index] + extra + SLACK_MARGIN <= peak


def _base_live(graph: Graph, inplace: bool) -> tuple[list[int], int, frozenset[int]]:
    """Live bytes per step when every op gets its smallest scratch (as the planner counts them)."""
    cache = _cache(graph)
    key = ("live", inplace)
    if key not in cache:
        found = live_set(graph, 4, inplace, lambda op, in_place: _minimal(op, graph, in_place).nbytes)
        cache[key] = (found.live, max(found.live), found.sharing.inplace_ops)
    return cache[key]  # type: ignore[return-value]
