"""What the weight-product operators share (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and the fused
halves CONV_1X1_ACC / ACC_REQUANTIZE): their Prepare (the requantization constants), geometry, exact
integer products, the bias with the input offset folded in, the reading and writing of the two
convolutions, and the pieces their C emitters have in common. Each operator's own module holds the rest.

TFLM's int8 convolution, per output element:
    acc = bias[o] + sum over taps inside the input of w * (x - input_zero_point)
    out = clamp(MultiplyByQuantizedMultiplier(acc, M[o], S[o]) + output_zero_point, act_min, act_max)
Taps outside the input are skipped, which equals padding the zero-point-shifted input with zeros.

The requantization constants are computed here, once; the reference and the emitters call the same
functions, so they cannot drift apart. The pip tflite-micro computes every one of them in double:
double(input_scale) * double(filter_scale[c]) / double(output_scale) (per output channel for conv and
depthwise, once for fully connected). Older TFLite sources formed the fully-connected product in float32
first; tests/test_ops_conv.py has scales where the two differ and checks which one TFLM uses.

The products are summed as float64 through BLAS: every operand is an integer of magnitude <= 255, so each
product is exact and every partial sum is an integer far below 2^53, hence exact in any summation order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ModelError, shown
from ..frontends.tflite_ops import activation_of, check_rank, options_of, where, window, window_pads
from ..ir.graph import Graph, Op, QuantParams, Tensor
from ..quant import intmath

# |x - zp| <= 255 and |w - w_zp| <= 255: float64 sums of up to 2^37 such products are exact.
_MAX_EXACT_TERMS = 1 << 37
_INT32_MAX = 2**31 - 1
_MAX_PRODUCT = 128 * 128  # |x * w| for int8 x and w
CONV_ATTRS = ("stride", "dilation", "pad", "activation")


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


def int8_edges(op: Op, graph: Graph) -> tuple[Tensor, Tensor, Tensor]:
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
            raise ModelError(f"{op.kind} {shown(op.name)}: bias {shown(b.name)} must be a constant int32 tensor, "
                             f"got {b.dtype}")
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


def bias_values(op: Op, graph: Graph, n_out: int) -> np.ndarray:
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
    x, w, y = int8_edges(op, graph)
    assert x.quant is not None and w.quant is not None and y.quant is not None
    n_out = y.shape[-1]
    if np.any(np.asarray(w.quant.zero_point) != 0):
        raise ModelError(f"{op.kind} {shown(op.name)}: int8 weights must be symmetric (zero point 0)")
    reals = [effective_scale(x.quant.s, s, y.quant.s) for s in _channel_scales(w, n_out, op)]
    mult, shift = intmath.quantize_multipliers(np.array(reals, np.float64))
    lo, hi = intmath.activation_range(str(op.attrs.get("activation", "NONE")), y.quant.s, y.quant.zp)
    return ConvQuant(-x.quant.zp, 0, y.quant.zp, mult, shift, lo, hi)


def requantize(acc: np.ndarray, q: ConvQuant) -> np.ndarray:
    """int64 accumulators (channel last, bias included) -> int8 outputs."""
    scaled = intmath.multiply_by_quantized_multiplier(acc, q.multiplier, q.shift)
    return np.clip(scaled + q.output_offset, q.act_min, q.act_max).astype(np.int8)


def windows(x: np.ndarray, g: ConvGeometry) -> np.ndarray:
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


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer a @ b (|values| <= 255) through float64 BLAS; exact, see the module docstring."""
    assert a.shape[-1] <= _MAX_EXACT_TERMS
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def folded_bias(op: Op, graph: Graph) -> np.ndarray | None:
    """The bias the fast kernels take: bias + input_offset * (sum of the output channel's weights), int64
    per output channel (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, CONV_1X1_ACC); None when the
    accumulation could then leave int32 (the plain kernels run instead) or the op has no int8 weights."""
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


def convolution_reference(accumulate: Callable[[np.ndarray, np.ndarray, ConvGeometry, int], np.ndarray]):
    """The reference of CONV_2D or DEPTHWISE_CONV_2D, from its accumulation (x, w, geometry, input offset)
    -> int64 accumulators without bias."""

    def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        x, w = args[0], args[1]
        assert x is not None and w is not None
        g, q = conv_geometry(op, graph), conv_quant(op, graph)
        return [requantize(accumulate(x, w, g, q.input_offset) + bias_values(op, graph, g.out_c), q)]

    return reference


# ---------------------------------------------------------------- .tflite (CONV_2D and DEPTHWISE_CONV_2D)


def read_conv(raw, tensors: dict) -> list[Op]:
    depthwise = raw.kind == "DEPTHWISE_CONV_2D"
    opt = options_of(raw, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions", required=True)
    x = check_rank(raw, tensors, 0, 4, "input")
    w = check_rank(raw, tensors, 1, 4, "filter")
    y = check_rank(raw, tensors, -1, 4, "output")
    if w.data is None:
        raise ModelError(f"{where(raw)}: the filter must be constant")
    stride = window(raw, "stride", (opt.StrideH(), opt.StrideW()))
    dilation = window(raw, "dilation", (opt.DilationHFactor() or 1, opt.DilationWFactor() or 1))
    window(raw, "filter size", w.shape[1:3])
    pads = window_pads(raw, opt.Padding(), x.shape[1:3], y.shape[1:3], w.shape[1:3], stride, dilation)
    attrs: dict[str, Any] = {"stride": stride, "dilation": dilation, "pad": pads,
                             "activation": activation_of(raw, opt.FusedActivationFunction())}
    if depthwise:
        if w.shape[0] != 1 or w.shape[3] != y.shape[3] or x.shape[3] == 0 or y.shape[3] % x.shape[3]:
            raise ModelError(f"{where(raw)}: filter {list(w.shape)} does not fit input {list(x.shape)} "
                             f"and output {list(y.shape)}")
        attrs["multiplier"] = y.shape[3] // x.shape[3]
    else:
        groups = x.shape[3] // w.shape[3] if w.shape[3] else 0
        if not groups or groups * w.shape[3] != x.shape[3] or w.shape[0] % groups:
            raise ModelError(f"{where(raw)}: filter {list(w.shape)} does not fit input {list(x.shape)}: the input "
                             "channels must be the filter's depth times a number of groups that divides the filters")
        if w.shape[0] != y.shape[3]:
            raise ModelError(f"{where(raw)}: filter {list(w.shape)} does not match output {list(y.shape)}")
    bias = raw.inputs[2] if len(raw.inputs) > 2 else ""
    return [Op(raw.kind, (raw.inputs[0], raw.inputs[1], bias), raw.outputs[:1], attrs)]


def write_conv(low, op: Op) -> None:
    from ..frontends.tflite_writer import ACTIVATION_CODES, window_op

    a = op.attrs
    weights = low.graph[op.inputs[1]]
    src, padding = window_op(low, op, weights.shape[1:3], a["dilation"])
    fields = {"Padding": padding, "StrideH": a["stride"][0], "StrideW": a["stride"][1],
              "DilationHFactor": a["dilation"][0], "DilationWFactor": a["dilation"][1],
              "FusedActivationFunction": ACTIVATION_CODES[a["activation"]]}
    table = "Conv2DOptions"
    if op.kind == "DEPTHWISE_CONV_2D":
        table, fields["DepthMultiplier"] = "DepthwiseConv2DOptions", a.get("multiplier", 1)
    bias = low.tensor(op.inputs[2] if len(op.inputs) > 2 else "")
    if bias < 0 and op.kind == "DEPTHWISE_CONV_2D":
        bias = _zero_bias(low, op)
    low.emit(op.kind, [src, low.tensor(op.inputs[1]), bias], [low.tensor(op.outputs[0])], (table, fields))


def _zero_bias(low, op: Op) -> int:
    """TFLM's depthwise kernel crashes without a bias operand: an all-zero bias gives the same result."""
    x, w = low.graph[op.inputs[0]], low.graph[op.inputs[1]]
    scales = (np.float32(x.quant.s) * w.quant.scale).astype(np.float32)
    quant = QuantParams(scales, np.zeros(scales.size, np.int64), 0 if scales.size > 1 else None)
    channels = w.shape[3]
    return low.extra(f"{op.name}/zero_bias", (channels,), "int32", quant, np.zeros(channels, np.int32))


# ---------------------------------------------------------------- what the C emitters share

NULL_I8 = "(int8_t *)0"
NULL_I32 = "(const int32_t *)0"


def bias_pointer(op: Op, ctx) -> str:
    return ctx.const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] else NULL_I32


def quant_fields(q: ConvQuant) -> dict[str, int]:
    return {"input_offset": q.input_offset, "output_offset": q.output_offset,
            "act_min": q.act_min, "act_max": q.act_max}


def window_fields(g: ConvGeometry) -> dict[str, int]:
    return {"stride_h": g.stride_h, "stride_w": g.stride_w, "dil_h": g.dil_h, "dil_w": g.dil_w,
            "pad_top": g.pad_top, "pad_left": g.pad_left}


def planned_kernel(ctx):
    """The kernel the planner chose for the op being emitted (MemoryPlan.kernels: a KernelChoice)."""
    return ctx.plan.kernels[ctx.index]


def check_scratch(op: Op, ctx, needed: int, variant: str) -> None:
    """The plan must give the op's kernel the scratch the planner chose for it."""
    granted = ctx.plan.scratch[ctx.index][1] if ctx.scratch is not None and ctx.index in ctx.plan.scratch else 0
    if granted < needed:
        raise ModelError(f"{op.kind} {shown(op.name)}: the {variant} kernel needs {needed} bytes of scratch, the plan "
                         f"gives {granted} (planner error)")
