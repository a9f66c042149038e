"""TFLite operators -> canonical IR operators (see mcuforge.ir.ops).

Each converter reads the builtin options, moves constant operands that describe the operation (shapes,
axes, pads, permutations) into attrs, and turns SAME/VALID into explicit pads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import ModelError, shown
from ..ir import Op, Tensor


def _enum_names(cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _builtin_names() -> dict[int, str]:
    from tflite.BuiltinOperator import BuiltinOperator

    return _enum_names(BuiltinOperator)


def _options_types() -> dict[str, int]:
    from tflite.BuiltinOptions import BuiltinOptions

    return {v: k for k, v in _enum_names(BuiltinOptions).items()}


BUILTIN_NAMES = _builtin_names()
OPTIONS_TYPES = _options_types()
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


@dataclass(frozen=True)
class RawOp:
    kind: str
    inputs: tuple[str, ...]  # "" for an absent optional operand (index -1)
    outputs: tuple[str, ...]
    options: Any  # flatbuffers Table or None
    options_type: int
    index: int


def options_of(raw: RawOp, cls_name: str, required: bool = False):
    """The op's options table read as `cls_name`; None when the op has none (refused if `required`)."""
    import tflite

    if raw.options is None or raw.options_type == 0:
        if required:
            raise ModelError(f"{where(raw)}: the operator has no {cls_name} table (corrupt model?)")
        return None
    if raw.options_type != OPTIONS_TYPES[cls_name]:
        raise ModelError(f"{where(raw)}: its options are of type #{raw.options_type}, not {cls_name} "
                         "(corrupt model?)")
    opt = getattr(tflite, cls_name)()
    opt.Init(raw.options.Bytes, raw.options.Pos)
    return opt


def where(raw: RawOp) -> str:
    return f"operator #{raw.index} {raw.kind} (output {shown(raw.outputs[0], 32) if raw.outputs else '?'})"


def activation_of(raw: RawOp, code: int) -> str:
    if code not in _ACTIVATIONS:
        raise ModelError(f"{where(raw)}: fused activation #{code} is not supported "
                         "(only NONE, RELU, RELU6, RELU_N1_TO_1)")
    return _ACTIVATIONS[code]


def _const(raw: RawOp, tensors: dict[str, Tensor], pos: int, what: str, rank: int = 1) -> np.ndarray:
    """A constant integer operand that describes the operation (axes, pads, shapes ...), of rank <= `rank`."""
    if pos >= len(raw.inputs) or not raw.inputs[pos] or tensors[raw.inputs[pos]].data is None:
        raise ModelError(f"{where(raw)}: the {what} must be a constant tensor")
    t = tensors[raw.inputs[pos]]
    if t.dtype not in ("int32", "int64") or len(t.shape) > rank:
        raise ModelError(f"{where(raw)}: the {what} {shown(t.name)} is {t.dtype} {list(t.shape)}; "
                         f"an int32 {'vector' if rank == 1 else 'matrix'} expected")
    return t.data.astype(np.int64)


def same_pads(in_size: int, out_size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite's SAME padding as (before, after)."""
    effective = (kernel - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective - in_size, 0)
    return total // 2, total - total // 2


def window_pads(raw: RawOp, padding: int, in_hw: tuple[int, int], out_hw: tuple[int, int],
                 kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, ...]:
    if padding == 1:  # VALID
        expect = tuple((i - ((k - 1) * d + 1) + s) // s for i, k, s, d in zip(in_hw, kernel, stride, dilation))
        pads = (0, 0, 0, 0)
    elif padding == 0:  # SAME
        expect = tuple((i + s - 1) // s for i, s in zip(in_hw, stride))
        (t, b), (lft, r) = (same_pads(in_hw[i], out_hw[i], kernel[i], stride[i], dilation[i]) for i in range(2))
        pads = (t, b, lft, r)
    else:
        raise ModelError(f"{where(raw)}: unknown padding #{padding}")
    if tuple(out_hw) != expect:
        raise ModelError(f"{where(raw)}: output size {list(out_hw)} does not match the window arithmetic "
                         f"{list(expect)} (corrupt model?)")
    return pads


def check_rank(raw: RawOp, tensors: dict[str, Tensor], pos: int, rank: int, what: str) -> Tensor:
    name = raw.inputs[pos] if pos >= 0 else raw.outputs[0]
    t = tensors[name]
    if len(t.shape) != rank:
        raise ModelError(f"{where(raw)}: the {what} {shown(name)} has shape {list(t.shape)}; rank {rank} expected")
    return t


MAX_WINDOW = 1 << 12  # strides, dilations and filter sizes beyond this are corrupt, not models


def window(raw: RawOp, what: str, values: tuple[int, int]) -> tuple[int, int]:
    if not all(1 <= v <= MAX_WINDOW for v in values):
        raise ModelError(f"{where(raw)}: {what} {list(values)} is invalid (1 .. {MAX_WINDOW} expected)")
    return values


def _conv(raw: RawOp, tensors: dict[str, Tensor]) -> list[Op]:
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


def _fully_connected(raw: RawOp, tensors: dict[str, Tensor]) -> list[Op]:
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


def _binary(raw: RawOp, tensors: dict[str, Tensor]) -> list[Op]:
    names = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}
    attrs: dict[str, Any] = {}
    if raw.kind in names:
        opt = options_of(raw, names[raw.kind])
        attrs["activation"] = activation_of(raw, opt.FusedActivationFunction() if opt else 0)
    return [Op(raw.kind, raw.inputs, raw.outputs[:1], attrs)]


def _unary(raw: RawOp, tensors: dict[str, Tensor]) -> list[Op]:
    attrs: dict[str, Any] = {}
    return [Op(raw.kind, raw.inputs[:1], raw.outputs[:1], attrs)]


def _reshape(raw: RawOp, tensors: dict[str, Tensor]) -> list[Op]:
    x, y = tensors[raw.inputs[0]], tensors[raw.outputs[0]]
    if x.size != y.size:
        raise ModelError(f"{where(raw)}: cannot reshape {list(x.shape)} into {list(y.shape)}")
    return [Op("RESHAPE", raw.inputs[:1], raw.outputs[:1])]


def _pad(raw: RawOp, tensors: dict[str, Tensor]) -> list[Op]:
    x, y = tensors[raw.inputs[0]], tensors[raw.outputs[0]]
    pads = _const(raw, tensors, 1, "padding list", rank=2)
    if pads.shape != (len(x.shape), 2) or np.any(pads < 0) or np.any(pads > MAX_WINDOW):
        raise ModelError(f"{where(raw)}: paddings {pads.reshape(-1)[:12].tolist()} do not fit input {list(x.shape)}")
    if tuple(int(d + p.sum()) for d, p in zip(x.shape, pads)) != y.shape:
        raise ModelError(f"{where(raw)}: paddings {pads.tolist()} do not give output {list(y.shape)}")
    if raw.kind == "PADV2" and len(raw.inputs) > 2 and raw.inputs[2]:
        fill = tensors[raw.inputs[2]]
        if fill.data is None or fill.size != 1 or fill.dtype != y.dtype:
            raise ModelError(f"{where(raw)}: the constant value must be one constant {y.dtype} value")
        value = int(fill.data.reshape(-1)[0])
    else:
        value = y.quant.zp if y.quant is not None else 0
    attrs = {"pads": tuple((int(a), int(b)) for a, b in pads), "value": value}
    return [Op("PAD", raw.inputs[:1], raw.outputs[:1], attrs)]


def _concat(raw: RawOp, tensors: dict[str, Tensor]) -> list[Op]:
    opt = options_of(raw, "ConcatenationOptions", required=True)
    rank = len(tensors[raw.outputs[0]].shape)
    axis = opt.Axis()
    if not -rank <= axis < rank:
        raise ModelError(f"{where(raw)}: axis {axis} out of range for rank {rank}")
    attrs = {"axis": axis % rank, "activation": activation_of(raw, opt.FusedActivationFunction())}
    return [Op("CONCATENATION", raw.inputs, raw.outputs[:1], attrs)]


def _slice_length(start: int, stop: int, step: int) -> int:
    return max(0, -((start - stop) // step)) if step > 0 else max(0, -((stop - start) // -step))


def slices_of(raw: RawOp, tensors: dict[str, Tensor]) -> list[tuple[int, int | None, int]]:
    """A STRIDED_SLICE's (start, stop, step) per input axis, as for a numpy slice, with TFLite's masks and
    negative indices resolved (a shrunk axis is a slice of length one)."""
    opt = options_of(raw, "StridedSliceOptions")
    x = tensors[raw.inputs[0]]
    begin = _const(raw, tensors, 1, "begin").tolist()
    end = _const(raw, tensors, 2, "end").tolist()
    strides = _const(raw, tensors, 3, "strides").tolist() if len(raw.inputs) > 3 else [1] * len(begin)
    if opt is not None and (opt.EllipsisMask() or opt.NewAxisMask()):
        raise ModelError(f"{where(raw)}: ellipsis and new-axis masks are not supported")
    begin_mask = opt.BeginMask() if opt else 0
    end_mask = opt.EndMask() if opt else 0
    shrink = opt.ShrinkAxisMask() if opt else 0
    offset = bool(opt.Offset()) if opt is not None and hasattr(opt, "Offset") else False
    rank = len(x.shape)
    if not len(begin) == len(end) == len(strides) <= rank:
        raise ModelError(f"{where(raw)}: begin/end/strides lengths do not match the input rank {rank}")
    slices = []
    for d in range(rank):
        n = x.shape[d]
        if d >= len(begin):
            slices.append((0, n, 1))
            continue
        s = strides[d]
        if s == 0 or abs(s) > MAX_WINDOW * MAX_WINDOW:
            raise ModelError(f"{where(raw)}: stride {s} on axis {d}")
        b, e = begin[d], (begin[d] + end[d] if offset else end[d])
        if shrink >> d & 1:
            b = b + n if b < 0 else b
            if not 0 <= b < n:
                raise ModelError(f"{where(raw)}: index {begin[d]} is outside axis {d} of {list(x.shape)}")
            slices.append((b, b + 1, 1))
            continue
        lo, hi = (0, n) if s > 0 else (-1, n - 1)
        b = (lo if s > 0 else hi) if begin_mask >> d & 1 else min(max(b + n if b < 0 else b, lo), hi)
        e = (hi if s > 0 else lo) if end_mask >> d & 1 else min(max(e + n if e < 0 else e, lo), hi)
        if _slice_length(b, e, s) == 0:
            raise ModelError(f"{where(raw)}: the slice of axis {d} is empty")
        slices.append((b, None if e < 0 else e, s))
    return slices


def _strided_slice(raw: RawOp, tensors: dict[str, Tensor]) -> list[Op]:
    y = tensors[raw.outputs[0]]
    slices = slices_of(raw, tensors)
    size = math.prod(_slice_length(b, -1 if e is None else e, s) for b, e, s in slices)
    if size != y.size:
        raise ModelError(f"{where(raw)}: the slice has {size} elements, the output {list(y.shape)} {y.size}")
    return [Op("STRIDED_SLICE", raw.inputs[:1], raw.outputs[:1], {"slices": tuple(slices)})]


CONVERTERS: dict[str, Callable[[RawOp, dict[str, Tensor]], list[Op]]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected,
    "ADD": _binary, "SUB": _binary, "MUL": _binary,
    "RELU": _unary,
    "QUANTIZE": _unary, "DEQUANTIZE": _unary,
    "RESHAPE": _reshape, "SQUEEZE": _reshape, "EXPAND_DIMS": _reshape,
    "PAD": _pad, "PADV2": _pad,
    "CONCATENATION": _concat, "STRIDED_SLICE": _strided_slice,
}

# Operand counts (fewest, most) and the optional positions (index -1 allowed); every op has one output.
ARITY: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "CONV_2D": (2, 3, (2,)), "DEPTHWISE_CONV_2D": (2, 3, (2,)), "FULLY_CONNECTED": (2, 3, (2,)),
    "ADD": (2, 2, ()), "SUB": (2, 2, ()), "MUL": (2, 2, ()),
    "RESHAPE": (1, 2, (1,)), "EXPAND_DIMS": (2, 2, ()), 
    "PAD": (2, 2, ()), "PADV2": (2, 3, (2,)), "CONCATENATION": (1, 1 << 10, ()),
    "STRIDED_SLICE": (3, 4, ()),
}


MULTI_OUTPUT: set[str] = set()  # operators with several outputs (SPLIT, UNPACK; mcuforge.operators)


def _check_operands(raw: RawOp) -> None:
    fewest, most, optional = ARITY.get(raw.kind, (1, 1, ()))
    if not fewest <= len(raw.inputs) <= most:
        count = str(fewest) if fewest == most else f"{fewest} to {most}"
        raise ModelError(f"{where(raw)}: {len(raw.inputs)} inputs, but the operator takes {count}")
    missing = [i for i, n in enumerate(raw.inputs) if not n and i not in optional]
    if missing:
        raise ModelError(f"{where(raw)}: input {missing[0]} is absent (tensor index -1) but required")
    if len(raw.outputs) != 1 and not (raw.kind in MULTI_OUTPUT and raw.outputs):
        raise ModelError(f"{where(raw)}: {len(raw.outputs)} outputs, but the operator has one")


def to_canonical(raw: RawOp, tensors: dict[str, Tensor]) -> list[Op]:
    """The canonical op(s) of one supported TFLite operator (see ir.ops)."""
    _check_operands(raw)
    return CONVERTERS[raw.kind](raw, tensors)
