"""FULLY_CONNECTED on int8 (TFLM semantics): the input flattened to rows of the weights' depth, each row
times the weights [O, I] plus the bias, requantized per tensor or per output channel
(operators/convolution.py). Weights with a zero point other than 0 are allowed per tensor, as in TFLM.

Kernels: symmetric int8 weights whose bias folds run as an int8 GEMM (mcu_fc_s8_fast.h, mcu_fc_s8_gemm);
the plain kernels mcu_fc_s8 / mcu_fc_s8_per_channel (mcu_fc_s8.h, the reference variants) take the rest,
int4 and ternary weights (ir/formats.py) run on mcu_fc_s8_gemm_w4 / _w2, decoded in registers, and pow2,
codebook:4 and codebook:2 weights on mcu_fc_s8_gemm_lut, their codes looked up in a table (mcu_gemm_s4.h), where the GEMM's conditions hold and the depth is a multiple of 32 / bits (other depths
would pad every row of the wb layout), sparse weights on mcu_fc_s8_sparse (the zeros skipped), else on
mcu_fc_s8_rows, which decodes each weight as it reads it.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import activation_of, check_rank, options_of, where
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from ..ir.shapes import expect_bias, expect_rank
from ..quant import intmath
from .base import Operator
from .convolution import ConvQuant, bias_pointer, bias_values, effective_scale, exact_matmul, int8_edges, requantize

SPEC = OpSpec(("input", "weights", "bias?"), ("activation", "keep_num_dims"))  # weights [O,I]


def check(op: Op, graph: Graph, where_: str) -> None:
    x, w, y = graph[op.inputs[0]].shape, graph[op.inputs[1]].shape, graph[op.outputs[0]].shape
    expect_rank(where_, w, 2, "weights")
    if w[1] < 1 or math.prod(x) % w[1] or not y or y[-1] != w[0]:
        raise ModelError(f"{where_}: weights {list(w)} do not fit input {list(x)} and output {list(y)}")
    rows = math.prod(x) // w[1]
    if op.attrs.get("keep_num_dims") and (x[-1] != w[1] or y != (*x[:-1], w[0])):
        raise ModelError(f"{where_}: output {list(y)} should keep the input's dimensions {list(x[:-1])}")
    if math.prod(y) != rows * w[0]:
        raise ModelError(f"{where_}: output {list(y)} should hold {rows} rows of {w[0]}")
    expect_bias(op, graph, where_, w[0])


def fc_shape(op: Op, graph: Graph) -> tuple[int, int, int]:
    """(batches, in_features, out_features); the input is flattened to [-1, I]."""
    x, w, y = graph[op.inputs[0]], graph[op.inputs[1]], graph[op.outputs[0]]
    if len(w.shape) != 2:
        raise ModelError(f"{op.kind} {shown(op.name)}: weights must be 2-D [O, I], got {w.shape}")
    out_f, in_f = w.shape
    if in_f == 0 or x.size % in_f or y.size != (x.size // in_f) * out_f:
        raise ModelError(f"{op.kind} {shown(op.name)}: input {x.shape} does not flatten to [-1, {in_f}] "
                         f"for output {y.shape}")
    return x.size // in_f, in_f, out_f


def fc_quant(op: Op, graph: Graph) -> ConvQuant:
    """Requantization constants (per-tensor or per-output-channel weights), as TFLM's Prepare."""
    x, w, y = int8_edges(op, graph)
    assert x.quant is not None and w.quant is not None and y.quant is not None
    n_out = w.shape[0]
    zero_points = np.asarray(w.quant.zero_point).ravel()
    if zero_points.size > 1 and np.any(zero_points != 0):
        raise ModelError(f"{op.kind} {shown(op.name)}: per-channel weights must be symmetric (zero point 0)")
    reals = [effective_scale(x.quant.s, s, y.quant.s) for s in np.asarray(w.quant.scale, np.float32).ravel()]
    if len(reals) not in (1, n_out):
        raise ModelError(f"{op.kind} {shown(op.name)}: weights have {len(reals)} scales for {n_out} output units")
    mult, shift = intmath.quantize_multipliers(np.array(reals, np.float64))
    lo, hi = intmath.activation_range(str(op.attrs.get("activation", "NONE")), y.quant.s, y.quant.zp)
    return ConvQuant(-x.quant.zp, -int(zero_points[0]), y.quant.zp, mult, shift, lo, hi)


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    x, w = args[0], args[1]
    assert x is not None and w is not None
    batches, in_f, out_f = fc_shape(op, graph)
    q = fc_quant(op, graph)
    xs = np.asarray(x, np.int64).reshape(batches, in_f) + q.input_offset
    ws = np.asarray(w, np.int64).reshape(out_f, in_f) + q.weights_offset
    acc = exact_matmul(xs, ws.T) + bias_values(op, graph, out_f)
    return [requantize(acc, q).reshape(graph[op.outputs[0]].shape)]


def macs(op: Op, graph: Graph) -> int:
    return graph[op.outputs[0]].size * graph[op.inputs[1]].shape[1]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_fields
    from ..engine.codegen.requant import requant_arrays, requant_params
    from ..ir.formats import SPARSE, WB_MAX_DEPTH, WB_BITS, wb_rows

    batches, in_f, out_f = fc_shape(op, ctx.graph)
    q = fc_quant(op, ctx.graph)
    per_tensor = q.multiplier.size == 1
    encoded = ctx.tensor(op.inputs[1]).format != "int8"
    requant = requant_params(op, ctx, q, per_channel=not per_tensor) if q.weights_offset == 0 and not encoded \
        else None
    bits = WB_BITS.get(ctx.tensor(op.inputs[1]).format)
    if requant is None and bits and q.weights_offset == 0 and in_f % (32 // bits) == 0 and in_f < WB_MAX_DEPTH:
        requant = requant_params(op, ctx, q, per_channel=not per_tensor)
        if requant is not None:  # the fast low-bit kernel: weights in the wb layout, decoded in registers
            ctx.use("mcu_fc_s8_fast.h")
            shape = {"batches": batches, "in_features": in_f, "out_features": out_f}
            t = ctx.tensor(op.inputs[1])
            _, packed, table = wb_rows(t.format, t.data, t.data)
            weights = ctx.const(f"w{bits}_{op.name}", packed, "uint8_t")
            head = [f"&(const mcu_fc_shape){{{c_fields(shape)}}}", requant, ctx.ptr(op.inputs[0]), weights]
            if table is not None:  # pow2 and codebook codes into their table
                return c_call("mcu_fc_s8_gemm_lut", [*head, ctx.const(f"table_{op.name}", table, "int8_t"), str(bits),
                                                     ctx.ptr(op.outputs[0])])
            return c_call(f"mcu_fc_s8_gemm_w{bits}", [*head, ctx.ptr(op.outputs[0])])
    if requant is None and ctx.tensor(op.inputs[1]).format in SPARSE and q.weights_offset == 0:
        requant = requant_params(op, ctx, q, per_channel=not per_tensor)
        if requant is not None:  # the zeros skipped
            ctx.use("mcu_fc_s8_fast.h")
            shape = {"batches": batches, "in_features": in_f, "out_features": out_f}
            return c_call("mcu_fc_s8_sparse", [f"&(const mcu_fc_shape){{{c_fields(shape)}}}", requant,
                                               ctx.ptr(op.inputs[0]), ctx.weights(op.inputs[1]),
                                               ctx.ptr(op.outputs[0])])
    if requant is not None:
        ctx.use("mcu_fc_s8_fast.h")
        shape = {"batches": batches, "in_features": in_f, "out_features": out_f}
        return c_call("mcu_fc_s8_gemm", [f"&(const mcu_fc_shape){{{c_fields(shape)}}}", requant,
                                         ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]), ctx.ptr(op.outputs[0])])
    ctx.use("mcu_fc_s8.h")
    params = {"batches": batches, "in_features": in_f, "out_features": out_f,
              "input_offset": q.input_offset, "weights_offset": q.weights_offset,
              "output_offset": q.output_offset,
              "multiplier": int(q.multiplier[0]) if per_tensor else 0,
              "shift": int(q.shift[0]) if per_tensor else 0,
              "act_min": q.act_min, "act_max": q.act_max}
    if encoded:
        null = "(const int32_t *)0"
        arrays = [null, null] if per_tensor else list(requant_arrays(op, ctx, q))
        return c_call("mcu_fc_s8_rows", [f"&(const mcu_fc_params){{{c_fields(params)}}}", ctx.ptr(op.inputs[0]),
                                         ctx.weights(op.inputs[1]), bias_pointer(op, ctx), *arrays,
                                         ctx.ptr(op.outputs[0])])
    args = [f"&(const mcu_fc_params){{{c_fields(params)}}}", ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]),
            bias_pointer(op, ctx)]
    if per_tensor:
        return c_call("mcu_fc_s8", [*args, ctx.ptr(op.outputs[0])])
    return c_call("mcu_fc_s8_per_channel", [*args, *requant_arrays(op, ctx, q), ctx.ptr(op.outputs[0])])


def read(raw, tensors: dict) -> list[Op]:
    opt = options_of(raw, "FullyConnectedOptions")
    if opt is not None and opt.WeightsFormat() != 0:
        raise ModelError(f"{where(raw)}: shuffled weight formats are not supported")
    w = check_rank(raw, tensors, 1, 2, "weights")
    if w.data is None:
        raise ModelError(f"{where(raw)}: non-constant weights are not supported")
    x = tensors[raw.inputs[0]]
    if w.shape[1] == 0 or x.size % w.shape[1]:
        raise ModelError(f"{where(raw)}: input {list(x.shape)} cannot be flattened into rows of {w.shape[1]}")
    attrs = {"activation": activation_of(raw, opt.FusedActivationFunction() if opt else 0),
             "keep_num_dims": bool(opt.KeepNumDims()) if opt else False}
    bias = raw.inputs[2] if len(raw.inputs) > 2 else ""
    return [Op(raw.kind, (raw.inputs[0], raw.inputs[1], bias), raw.outputs[:1], attrs)]


def write(low, op: Op) -> None:
    from ..frontends.tflite_writer import ACTIVATION_CODES

    a = op.attrs
    bias = op.inputs[2] if len(op.inputs) > 2 else ""
    fields = {"FusedActivationFunction": ACTIVATION_CODES[a.get("activation", "NONE")],
              "KeepNumDims": bool(a.get("keep_num_dims", False))}
    low.emit(op.kind, [low.tensor(n) for n in (op.inputs[0], op.inputs[1], bias)],
             [low.tensor(op.outputs[0])], ("FullyConnectedOptions", fields))


OPERATOR = Operator("FULLY_CONNECTED", read, (2, 3, (2,)), write, SPEC, check, reference, emit, macs=macs,
                    version=4)
