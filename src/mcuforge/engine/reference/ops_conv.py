"""Reference kernels: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (int8, TFLM semantics), and the
two halves of a convolution that fused execution splits it into: CONV_1X1_ACC (int32 partial sums) and
ACC_REQUANTIZE (the convolution's requantization of the finished sum).

TFLM's int8 convolution, per output element:
    acc = bias[o] + sum over taps inside the input of w * (x - input_zero_point)
    out = clamp(MultiplyByQuantizedMultiplier(acc, M[o], S[o]) + output_zero_point, act_min, act_max)
Taps outside the input are skipped, which equals padding the zero-point-shifted input with zeros.

The requantization constants are computed here, once, and the C emitter uses the same functions, so the
reference and the generated code cannot drift apart. The pip tflite-micro computes every one of them in
double: double(input_scale) * double(filter_scale[c]) / double(output_scale) (per output channel for conv
and depthwise, once for fully connected). Older TFLite sources formed the fully-connected product in
float32 first; tests/test_ops_conv.py has scales where the two differ and checks which one TFLM uses.

The products are summed as float64 through BLAS: every operand is an integer of magnitude <= 255, so each
product is exact and every partial sum is an integer far below 2^53, hence exact in any summation order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ...errors import ModelError, shown
from ...ir import Graph, Op, Tensor
from ...quant import intmath
from .registry import kernel

# |x - zp| <= 255 and |w - w_zp| <= 255: float64 sums of up to 2^37 such products are exact.
_MAX_EXACT_TERMS = 1 << 37


@dataclass(frozen=True)
class ConvQuant:
    """Everything the integer kernel needs besides shapes and data."""

    input_offset: int  # -input zero point
    weights_offset: int  # -weights zero point (fully connected only; 0 for conv and depthwise)
    output_offset: int  # output zero point
    multiplier: np.ndarray  # int64 Q31 multipliers, one per output channel
    shift: np.ndarray  # int64 shifts (> 0: left), one per output channel
    act_min: int
    act_max: int


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of a 2-D convolution (NHWC activations)."""

    batches: int
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    dil_h: int
    dil_w: int
    pad_top: int
    pad_left: int
    filter_in_c: int  # input channels each filter reads (in_c / groups for CONV_2D; 1 for depthwise)
    multiplier: int  # depthwise channel multiplier (1 for CONV_2D)

    @property
    def groups(self) -> int:
        return self.in_c // self.filter_in_c


def _int8_edges(op: Op, graph: Graph) -> tuple[Tensor, Tensor, Tensor]:
    x, w, y = graph[op.inputs[0]], graph[op.inputs[1]], graph[op.outputs[0]]
    for t, role in ((x, "input"), (w, "weights"), (y, "output")):
        if t.dtype != "int8" or t.quant is None:
            raise ModelError(f"{op.kind} {shown(op.name)}: {role} {shown(t.name)} must be quantized int8, got {t.dtype}"
                             + ("" if t.quant is not None else " without quantization parameters"))
    if not w.is_const:
        raise ModelError(f"{op.kind} {shown(op.name)}: weights {shown(w.name)} must be constant")
    if len(op.inputs) > 2 and op.inputs[2]:
        b = graph[op.inputs[2]]
        if b.dtype != "int32" or not b.is_const:
            raise ModelError(f"{op.kind} {shown(op.name)}: bias {shown(b.name)} must be a constant int32 tensor, got {b.dtype}")
    return x, w, y


def conv_geometry(op: Op, graph: Graph) -> ConvGeometry:
    """Shapes of a CONV_2D or DEPTHWISE_CONV_2D; raises ModelError on inconsistent ones."""
    x, w, y = graph[op.inputs[0]], graph[op.inputs[1]], graph[op.outputs[0]]
    if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        raise ModelError(f"{op.kind} {shown(op.name)}: needs 4-D input, weights and output, got "
                         f"{x.shape}, {w.shape}, {y.shape}")
    n, ih, iw, ic = x.shape
    on, oh, ow, oc = y.shape
    sh, sw = (int(v) for v in op.attrs.get("stride", (1, 1)))
    dh, dw = (int(v) for v in op.attrs.get("dilation", (1, 1)))
    top, _bottom, left, _right = (int(v) for v in op.attrs.get("pad", (0, 0, 0, 0)))
    if op.kind == "DEPTHWISE_CONV_2D":
        mult = int(op.attrs.get("multiplier", oc // max(ic, 1)))
        _, kh, kw, wc = w.shape
        fic = 1
        ok = w.shape[0] == 1 and wc == oc == ic * mult
    else:
        mult = 1
        wo, kh, kw, fic = w.shape
        ok = wo == oc and fic > 0 and ic % fic == 0 and oc % (ic // fic) == 0
    if not ok or on != n or min(sh, sw, dh, dw) < 1 or min(top, left) < 0:
        raise ModelError(f"{op.kind} {shown(op.name)}: inconsistent shapes or attributes: input {x.shape}, weights "
                         f"{w.shape}, output {y.shape}, attrs {dict(op.attrs)}")
    return ConvGeometry(n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, top, left, fic, mult)


def _bias(op: Op, graph: Graph, n_out: int) -> np.ndarray:
    if len(op.inputs) > 2 and op.inputs[2]:
        data = graph[op.inputs[2]].data
        assert data is not None
        return np.asarray(data, np.int64).reshape(n_out)
    return np.zeros(n_out, np.int64)


def _channel_scales(w: Tensor, n_out: int, op: Op) -> np.ndarray:
    assert w.quant is not None
    scales = np.asarray(w.quant.scale, np.float32).ravel()
    if scales.size == 1:
        return np.repeat(scales, n_out)
    if scales.size != n_out:
        raise ModelError(f"{op.kind} {shown(op.name)}: weights have {scales.size} scales for {n_out} output channels")
    return scales


def effective_scale(input_scale: float, filter_scale: float, output_scale: float) -> float:
    """The real requantization multiplier, exactly as TFLM's Prepare forms it: float32 scales, double math."""
    return float(np.float32(input_scale)) * float(np.float32(filter_scale)) / float(np.float32(output_scale))


def conv_quant(op: Op, graph: Graph) -> ConvQuant:
    """Requantization constants of a CONV_2D or DEPTHWISE_CONV_2D, as TFLM's Prepare computes them."""
    x, w, y = _int8_edges(op, graph)
    assert x.quant is not None and w.quant is not None and y.quant is not None
    n_out = y.shape[-1]
    if np.any(np.asarray(w.quant.zero_point) != 0):
        raise ModelError(f"{op.kind} {shown(op.name)}: int8 weights must be symmetric (zero point 0)")
    reals = [effective_scale(x.quant.s, s, y.quant.s) for s in _channel_scales(w, n_out, op)]
    mult, shift = intmath.quantize_multipliers(np.array(reals, np.float64))
    lo, hi = intmath.activation_range(str(op.attrs.get("activation", "NONE")), y.quant.s, y.quant.zp)
    return ConvQuant(-x.quant.zp, 0, y.quant.zp, mult, shift, lo, hi)


def fc_quant(op: Op, graph: Graph) -> ConvQuant:
    """Requantization constants of a FULLY_CONNECTED (per-tensor or per-output-channel weights)."""
    x, w, y = _int8_edges(op, graph)
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


def acc_quant(op: Op, graph: Graph) -> ConvQuant:
    """Requantization constants of an ACC_REQUANTIZE: those of the convolution whose accumulator it reads."""
    acc, y = graph[op.inputs[0]], graph[op.outputs[0]]
    if acc.dtype != "int32" or y.dtype != "int8" or y.quant is None:
        raise ModelError(f"{op.kind} {shown(op.name)}: needs an int32 accumulator and a quantized int8 output")
    scales = np.asarray(op.attrs["filter_scales"], np.float32).ravel()
    if scales.size != y.shape[-1]:
        raise ModelError(f"{op.kind} {shown(op.name)}: {scales.size} filter scales for {y.shape[-1]} output channels")
    reals = [effective_scale(float(op.attrs["input_scale"]), s, y.quant.s) for s in scales]
    mult, shift = intmath.quantize_multipliers(np.array(reals, np.float64))
    lo, hi = intmath.activation_range(str(op.attrs.get("activation", "NONE")), y.quant.s, y.quant.zp)
    return ConvQuant(0, 0, y.quant.zp, mult, shift, lo, hi)


def requantize(acc: np.ndarray, q: ConvQuant) -> np.ndarray:
    """int64 accumulators (channel last, bias included) -> int8 outputs."""
    scaled = intmath.multiply_by_quantized_multiplier(acc, q.multiplier, q.shift)
    return np.clip(scaled + q.output_offset, q.act_min, q.act_max).astype(np.int8)


def _windows(x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """View [N, OH, OW, KH, KW, C] of the zero-padded input: every tap of every output position."""
    need_h = (g.out_h - 1) * g.stride_h + (g.k_h - 1) * g.dil_h + 1
    need_w = (g.out_w - 1) * g.stride_w + (g.k_w - 1) * g.dil_w + 1
    bottom = max(0, need_h - g.pad_top - g.in_h)
    right = max(0, need_w - g.pad_left - g.in_w)
    padded = np.pad(x, ((0, 0), (g.pad_top, bottom), (g.pad_left, right), (0, 0)))
    sn, sh, sw, sc = padded.strides
    return as_strided(padded, shape=(g.batches, g.out_h, g.out_w, g.k_h, g.k_w, g.in_c),
                      strides=(sn, sh * g.stride_h, sw * g.stride_w, sh * g.dil_h, sw * g.dil_w, sc),
                      writeable=False)


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer a @ b (|values| <= 255) through float64 BLAS; exact, see the module docstring."""
    assert a.shape[-1] <= _MAX_EXACT_TERMS
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def conv2d_acc(x: np.ndarray, w: np.ndarray, g: ConvGeometry, input_offset: int) -> np.ndarray:
    """int64 accumulators [N, OH, OW, O] of a (grouped) convolution, without bias."""
    win = _windows(np.asarray(x, np.int64) + input_offset, g)
    rows = g.batches * g.out_h * g.out_w
    per_group = g.out_c // g.groups
    acc = np.empty((rows, g.out_c), np.int64)
    taps = win.reshape(rows, g.k_h, g.k_w, g.groups, g.filter_in_c)
    for gi in range(g.groups):
        cols = taps[:, :, :, gi, :].reshape(rows, -1)
        wg = np.asarray(w[gi * per_group:(gi + 1) * per_group], np.int64).reshape(per_group, -1)
        acc[:, gi * per_group:(gi + 1) * per_group] = _exact_matmul(cols, wg.T)
    return acc.reshape(g.batches, g.out_h, g.out_w, g.out_c)


def depthwise_acc(x: np.ndarray, w: np.ndarray, g: ConvGeometry, input_offset: int) -> np.ndarray:
    """int64 accumulators [N, OH, OW, C*multiplier] of a depthwise convolution, without bias."""
    win = _windows(np.asarray(x, np.int64) + input_offset, g)
    wk = np.asarray(w, np.int64).reshape(g.k_h, g.k_w, g.in_c, g.multiplier)
    acc = np.zeros((g.batches, g.out_h, g.out_w, g.in_c, g.multiplier), np.int64)
    for ky in range(g.k_h):
        for kx in range(g.k_w):
            acc += win[:, :, :, ky, kx, :, None] * wk[ky, kx]
    return acc.reshape(g.batches, g.out_h, g.out_w, g.out_c)


@kernel("CONV_2D")
def conv2d(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    x, w = args[0], args[1]
    assert x is not None and w is not None
    g, q = conv_geometry(op, graph), conv_quant(op, graph)
    acc = conv2d_acc(x, w, g, q.input_offset) + _bias(op, graph, g.out_c)
    return [requantize(acc, q)]


@kernel("DEPTHWISE_CONV_2D")
def depthwise_conv2d(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    x, w = args[0], args[1]
    assert x is not None and w is not None
    g, q = conv_geometry(op, graph), conv_quant(op, graph)
    acc = depthwise_acc(x, w, g, q.input_offset) + _bias(op, graph, g.out_c)
    return [requantize(acc, q)]


@kernel("CONV_1X1_ACC")
def conv_1x1_acc(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    x, w, bias, acc = args
    assert x is not None and w is not None
    x_t = graph[op.inputs[0]]
    assert x_t.quant is not None
    out_c = w.shape[0]
    rows = np.asarray(x, np.int64).reshape(-1, x.shape[-1]) - x_t.quant.zp
    total = _exact_matmul(rows, np.asarray(w, np.int64).reshape(out_c, -1).T)
    if bias is not None:
        total += np.asarray(bias, np.int64).reshape(out_c)
    if acc is not None:
        total += np.asarray(acc, np.int64).reshape(-1, out_c)
    return [total.reshape(graph[op.outputs[0]].shape).astype(np.int32)]


@kernel("ACC_REQUANTIZE")
def acc_requantize(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    assert args[0] is not None
    return [requantize(np.asarray(args[0], np.int64), acc_quant(op, graph))]


def fc_shape(op: Op, graph: Graph) -> tuple[int, int, int]:
    """(batches, in_features, out_features) of a FULLY_CONNECTED; the input is flattened to [-1, I]."""
    x, w, y = graph[op.inputs[0]], graph[op.inputs[1]], graph[op.outputs[0]]
    if len(w.shape) != 2:
        raise ModelError(f"{op.kind} {shown(op.name)}: weights must be 2-D [O, I], got {w.shape}")
    out_f, in_f = w.shape
    if in_f == 0 or x.size % in_f or y.size != (x.size // in_f) * out_f:
        raise ModelError(f"{op.kind} {shown(op.name)}: input {x.shape} does not flatten to [-1, {in_f}] "
                         f"for output {y.shape}")
    return x.size // in_f, in_f, out_f


@kernel("FULLY_CONNECTED")
def fully_connected(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    x, w = args[0], args[1]
    assert x is not None and w is not None
    batches, in_f, out_f = fc_shape(op, graph)
    q = fc_quant(op, graph)
    xs = np.asarray(x, np.int64).reshape(batches, in_f) + q.input_offset
    ws = np.asarray(w, np.int64).reshape(out_f, in_f) + q.weights_offset
    acc = _exact_matmul(xs, ws.T) + _bias(op, graph, out_f)
    return [requantize(acc, q).reshape(graph[op.outputs[0]].shape)]
