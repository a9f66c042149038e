"""GATHER of an int8 activation at constant indices, lowered by the reader.

Output = params.shape[:axis] + indices.shape + params.shape[axis+1:], the slices of `params` at the
indices along `axis`: one STRIDED_SLICE per index, joined by a CONCATENATION and reshaped to the output
(a single index needs the slice alone). Indices that the model computes while it runs are refused, as are
batch dimensions. TFLM copies the bytes, so params and output share one quantization.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..frontends.tflite_ops import options_of, where
from ..ir.graph import Op, Tensor
from .base import Operator
from .lowering import axis_of, axis_slice, fresh, same_bytes

MAX_INDICES = 1024  # one slice op per index: more is not a lookup a microcontroller model would lower


def read_gather(raw, tensors: dict[str, Tensor]) -> list[Op]:
    opt = options_of(raw, "GatherOptions")
    x = same_bytes(raw, tensors, (raw.inputs[0], raw.outputs[0]))
    indices = tensors[raw.inputs[1]]
    if indices.data is None or indices.dtype not in ("int32", "int64"):
        raise ModelError(f"{where(raw)}: indices computed while the model runs are not supported (constant "
                         "integer indices only)")
    if opt is not None and opt.BatchDims():
        raise ModelError(f"{where(raw)}: GATHER with batch dimensions is not supported")
    axis = axis_of(raw, opt.Axis() if opt else 0, len(x.shape))
    flat = [int(i) for i in np.asarray(indices.data).reshape(-1)]
    if not flat or len(flat) > MAX_INDICES or min(flat) < 0 or max(flat) >= x.shape[axis]:
        raise ModelError(f"{where(raw)}: indices {flat[:8]} must be 1 to {MAX_INDICES} values in [0, "
                         f"{x.shape[axis]})")
    y = tensors[raw.outputs[0]]
    expect = (*x.shape[:axis], *indices.shape, *x.shape[axis + 1:])
    if y.shape != expect:
        raise ModelError(f"{where(raw)}: output {list(y.shape)}; {list(expect)} expected")
    if len(flat) == 1:
        return [axis_slice(raw, x, axis, flat[0], flat[0] + 1, raw.outputs[0])]
    piece = (*x.shape[:axis], 1, *x.shape[axis + 1:])
    ops, pieces = [], []
    for k, index in enumerate(flat):
        name = fresh(tensors, f"{raw.outputs[0]}/gather_{k}")
        tensors[name] = Tensor(name, piece, "int8", x.quant)
        ops.append(axis_slice(raw, x, axis, index, index + 1, name))
        pieces.append(name)
    joined = (*x.shape[:axis], len(flat), *x.shape[axis + 1:])
    target = raw.outputs[0]
    if joined != y.shape:
        target = fresh(tensors, f"{raw.outputs[0]}/gathered")
        tensors[target] = Tensor(target, joined, "int8", x.quant)
    ops.append(Op("CONCATENATION", tuple(pieces), (target,), {"axis": axis, "activation": "NONE"},
                  name=raw.outputs[0]))
    if target != raw.outputs[0]:
        ops.append(Op("RESHAPE", (target,), raw.outputs, name=raw.outputs[0]))
    return ops


def write_gather(low, op: Op) -> None:
    low.emit("GATHER", [low.tensor(n) for n in op.inputs], [low.tensor(op.outputs[0])],
             ("GatherOptions", {"Axis": int(op.attrs["axis"]), "BatchDims": 0}))


OPERATOR = Operator("GATHER", read_gather, (2, 2, ()), write_gather, version=2)
