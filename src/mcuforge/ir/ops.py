"""Canonical operators: their operands and attributes.

The frontends normalise every model to these forms; every later stage may rely on them.

Shared attribute meanings
- stride: (sh, sw); dilation: (dh, dw); pad: (top, bottom, left, right) explicit padding (TFLite's
  SAME/VALID and a folded PAD op both become explicit pads). For convolutions the padded values are the
  input zero point (they contribute nothing); for pools they are left out of the window (the average
  divides by the count of real elements, the max ignores them), as in TFLite.
- axis (CONCATENATION) is non-negative.
- activation: "NONE" | "RELU" | "RELU6" | "RELU_N1_TO_1" (a clamp on the quantized output range,
  see mcuforge.quant.intmath.activation_range).
- axes: sorted, non-negative axis indices.

Operands listed in `OPERANDS` are tensor names in `op.inputs`; "" marks an absent optional one.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpSpec:
    operands: tuple[str, ...]  # names of the inputs, in order; a trailing "?" marks optional
    attrs: tuple[str, ...]
    elementwise: bool = False  # output[i] depends only on the inputs at index i (after broadcasting)
    states: tuple[int, ...] = ()  # input positions of state tensors (Tensor.variable) it updates in place
    weights: tuple[int, ...] = ()  # input positions that may be constants (weights, bias; registry operators)
    typed: bool = False  # its shape rule checks the operand types as well (registry operators)


_CONV = ("stride", "dilation", "pad", "activation")

SPECS: dict[str, OpSpec] = {
    # weights [O,KH,KW,I], bias int32 [O]
    "CONV_2D": OpSpec(("input", "weights", "bias?"), _CONV),
    # weights [1,KH,KW,C*multiplier]
    "DEPTHWISE_CONV_2D": OpSpec(("input", "weights", "bias?"), _CONV + ("multiplier",)),
    # weights [O,I]; input flattened to [-1, I]
    "FULLY_CONNECTED": OpSpec(("input", "weights", "bias?"), ("activation", "keep_num_dims")),
    # pads: ((before, after), ...) one pair per dimension; value: the quantized fill value
    "PAD": OpSpec(("input",), ("pads", "value")),
    # RESHAPE, SQUEEZE and EXPAND_DIMS all become RESHAPE: same bytes, new shape (the output tensor's)
    "RESHAPE": OpSpec(("input",), ()),
    "CONCATENATION": OpSpec(("inputs...",), ("axis", "activation")),
    # slices: one (start, stop, step) per input dimension, as for a numpy slice (stop may be None);
    # the output tensor's shape then drops shrunk axes (a reshape of the sliced block)
    "STRIDED_SLICE": OpSpec(("input",), ("slices",)),
    # Patch-based execution (engine.schedule.patch): the output is `base` (absent: undefined bytes) with the
    # block starting at index `origin` (one start per dimension) replaced by `patch`; in place over `base`.
    "PASTE": OpSpec(("base?", "patch"), ("origin",)),
    # Fused inverted-residual execution (engine.schedule.fuse): a pointwise convolution over a slice of the
    # input channels, added into an int32 accumulator [N,H,W,O]: acc (absent: 0) + bias (absent: 0) +
    # sum over the slice of (input - input zero point) * weights; in place over `acc`.
    "CONV_1X1_ACC": OpSpec(("input", "weights", "bias?", "acc?"), ()),
    # The int32 accumulator of a convolution -> its int8 output, requantized as that convolution would:
    # input_scale and filter_scales (one per output channel) are the convolution's, the output's
    # quantization is the output tensor's.
    "ACC_REQUANTIZE": OpSpec(("acc",), ("input_scale", "filter_scales", "activation"), elementwise=True),
    "ADD": OpSpec(("a", "b"), ("activation",), elementwise=True),
    "SUB": OpSpec(("a", "b"), ("activation",), elementwise=True),
    "MUL": OpSpec(("a", "b"), ("activation",), elementwise=True),
    "RELU": OpSpec(("input",), (), elementwise=True),
    # float32 -> int8, or int8 -> int8 (requantize)
    "QUANTIZE": OpSpec(("input",), (), elementwise=True),
    # int8 -> float32
    "DEQUANTIZE": OpSpec(("input",), (), elementwise=True),
}

# (input, output) types of the QUANTIZE ops the engine runs (TFLM's quantize kernel): float32 only from a
# model input; uint8, int16 and int32 only at a model's edges (ir.passes), or from SOFTMAX's int16 output.
QUANTIZE_TYPES = frozenset({("float32", "int8"), ("int8", "int8"), ("uint8", "int8"), ("int8", "uint8"),
                            ("int16", "int8"), ("int8", "int16"), ("int16", "int16"), ("int16", "int32"),
                            ("int8", "int32")})
ALIAS_KINDS = frozenset({"RESHAPE"})
# Made by the engine's own rewrites; no TFLite operator.
INTERNAL_KINDS = frozenset({"PASTE", "CONV_1X1_ACC", "ACC_REQUANTIZE"})
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def spec(kind: str) -> OpSpec:
    return SPECS[kind]
