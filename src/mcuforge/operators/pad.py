"""PAD and PADV2 on int8: the input placed in an output filled with the `value` attr (the quantized fill
value; TFLM fills with the output zero point unless PADV2 gives one), as TFLM copies raw bytes. The reader
turns both builtins into PAD; the writer writes PADV2 only for a fill other than the zero point.
C: mcu_pad_s8.h, the input's rows placed in the filled output (unpadded dimensions merged into their outer
neighbour, up to 6 dimensions).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import MAX_WINDOW, const_operand, where
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from .base import Operator

# pads: ((before, after), ...) one pair per dimension; value: the quantized fill value
SPEC = OpSpec(("input",), ("pads", "value"))


def check(op: Op, graph: Graph, where_: str) -> None:
    x, y = graph[op.inputs[0]].shape, graph[op.outputs[0]].shape
    pads = op.attrs["pads"]
    if len(pads) != len(x) or min(min(p) for p in pads) < 0 or y != tuple(d + a + b for d, (a, b) in zip(x, pads)):
        raise ModelError(f"{where_}: paddings {list(pads)} do not take {list(x)} to {list(y)}")


def pad_amounts(op: Op, graph: Graph) -> tuple[tuple[int, int], ...]:
    x, y = graph[op.inputs[0]], graph[op.outputs[0]]
    pads = tuple((int(a), int(b)) for a, b in op.attrs["pads"])
    if len(pads) != len(x.shape) or any(a < 0 or b < 0 for a, b in pads):
        raise ModelError(f"{op.kind} {shown(op.name)}: pads {pads} do not fit input {list(x.shape)}")
    if tuple(d + a + b for d, (a, b) in zip(x.shape, pads)) != tuple(y.shape):
        raise ModelError(f"{op.kind} {shown(op.name)}: pads {pads} on {list(x.shape)} do not give {list(y.shape)}")
    return pads


def pad_value(op: Op) -> int:
    value = int(op.attrs.get("value", 0))
    if not -128 <= value <= 127:
        raise ModelError(f"{op.kind} {shown(op.name)}: fill value {value} is not an int8")
    return value


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    return [np.pad(args[0], pad_amounts(op, graph), constant_values=pad_value(op))]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct
    from ..engine.codegen.loops import check_int8

    check_int8(op, ctx)
    pads = pad_amounts(op, ctx.graph)
    value = pad_value(op)
    if ctx.tensor(op.outputs[0]).size == 0:
        return ""
    shape = ctx.tensor(op.inputs[0]).shape
    dims: list[tuple[int, int, int]] = []  # (in, before, after), innermost first
    for size, (before, after) in zip(reversed(shape), reversed(pads)):
        if dims and dims[-1][1] == 0 and dims[-1][2] == 0:
            inner = dims.pop()[0]
            dims.append((size * inner, before * inner, after * inner))
        else:
            dims.append((size, before, after))
    dims.reverse()
    if len(dims) > 6:
        raise ModelError(f"{op.kind} {shown(op.name)}: {len(dims)} padded dimensions; the C kernel has 6")
    dims = [(1, 0, 0)] * (6 - len(dims)) + dims
    ctx.use("mcu_pad_s8.h")
    fields = {"in": [d[0] for d in dims], "before": [d[1] for d in dims], "out": [sum(d) for d in dims]}
    return c_call("mcu_pad_s8", [c_struct("mcu_pad_shape", fields), ctx.ptr(op.inputs[0]), str(value),
                                 ctx.ptr(op.outputs[0])])


def read(raw, tensors: dict) -> list[Op]:
    x, y = tensors[raw.inputs[0]], tensors[raw.outputs[0]]
    pads = const_operand(raw, tensors, 1, "padding list", rank=2)
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


def write(low, op: Op) -> None:
    dst = low.graph[op.outputs[0]]
    pads = low.const_i32(f"{op.name}/pad_amounts", [list(p) for p in op.attrs["pads"]])
    inputs = [low.tensor(op.inputs[0]), pads]
    value = int(op.attrs.get("value", dst.quant.zp if dst.quant else 0))
    if dst.quant is not None and value == dst.quant.zp:
        low.emit("PAD", inputs, [low.tensor(dst.name)], ("PadOptions", {}))
    else:
        inputs.append(low.extra(f"{op.name}/pad_value", (), dst.dtype, dst.quant, np.array(value)))
        low.emit("PADV2", inputs, [low.tensor(dst.name)], ("PadV2Options", {}))


OPERATOR = Operator("PAD", read, (2, 2, ()), write, SPEC, check, reference, emit, version=2,
                    also_reads=(("PADV2", (2, 3, (2,))),))
