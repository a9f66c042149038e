"""TFLite operators -> canonical IR operators (see mcuforge.ir.ops): what the operators' readers share.

Each operator's reader (Operator.read, in mcuforge.operators.<op>) reads the builtin options, moves
constant operands that describe the operation (shapes, axes, pads, permutations) into attrs, and turns
SAME/VALID into explicit pads with the helpers here.
"""
from __future__ import annotations

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


def const_operand(raw: RawOp, tensors: dict[str, Tensor], pos: int, what: str, rank: int = 1) -> np.ndarray:
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


# kind -> its converter, and its operand counts (fewest, most) with the optional positions (index -1
# allowed); filled by mcuforge.operators.install() (Operator.read, Operator.arity). A kind without an
# ARITY entry takes one input; every op has one output unless it is in MULTI_OUTPUT.
CONVERTERS: dict[str, Callable[[RawOp, dict[str, Tensor]], list[Op]]] = {}
ARITY: dict[str, tuple[int, int, tuple[int, ...]]] = {}
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
