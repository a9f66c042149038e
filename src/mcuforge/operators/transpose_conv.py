"""TRANSPOSE_CONV int8 (TFLM's reference_integer_ops::TransposeConv), per-channel weights.

Operands (canonical order): input int8 [N, H, W, I]; weights int8 [O, KH, KW, I], symmetric; bias int32
[O] (optional). Output int8 [N, OH, OW, O]. Every input pixel scatters (x - x_zp) * w into the outputs
(iy * stride - pad + ky, ix * stride - pad + kx) that lie inside; each output sum, plus its bias, is
requantized per channel as a convolution's (double(s_x) * double(s_w[o]) / double(s_y)) and clamped to
int8 (TFLM applies no fused activation here). The padding is TFLM's: that of the forward convolution from
an OH x OW image, (before) = max(0, (out - 1) * stride + K - OH) // 2, with out = ceil(OH / stride) for
SAME and (OH - K + stride) // stride for VALID. The C kernel gathers instead of scattering (no int32
buffer of the output's size): the same sums.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import options_of, where
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from ..quant import intmath
from ..quant.intmath import multiply_by_quantized_multiplier_wrapping as requantize
from .base import Operator

SPEC = OpSpec(("input", "weights", "bias?"), ("stride", "padding"), weights=(1, 2), typed=True)
PADDINGS = {0: "SAME", 1: "VALID"}
MAX_TERMS = (1 << 31) // (255 * 128)


def pads(op: Op, graph: Graph) -> tuple[int, int]:
    """TFLM's (top, left) padding of the transpose convolution."""
    out, w = graph[op.outputs[0]].shape, graph[op.inputs[1]].shape
    result = []
    for size, k, s in zip(out[1:3], w[1:3], op.attrs["stride"]):
        forward = (size + s - 1) // s if op.attrs["padding"] == "SAME" else (size - k + s) // s
        result.append(max(0, (forward - 1) * s + k - size) // 2)
    return result[0], result[1]


def check(op: Op, graph: Graph, where_: str) -> None:
    x, w, y = graph[op.inputs[0]], graph[op.inputs[1]], graph[op.outputs[0]]
    if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        raise ModelError(f"{where_}: input, filter and output must have rank 4")
    if w.shape[3] != x.shape[3] or w.shape[0] != y.shape[3] or x.shape[0] != y.shape[0]:
        raise ModelError(f"{where_}: filter {list(w.shape)} does not fit input {list(x.shape)} and output "
                         f"{list(y.shape)}")
    stride = op.attrs["stride"]
    if min(stride) < 1 or op.attrs["padding"] not in PADDINGS.values():
        raise ModelError(f"{where_}: stride {list(stride)} or padding {op.attrs['padding']} is not valid")
    for t in (x, y):
        if t.dtype != "int8" or t.quant is None or t.quant.per_channel:
            raise ModelError(f"{where_}: {shown(t.name)} is {t.dtype}; int8 quantized per tensor expected")
    if (w.dtype != "int8" or not w.is_const or w.quant is None or np.any(np.asarray(w.quant.zero_point) != 0)
            or (w.quant.per_channel and (w.quant.axis != 0 or w.quant.scale.size != w.shape[0]))):
        raise ModelError(f"{where_}: the filter must be constant int8, symmetric, per tensor or per output channel")
    if op.inputs[2] and (graph[op.inputs[2]].dtype != "int32" or graph[op.inputs[2]].size != w.shape[0]
                         or not graph[op.inputs[2]].is_const):
        raise ModelError(f"{where_}: the bias must be a constant int32 vector of {w.shape[0]}")
    terms = -(-w.shape[1] // stride[0]) * -(-w.shape[2] // stride[1]) * w.shape[3]
    if terms > MAX_TERMS:
        raise ModelError(f"{where_}: sums of {terms} products could overflow int32")


def read(raw, tensors: dict) -> list[Op]:
    opt = options_of(raw, "TransposeConvOptions", required=True)
    if opt.Padding() not in PADDINGS:
        raise ModelError(f"{where(raw)}: unknown padding #{opt.Padding()}")
    if hasattr(opt, "FusedActivationFunction") and opt.FusedActivationFunction():
        raise ModelError(f"{where(raw)}: a fused activation on TRANSPOSE_CONV is not supported")
    shape, y = tensors[raw.inputs[0]], tensors[raw.outputs[0]]
    if shape.data is None or [int(v) for v in shape.data.reshape(-1)] != list(y.shape):
        raise ModelError(f"{where(raw)}: the output shape must be a constant equal to the output's")
    bias = raw.inputs[3] if len(raw.inputs) > 3 else ""
    attrs = {"stride": (int(opt.StrideH()), int(opt.StrideW())), "padding": PADDINGS[opt.Padding()]}
    return [Op("TRANSPOSE_CONV", (raw.inputs[2], raw.inputs[1], bias), raw.outputs[:1], attrs)]


def write(low, op: Op) -> None:
    shape = low.const_i32(f"{op.name}/output_shape", list(low.graph[op.outputs[0]].shape))
    inputs = [shape, low.tensor(op.inputs[1]), low.tensor(op.inputs[0])] + ([low.tensor(op.inputs[2])]
                                                                              if op.inputs[2] else [])
    padding = {v: k for k, v in PADDINGS.items()}[op.attrs["padding"]]
    low.emit("TRANSPOSE_CONV", inputs, [low.tensor(op.outputs[0])],
             ("TransposeConvOptions", {"Padding": padding, "StrideH": op.attrs["stride"][0],
                                       "StrideW": op.attrs["stride"][1]}))


def prepare(op: Op, graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel (multiplier, shift), as TFLM's PopulateConvolutionQuantizationParams."""
    x, w, y = (graph[n].quant for n in (op.inputs[0], op.inputs[1], op.outputs[0]))
    scales = np.broadcast_to(np.asarray(w.scale, np.float32).reshape(-1), (graph[op.inputs[1]].shape[0],))
    reals = [float(np.float32(x.s)) * float(np.float32(s)) / float(np.float32(y.s)) for s in scales]
    return intmath.quantize_multipliers(np.array(reals, np.float64))


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    x = np.asarray(args[0], np.int64) - graph[op.inputs[0]].quant.zp
    w = np.asarray(args[1], np.int64)
    n, h, wd, _ = x.shape
    o, kh, kw, _ = w.shape
    sh, sw = op.attrs["stride"]
    ph, pw = pads(op, graph)
    oh, ow = graph[op.outputs[0]].shape[1:3]
    big = np.zeros((n, max((h - 1) * sh + kh, ph + oh), max((wd - 1) * sw + kw, pw + ow), o), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            big[:, ky:ky + (h - 1) * sh + 1:sh, kx:kx + (wd - 1) * sw + 1:sw] += x @ w[:, ky, kx, :].T
    acc = big[:, ph:ph + oh, pw:pw + ow]
    if args[2] is not None:
        acc = acc + np.asarray(args[2], np.int64)
    mult, shift = prepare(op, graph)
    out = np.stack([requantize(acc[..., c], int(mult[c]), int(shift[c])) for c in range(o)], axis=-1)
    return [np.clip(out + graph[op.outputs[0]].quant.zp, -128, 127).astype(np.int8)]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct

    g = ctx.graph
    x, w, y = g[op.inputs[0]], g[op.inputs[1]], g[op.outputs[0]]
    mult, shift = prepare(op, g)
    ctx.use("mcu_transpose_conv_s8.h")
    ph, pw = pads(op, g)
    params = {"batches": x.shape[0], "in_h": x.shape[1], "in_w": x.shape[2], "in_c": x.shape[3],
              "out_h": y.shape[1], "out_w": y.shape[2], "out_c": y.shape[3], "k_h": w.shape[1], "k_w": w.shape[2],
              "stride_h": op.attrs["stride"][0], "stride_w": op.attrs["stride"][1], "pad_h": ph, "pad_w": pw,
              "input_offset": -x.quant.zp, "output_offset": y.quant.zp}
    bias = ctx.const(op.inputs[2]) if op.inputs[2] else "0"
    return c_call("mcu_transpose_conv_s8", [
        c_struct("mcu_transpose_conv_params", params), ctx.ptr(op.inputs[0]), ctx.const(op.inputs[1]), bias,
        ctx.const("transpose_conv_multipliers", mult.astype(np.int32), "int32_t"),
        ctx.const("transpose_conv_shifts", shift.astype(np.int32), "int32_t"), ctx.ptr(op.outputs[0])])


def macs(op: Op, graph: Graph) -> int:
    x, w = graph[op.inputs[0]].shape, graph[op.inputs[1]].shape
    return x[0] * x[1] * x[2] * x[3] * w[0] * w[1] * w[2]


OPERATOR = Operator("TRANSPOSE_CONV", read, (3, 4, (3,)), write, SPEC, check, reference, emit, macs, version=3)
