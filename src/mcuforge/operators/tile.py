"""TILE of an int8 activation by constant multiples, lowered by the reader: along each axis repeated m > 1
times, a CONCATENATION of m copies of the tensor so far (the same input m times). TFLM copies the bytes,
so input and output share one quantization.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..frontends.tflite_ops import where
from ..ir.graph import Op, Tensor
from .base import Operator
from .lowering import fresh, same_bytes

MAX_COPIES = 256  # the inputs of one CONCATENATION


def read_tile(raw, tensors: dict[str, Tensor]) -> list[Op]:
    x = same_bytes(raw, tensors, (raw.inputs[0], raw.outputs[0]))
    m = tensors[raw.inputs[1]]
    if m.data is None or m.dtype not in ("int32", "int64"):
        raise ModelError(f"{where(raw)}: multiples computed while the model runs are not supported")
    multiples = [int(v) for v in np.asarray(m.data).reshape(-1)]
    if len(multiples) != len(x.shape) or min(multiples, default=1) < 1 or max(multiples, default=1) > MAX_COPIES:
        raise ModelError(f"{where(raw)}: multiples {multiples[:8]} must be one value in 1..{MAX_COPIES} per axis "
                         f"of {list(x.shape)}")
    y = tensors[raw.outputs[0]]
    if y.shape != tuple(d * k for d, k in zip(x.shape, multiples)):
        raise ModelError(f"{where(raw)}: output {list(y.shape)} is not {list(x.shape)} tiled {multiples}")
    axes = [a for a, k in enumerate(multiples) if k > 1]
    if not axes:
        return [Op("RESHAPE", raw.inputs[:1], raw.outputs, name=raw.outputs[0])]
    ops, current, shape = [], x.name, list(x.shape)
    for a in axes:
        shape[a] *= multiples[a]
        target = raw.outputs[0] if a == axes[-1] else fresh(tensors, f"{raw.outputs[0]}/tile_{a}")
        if target != raw.outputs[0]:
            tensors[target] = Tensor(target, tuple(shape), "int8", x.quant)
        ops.append(Op("CONCATENATION", (current,) * multiples[a], (target,), {"axis": a, "activation": "NONE"},
                      name=raw.outputs[0]))
        current = target
    return ops


def write_tile(low, op: Op) -> None:
    multiples = low.const_i32(f"{op.name}/multiples", list(op.attrs["multiples"]))
    low.emit("TILE", [low.tensor(op.inputs[0]), multiples], [low.tensor(op.outputs[0])])


OPERATOR = Operator("TILE", read_tile, (2, 2, ()), write_tile, version=2)
