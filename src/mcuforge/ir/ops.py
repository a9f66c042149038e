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

Operands listed in an OpSpec are tensor names in `op.inputs`; "" marks an absent optional one. Each
operator's own operands and attributes are in its module (mcuforge.operators.<op>).
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


# kind -> its OpSpec; filled by mcuforge.operators.install() (each operator's module defines its own)
SPECS: dict[str, OpSpec] = {}

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
