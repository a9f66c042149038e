"""PACK and UNPACK on int8 activations, lowered by the reader (constants fold in frontends.tflite_fold).

PACK stacks N tensors of one shape along a new axis: each input gets the axis (a RESHAPE, no copy) and a
CONCATENATION joins them. UNPACK cuts a tensor along an axis into its slices, that axis dropped: one
STRIDED_SLICE per output. TFLM copies the bytes of both, so all tensors share one quantization
(operators.lowering).
"""
from __future__ import annotations

from ..errors import ModelError
from ..frontends.tflite_ops import options_of, where
from ..ir.graph import Op, Tensor
from .base import Operator
from .lowering import axis_of, axis_slice, fresh, same_bytes


def read_pack(raw, tensors: dict[str, Tensor]) -> list[Op]:
    opt = options_of(raw, "PackOptions")
    same_bytes(raw, tensors, (*raw.inputs, *raw.outputs))
    y = tensors[raw.outputs[0]]
    axis = axis_of(raw, opt.Axis() if opt else 0, len(y.shape))
    piece = (*y.shape[:axis], 1, *y.shape[axis + 1:])
    if y.shape[axis] != len(raw.inputs) or any(tensors[n].shape != (*piece[:axis], *piece[axis + 1:])
                                               for n in raw.inputs):
        raise ModelError(f"{where(raw)}: {len(raw.inputs)} inputs do not stack into {list(y.shape)} on axis {axis}")
    if len(raw.inputs) == 1:
        return [Op("RESHAPE", raw.inputs, raw.outputs, name=raw.outputs[0])]
    ops, pieces = [], []
    for i, n in enumerate(raw.inputs):
        name = fresh(tensors, f"{raw.outputs[0]}/pack_{i}")
        tensors[name] = Tensor(name, piece, "int8", tensors[n].quant)
        ops.append(Op("RESHAPE", (n,), (name,), name=raw.outputs[0]))
        pieces.append(name)
    return ops + [Op("CONCATENATION", tuple(pieces), raw.outputs, {"axis": axis, "activation": "NONE"},
                     name=raw.outputs[0])]


def read_unpack(raw, tensors: dict[str, Tensor]) -> list[Op]:
    opt = options_of(raw, "UnpackOptions")
    x = same_bytes(raw, tensors, (*raw.inputs, *raw.outputs))
    axis = axis_of(raw, opt.Axis() if opt else 0, len(x.shape))
    rest = (*x.shape[:axis], *x.shape[axis + 1:])
    if x.shape[axis] != len(raw.outputs) or any(tensors[n].shape != rest for n in raw.outputs):
        raise ModelError(f"{where(raw)}: {list(x.shape)} does not unpack into {len(raw.outputs)} outputs of "
                         f"{list(rest)} on axis {axis}")
    return [axis_slice(raw, x, axis, i, i + 1, n) for i, n in enumerate(raw.outputs)]


def write_pack(low, op: Op) -> None:
    low.emit("PACK", [low.tensor(n) for n in op.inputs], [low.tensor(op.outputs[0])],
             ("PackOptions", {"ValuesCount": len(op.inputs), "Axis": int(op.attrs["axis"])}))


def write_unpack(low, op: Op) -> None:
    low.emit("UNPACK", [low.tensor(op.inputs[0])], [low.tensor(n) for n in op.outputs],
             ("UnpackOptions", {"Num": len(op.outputs), "Axis": int(op.attrs["axis"])}))


OPERATORS = (Operator("PACK", read_pack, (1, 1 << 10, ()), write_pack, version=2),
             Operator("UNPACK", read_unpack, (1, 1, ()), write_unpack, version=2, many_outputs=True))
