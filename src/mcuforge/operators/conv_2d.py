"""CONV_2D on int8 (TFLM semantics, operators/convolution.py), grouped convolutions included.

Kernels (the planner picks the variant, engine/plan/kernels.py; each C header explains its own):
- pointwise (1x1, every output pixel reads an input pixel): an int8 GEMM with the input offset folded
  into the bias, mcu_conv_s8_1x1.h; its `column` variant keeps four pixels as int16 (8*C_in + 4 bytes);
  without that scratch it borrows the end of its output, or lies over the input pixels already read;
- other one-group convolutions: im2col, mcu_conv_s8_im2col.h, the filters in its column order
  (im2col_order) padded to whole groups of four; `im2col4` keeps four windows as int16 and one as int8
  (9*D + 4 bytes, D the window depth rounded up to a multiple of 4), `im2col` a column of two windows
  (4*D + 8 bytes); without scratch it borrows the unwritten end of its output;
- int4 or ternary weights (ir/formats.py; 4 or 2 bits) of a pointwise convolution whose C_in is a multiple
  of 32 / bits: mcu_conv_s8_1x1_w4 / _w2, the weights in the wb layout decoded in registers (mcu_gemm_s4.h),
  four pixels at a time through the same column as int8's (or the end of the output); pow2, codebook:4 and
  codebook:2 weights likewise as codes into a table (mcu_conv_s8_1x1_lut, ir/formats.wb_rows);
- those weights in another one-group convolution: mcu_conv_s8_im2col_w4 / _w2 / _lut, the filter rows in
  the column's order in the wb layout, `im2col4` (four windows, as for int8) or `im2col` (two windows as
  int16, 4*D + 4 bytes, D the depth rounded up to a multiple of 32 / bits), else at the end of the output;
- sparse weights of a one-group convolution: mcu_conv_s8_1x1_sparse (with the pointwise column) or, where
  the planner gave `im2col4`, mcu_conv_s8_im2col_sparse (mcu_sparse_s8.h: the zeros skipped);
- the plain kernel mcu_conv_s8.h (the reference variant) takes every other case: groups, a bias that
  does not fold into int32, or weights in a format without the fast kernels' conditions (mcu_conv_s8_w
  decodes them as it reads them).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import ModelError
from ..ir.formats import SPARSE, WB_MAX_DEPTH, WB_BITS
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from ..ir.shapes import expect_bias, expect_rank, windowed
from .base import Operator
from .convolution import (CONV_ATTRS, NULL_I8, ConvGeometry, ConvQuant, bias_pointer, check_scratch, conv_geometry,
                          conv_quant, convolution_reference, exact_matmul, folded_bias, planned_kernel, quant_fields,
                          read_conv, window_fields, windows, write_conv)
from .variants import NO_SCRATCH, KernelScratch, Variant

SPEC = OpSpec(("input", "weights", "bias?"), CONV_ATTRS)  # weights [O,KH,KW,I], bias int32 [O]


def check(op: Op, graph: Graph, where_: str) -> None:
    w = graph[op.inputs[1]].shape
    expect_rank(where_, w, 4, "filter")
    channels = graph[op.inputs[0]].shape[-1]
    if w[3] < 1 or channels % w[3] or w[0] % (channels // w[3]):  # grouped: input channels = groups * w[3]
        raise ModelError(f"{where_}: filter {list(w)} does not match the input's {channels} channels")
    windowed(op, graph, where_, (w[1], w[2]), w[0])
    expect_bias(op, graph, where_, w[0])


def conv2d_acc(x: np.ndarray, w: np.ndarray, g: ConvGeometry, input_offset: int) -> np.ndarray:
    """int64 accumulators [N, OH, OW, O] of a (grouped) convolution, without bias."""
    win = windows(np.asarray(x, np.int64) + input_offset, g)
    rows = g.batches * g.out_h * g.out_w
    per_group = g.out_c // g.groups
    acc = np.empty((rows, g.out_c), np.int64)
    taps = win.reshape(rows, g.k_h, g.k_w, g.groups, g.filter_in_c)
    for gi in range(g.groups):
        cols = taps[:, :, :, gi, :].reshape(rows, -1)
        wg = np.asarray(w[gi * per_group:(gi + 1) * per_group], np.int64).reshape(per_group, -1)
        acc[:, gi * per_group:(gi + 1) * per_group] = exact_matmul(cols, wg.T)
    return acc.reshape(g.batches, g.out_h, g.out_w, g.out_c)


reference = convolution_reference(conv2d_acc)


def macs(op: Op, graph: Graph) -> int:
    w = graph[op.inputs[1]]  # [O, KH, KW, I]
    return graph[op.outputs[0]].size * w.shape[1] * w.shape[2] * w.shape[3]


# ---------------------------------------------------------------- kernel variants (planner facts)


def is_pointwise(k_h: int, k_w: int, pad_top: int, pad_left: int, in_h: int, in_w: int, out_h: int,
                 out_w: int, stride_h: int, stride_w: int) -> bool:
    """A 1x1 kernel whose every output pixel reads an input pixel (no padding on any side)."""
    return (k_h == 1 and k_w == 1 and pad_top == 0 and pad_left == 0
            and (out_h - 1) * stride_h < in_h and (out_w - 1) * stride_w < in_w)


def pointwise(g: ConvGeometry) -> bool:
    return is_pointwise(g.k_h, g.k_w, g.pad_top, g.pad_left, g.in_h, g.in_w, g.out_h, g.out_w, g.stride_h,
                        g.stride_w)


def im2col_stride(k_h: int, k_w: int, in_c: int) -> int:
    """Values per filter row of mcu_conv_s8_im2col: the window's depth rounded up to a multiple of 4 (the
    emitter pads the weights with zeros)."""
    depth = k_h * k_w * in_c
    return depth + (-depth) % 4


def pointwise_column_bytes(in_c: int) -> int:
    """mcu_conv_s8_1x1's column scratch: four pixels' int16 values (two when in_c is not a multiple of 4,
    each rounded up to even), plus 4 bytes to align it."""
    values = 4 * in_c if in_c % 4 == 0 else 2 * (in_c + in_c % 2)
    return 2 * values + 4


def wb_column_bytes(depth: int) -> int:
    """mcu_conv_s8_im2col_wb's column: two pixels' int16 values, plus 4 bytes to align it."""
    return 4 * depth + 4


def wb_stride(g: ConvGeometry, bits: int) -> int:
    """Values per filter row of mcu_conv_s8_im2col_wb: the window's depth rounded up to a multiple of
    32 / bits (a weight word)."""
    depth = g.k_h * g.k_w * g.in_c
    return depth + (-depth) % (32 // bits)


def variants(op: Op, graph: Graph, inplace: bool) -> Iterator[KernelScratch]:
    """No scratch at least; then the fast variants, fastest first (one group and a bias that folds)."""
    yield NO_SCRATCH
    try:
        g = conv_geometry(op, graph)
    except (ModelError, KeyError, IndexError, ValueError):
        return
    if g.groups != 1 or folded_bias(op, graph) is None:
        return
    bits = WB_BITS.get(graph[op.inputs[1]].format)
    if bits:
        if pointwise(g) and g.in_c % (32 // bits) == 0 and g.in_c < WB_MAX_DEPTH:  # four pixels, as for int8
            yield KernelScratch(Variant.COLUMN, pointwise_column_bytes(g.in_c))
        elif not pointwise(g) and wb_stride(g, bits) < WB_MAX_DEPTH:
            yield KernelScratch(Variant.IM2COL4, 9 * wb_stride(g, bits) + 4)
            yield KernelScratch(Variant.IM2COL, wb_column_bytes(wb_stride(g, bits)))
        return
    if graph[op.inputs[1]].format in SPARSE:  # as for int8: four pixels' column, four windows; or one window
        if pointwise(g):
            yield KernelScratch(Variant.COLUMN, pointwise_column_bytes(g.in_c))
        else:
            yield KernelScratch(Variant.IM2COL4, 9 * im2col_stride(g.k_h, g.k_w, g.in_c) + 4)
            yield KernelScratch(Variant.IM2COL, im2col_stride(g.k_h, g.k_w, g.in_c))
    if graph[op.inputs[1]].format != "int8":
        return
    if pointwise(g):
        yield KernelScratch(Variant.COLUMN, pointwise_column_bytes(g.in_c))
        return
    stride = im2col_stride(g.k_h, g.k_w, g.in_c)
    yield KernelScratch(Variant.IM2COL4, 9 * stride + 4)
    yield KernelScratch(Variant.IM2COL, 4 * (stride + 1) + 4)


# ---------------------------------------------------------------- C


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_fields
    from ..engine.codegen.requant import requant_arrays, requant_params

    g, q = conv_geometry(op, ctx.graph), conv_quant(op, ctx.graph)
    encoded = ctx.tensor(op.inputs[1]).format != "int8"
    bits = WB_BITS.get(ctx.tensor(op.inputs[1]).format)
    if bits and g.groups == 1:
        wb_pointwise = pointwise(g) and g.in_c % (32 // bits) == 0 and g.in_c < WB_MAX_DEPTH
        wb_im2col = not pointwise(g) and wb_stride(g, bits) < WB_MAX_DEPTH
        requant = requant_params(op, ctx, q) if wb_pointwise or wb_im2col else None
        if requant is not None:
            return (_pointwise_wb(op, ctx, g, requant, bits) if wb_pointwise
                    else _im2col_wb(op, ctx, g, q, requant, bits))
    if ctx.tensor(op.inputs[1]).format in SPARSE and g.groups == 1:
        column = _granted_column(op, ctx)
        requant = requant_params(op, ctx, q) if pointwise(g) or column != NULL_I8 else None
        if requant is not None:  # the zeros skipped
            return _sparse(op, ctx, g, q, requant, column)
    requant = requant_params(op, ctx, q) if g.groups == 1 and not encoded else None
    if requant is not None and pointwise(g):
        return _pointwise(op, ctx, g, requant)
    if requant is not None:
        return _im2col(op, ctx, g, q, requant)
    ctx.use("mcu_conv_s8.h")
    mult, shift = requant_arrays(op, ctx, q)
    fn, weights = ("mcu_conv_s8_w", ctx.weights(op.inputs[1])) if encoded else ("mcu_conv_s8", ctx.const(op.inputs[1]))
    return c_call(fn, [
        f"&(const mcu_conv_shape){{{c_fields(_conv_shape(g))}}}",
        f"&(const mcu_conv_quant){{{c_fields(quant_fields(q))}}}",
        ctx.ptr(op.inputs[0]), weights, bias_pointer(op, ctx), mult, shift, ctx.ptr(op.outputs[0])])


def _conv_shape(g: ConvGeometry) -> dict[str, int]:
    return {"batches": g.batches, "in_h": g.in_h, "in_w": g.in_w, "in_c": g.in_c,
            "out_h": g.out_h, "out_w": g.out_w, "out_c": g.out_c, "k_h": g.k_h, "k_w": g.k_w,
            "filter_in_c": g.filter_in_c, **window_fields(g)}


def _pointwise_shape(g: ConvGeometry) -> dict[str, int]:
    """mcu_conv_1x1_shape: the output pixels as one run where they are contiguous in the input."""
    if g.stride_h == g.stride_w == 1 and (g.in_h, g.in_w) == (g.out_h, g.out_w):
        return {"batches": 1, "rows": 1, "cols": g.batches * g.out_h * g.out_w, "in_c": g.in_c,
                "out_c": g.out_c, "batch_step": 0, "row_step": 0, "col_step": g.in_c}
    return {"batches": g.batches, "rows": g.out_h, "cols": g.out_w, "in_c": g.in_c, "out_c": g.out_c,
            "batch_step": g.in_h * g.in_w * g.in_c, "row_step": g.stride_h * g.in_w * g.in_c,
            "col_step": g.stride_w * g.in_c}


def _wb_weights(op: Op, ctx, rows: np.ndarray) -> tuple[str, str | None]:
    """C expressions of the filter `rows` in the wb layout (mcu_gemm_s4.h) and, for pow2 and codebook
    weights, of the table their codes index (else None)."""
    from ..ir.formats import wb_rows

    t = ctx.tensor(op.inputs[1])
    bits, packed, table = wb_rows(t.format, rows, t.data)
    weights = ctx.const(f"w{bits}_{op.name}", packed, "uint8_t")
    return weights, None if table is None else ctx.const(f"table_{op.name}", table, "int8_t")


def _pointwise_wb(op: Op, ctx, g: ConvGeometry, requant: str, bits: int) -> str:
    """int4 or ternary weights (or pow2 and codebook codes and their table) in the wb layout
    (mcu_gemm_s4.h), decoded in registers; the column when planned."""
    from ..engine.codegen.literals import c_call, c_fields

    ctx.use("mcu_conv_s8_1x1.h")
    weights, table = _wb_weights(op, ctx, ctx.graph[op.inputs[1]].data.reshape(g.out_c, -1))
    shape = f"&(const mcu_conv_1x1_shape){{{c_fields(_pointwise_shape(g))}}}"
    io = [ctx.ptr(op.outputs[0]), _granted_column(op, ctx)]
    if table is not None:
        return c_call("mcu_conv_s8_1x1_lut", [shape, requant, ctx.ptr(op.inputs[0]), weights, table, str(bits), *io])
    return c_call(f"mcu_conv_s8_1x1_w{bits}", [shape, requant, ctx.ptr(op.inputs[0]), weights, *io])


def _im2col_wb(op: Op, ctx, g: ConvGeometry, q: ConvQuant, requant: str, bits: int) -> str:
    """int4 or ternary weights (or pow2 and codebook codes), the filter rows in the column's order padded to
    wb_stride, in the wb layout."""
    from ..engine.codegen.literals import c_call, c_fields

    ctx.use("mcu_conv_s8_im2col.h")
    stride = wb_stride(g, bits)
    w = np.asarray(ctx.graph[op.inputs[1]].data, np.int8).reshape(g.out_c, -1)[:, im2col_order(g.k_h, g.k_w, g.in_c)]
    weights, table = _wb_weights(op, ctx, np.pad(w, ((0, 0), (0, stride - w.shape[1]))))
    column = _granted_column(op, ctx)
    quads = planned_kernel(ctx).variant == Variant.IM2COL4 and column != NULL_I8
    head = [f"&(const mcu_conv_shape){{{c_fields(_conv_shape(g))}}}", requant, str(-q.input_offset),
            ctx.ptr(op.inputs[0]), weights]
    tail = [str(stride), ctx.ptr(op.outputs[0]), column, str(int(quads))]
    if table is not None:
        return c_call("mcu_conv_s8_im2col_lut", [*head, table, str(bits), *tail])
    return c_call(f"mcu_conv_s8_im2col_w{bits}", [*head, *tail])


def _sparse(op: Op, ctx, g: ConvGeometry, q: ConvQuant, requant: str, column: str) -> str:
    """Sparse weights (the zeros skipped, mcu_sparse_s8.h): pointwise, or im2col with the filter rows
    re-encoded in the column's order and padded to the column's stride with zeros."""
    from ..engine.codegen.literals import c_call, c_fields

    if pointwise(g):
        ctx.use("mcu_conv_s8_1x1.h")
        return c_call("mcu_conv_s8_1x1_sparse", [f"&(const mcu_conv_1x1_shape){{{c_fields(_pointwise_shape(g))}}}",
                                                 requant, ctx.ptr(op.inputs[0]), ctx.weights(op.inputs[1]),
                                                 ctx.ptr(op.outputs[0]), column])
    ctx.use("mcu_conv_s8_im2col.h")
    stride = im2col_stride(g.k_h, g.k_w, g.in_c)
    w = np.asarray(ctx.graph[op.inputs[1]].data, np.int8).reshape(g.out_c, -1)[:, im2col_order(g.k_h, g.k_w, g.in_c)]
    rows = np.pad(w, ((0, 0), (0, stride - w.shape[1])))
    return c_call("mcu_conv_s8_im2col_sparse", [
        f"&(const mcu_conv_shape){{{c_fields(_conv_shape(g))}}}", requant, str(-q.input_offset),
        ctx.ptr(op.inputs[0]), ctx.sparse_weights(f"rows_{op.name}", rows, ctx.tensor(op.inputs[1]).format),
        str(stride), ctx.ptr(op.outputs[0]), column, str(int(planned_kernel(ctx).variant == Variant.IM2COL4))])


def _pointwise(op: Op, ctx, g: ConvGeometry, requant: str) -> str:
    from ..engine.codegen.literals import c_call, c_fields

    ctx.use("mcu_conv_s8_1x1.h")
    shape = _pointwise_shape(g)
    column = _granted_column(op, ctx)
    over_input = column == NULL_I8 and planned_kernel(ctx).column_over_input
    return c_call("mcu_conv_s8_1x1", [f"&(const mcu_conv_1x1_shape){{{c_fields(shape)}}}", requant,
                                      ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]), ctx.ptr(op.outputs[0]),
                                      column, str(int(over_input))])


def _im2col(op: Op, ctx, g: ConvGeometry, q: ConvQuant, requant: str) -> str:
    from ..engine.codegen.literals import c_call, c_fields

    ctx.use("mcu_conv_s8_im2col.h")
    stride = im2col_stride(g.k_h, g.k_w, g.in_c)
    order = im2col_order(g.k_h, g.k_w, g.in_c)
    if stride != order.size or np.any(order != np.arange(order.size)):
        # filter rows in the column's order, padded with zero weights to whole groups of four (only this copy
        # is stored: the filter as given would be flash the kernel never reads)
        w = np.asarray(ctx.graph[op.inputs[1]].data, np.int8).reshape(g.out_c, -1)[:, order]
        weights = ctx.const(f"padded_{op.name}", np.pad(w, ((0, 0), (0, stride - w.shape[1]))), "int8_t")
    else:
        weights = ctx.const(op.inputs[1])
    column = _granted_column(op, ctx)
    quads = planned_kernel(ctx).variant == Variant.IM2COL4 and column != NULL_I8
    return c_call("mcu_conv_s8_im2col", [
        f"&(const mcu_conv_shape){{{c_fields(_conv_shape(g))}}}", requant, str(-q.input_offset),
        ctx.ptr(op.inputs[0]), weights, str(stride), ctx.ptr(op.outputs[0]), column, str(int(quads))])


def im2col_order(k_h: int, k_w: int, in_c: int) -> np.ndarray:
    """mcu_im2col_index's column order: position i of the column holds value order[i] of the window (in the
    filter's [k_h, k_w, in_c] order). Each window row's whole groups of four first, row by row, then the
    remaining row_values % 4 values of every row; the identity when row_values % 4 == 0."""
    row_values = k_w * in_c
    whole = row_values - row_values % 4
    index = np.arange(k_h * row_values).reshape(k_h, row_values)
    return np.concatenate([index[:, :whole].reshape(-1), index[:, whole:].reshape(-1)])


def _granted_column(op: Op, ctx) -> str:
    """The scratch of the column (im2col or pointwise) when the planner gave it, else NULL (the kernel then
    borrows the end of its output)."""
    choice = planned_kernel(ctx)
    if choice.variant in (Variant.IM2COL4, Variant.IM2COL, Variant.COLUMN) and choice.granted:
        check_scratch(op, ctx, choice.scratch.nbytes, choice.variant.value)
        return ctx.scratch
    return NULL_I8


OPERATOR = Operator("CONV_2D", read_conv, (2, 3, (2,)), write_conv, SPEC, check, reference, emit, macs=macs,
                    version=3, variants=variants)
