"""Graph passes every frontend runs: fold PAD into convolutions, and validate the int8 contract."""
from __future__ import annotations

import numpy as np

from ..errors import ModelError, shown
from .graph import Graph, Op
from .ops import QUANTIZE_TYPES, SPECS
from .shapes import check_shapes

_WINDOWED = ("CONV_2D", "DEPTHWISE_CONV_2D")
_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_FIX = "re-convert it with full-integer int8 quantization (float32 only at model inputs/outputs)"


def fold_pads(graph: Graph) -> Graph:
    """A PAD on H and W that fills with the zero point and feeds only one convolution becomes that
    convolution's explicit padding (padded values contribute (zp - zp) * w = 0 either way)."""
    ops = list(graph.ops)
    drop: set[int] = set()
    for i, op in enumerate(ops):
        if op.kind != "PAD" or op.outputs[0] in graph.outputs:
            continue
        src, dst = graph[op.inputs[0]], graph[op.outputs[0]]
        pads = op.attrs["pads"]
        users = graph.consumers(op.outputs[0])
        if (len(pads) != 4 or pads[0] != (0, 0) or pads[3] != (0, 0) or len(users) != 1
                or dst.quant is None or src.quant is None or op.attrs["value"] != dst.quant.zp
                or src.quant.zp != dst.quant.zp or src.quant.s != dst.quant.s):
            continue
        j = users[0]
        user = ops[j]
        if user.kind not in _WINDOWED or user.inputs[0] != op.outputs[0] or op.outputs[0] in user.inputs[1:]:
            continue
        t, b, lft, r = user.attrs["pad"]
        attrs = dict(user.attrs, pad=(t + pads[1][0], b + pads[1][1], lft + pads[2][0], r + pads[2][1]))
        ops[j] = user.with_(inputs=(op.inputs[0], *user.inputs[1:]), attrs=attrs)
        drop.add(i)
    if not drop:
        return graph
    return graph.with_ops(op for i, op in enumerate(ops) if i not in drop)


def validate(graph: Graph, allow_float: bool = False) -> None:
    """Refuse graphs the engine cannot run bit-exactly: a broken structure (a tensor written twice, an
    input written or an output constant, ops out of order), shapes that do not follow from the operators
    (ir.shapes), non-int8 activations, missing or inconsistent quantization. Float32 is accepted only as a
    graph input fed to QUANTIZE and a graph output written by DEQUANTIZE; uint8, int16 and int32 only at the
    edges `_edge` names.

    With `allow_float`, an all-float graph (every tensor float32 without quantization: what the torch
    frontend captures, before quantization) passes the structural checks too; graphs with any int8 or
    quantized tensor are held to the int8 contract as before."""
    from ..operators import install

    install()
    float_graph = allow_float and _is_float_graph(graph)
    check_structure(graph)
    ready = set(graph.inputs) | {n for n, t in graph.tensors.items() if t.is_const or t.variable}
    for i, op in enumerate(graph.ops):
        where = f"operator #{i} {op.kind} (output {shown(op.outputs[0], 32) if op.outputs else '?'})"
        if op.kind not in SPECS:
            raise ModelError(f"{where}: not a canonical operator")
        for n in op.inputs:
            if n and n not in ready:
                raise ModelError(f"{where}: input {shown(n)} is used before any operator writes it")
        if SPECS[op.kind].typed:  # a registry operator's own rule says what is wrong first
            check_shapes(op, graph, where)
            _check_constant_operands(graph, op, where)
        else:
            _check_constant_operands(graph, op, where)
            check_shapes(op, graph, where)
            if float_graph:
                _check_float_operands(graph, op, where)
            else:
                _check_types(graph, op, where)
        ready.update(op.outputs)
    for n in graph.outputs:
        if n not in ready:
            raise ModelError(f"model output {shown(n)} is never written")


def check_structure(graph: Graph) -> None:
    """One writer per tensor; inputs are activations nobody writes; outputs are computed; no empty tensors."""
    for n in (*graph.inputs, *graph.outputs, *(m for op in graph.ops for m in (*op.inputs, *op.outputs) if m)):
        if n not in graph.tensors:
            raise ModelError(f"tensor {shown(n)} is used but not defined")
    for what, names in (("input", graph.inputs), ("output", graph.outputs)):
        if len(set(names)) != len(names):
            raise ModelError(f"model {what} {shown(next(n for n in names if names.count(n) > 1))} is listed twice")
        for n in names:
            if graph[n].is_const:
                raise ModelError(f"model {what} {shown(n)} is a constant tensor; a model's {what}s are activations")
    writers: dict[str, int] = {}
    for i, op in enumerate(graph.ops):
        where = f"operator #{i} {op.kind}"
        for n in op.outputs:
            if n in writers:
                raise ModelError(f"{where}: tensor {shown(n)} is already written by operator #{writers[n]}; "
                                 "each tensor must have one writer")
            if graph[n].is_const:
                raise ModelError(f"{where}: writes the constant tensor {shown(n)}")
            if n in graph.inputs:
                raise ModelError(f"{where}: writes the model input {shown(n)}")
            writers[n] = i
        for n in (*op.inputs, *op.outputs):
            t = graph.tensors.get(n) if n else None
            if t is not None and t.size == 0:
                raise ModelError(f"{where}: tensor {shown(n)} of shape {list(t.shape)} has no elements")
            if t is not None and t.quant is not None and t.quant.scale.size > 1 and not t.is_const:
                raise ModelError(f"{where}: activation {shown(n)} has per-channel quantization; "
                                 "only constant weights can")
    for n in graph.outputs:
        if n in graph.inputs:
            raise ModelError(f"model output {shown(n)} is also a model input; nothing computes it")
    _check_states(graph, writers)


def _check_states(graph: Graph, writers: dict[str, int]) -> None:
    """A state tensor (Tensor.variable) is read, and updated in place, by exactly one op that keeps state
    at that operand; nothing else writes it and it is no model edge."""
    for n, t in graph.tensors.items():
        if not t.variable:
            continue
        users = graph.consumers(n)
        if not users:
            continue  # an unused tensor: dropped with the ops that used to read it
        op = graph.ops[users[0]]
        where = f"state tensor {shown(n)}"
        if t.is_const or n in graph.inputs or n in graph.outputs or n in writers:
            raise ModelError(f"{where}: a state tensor is no constant, no model input or output and no op's "
                             "output; only the op that keeps it updates it")
        if len(users) > 1:
            raise ModelError(f"{where}: read by operators #{users[0]} and #{users[1]}; one op keeps a state")
        spec = SPECS.get(op.kind)
        if spec is None or op.inputs.index(n) not in spec.states:
            raise ModelError(f"{where}: operator #{users[0]} {op.kind} keeps no state at that operand")


_CONSTANT_OPERANDS = ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM")  # the kernels read constant operands too


def _check_constant_operands(graph: Graph, op: Op, where: str) -> None:
    """Data operands are activations, except a binary elementwise op's, which may be int8 constants."""
    weights = SPECS[op.kind].weights
    data = op.inputs[:1] if op.kind in _WEIGHTED else [n for i, n in enumerate(op.inputs) if i not in weights]
    for n in data:
        t = graph[n] if n else None
        if t is None or not t.is_const:
            continue
        if op.kind not in _CONSTANT_OPERANDS:
            raise ModelError(f"{where}: its input {shown(n)} is a constant; the engine runs this operator on "
                             "activations only")
        if t.dtype != graph[op.outputs[0]].dtype or (t.dtype == "int8" and t.quant is None):
            raise ModelError(f"{where}: constant operand {shown(n)} is {t.dtype}"
                             f"{'' if t.quant else ' without quantization'}; {graph[op.outputs[0]].dtype} expected")


def _is_float_graph(graph: Graph) -> bool:
    return all(t.dtype == "float32" and t.quant is None for t in graph.tensors.values())


def _check_float_operands(graph: Graph, op: Op, where: str) -> None:
    if op.kind in _WEIGHTED:
        for n in op.inputs[1:]:
            if n and not graph[n].is_const:
                raise ModelError(f"{where}: weights and bias must be constant tensors, {shown(n)} is not")


def _edge(graph: Graph, op: Op, n: str) -> bool:
    """Whether a quantized uint8, int16 or int32 tensor is one the engine runs: a model input QUANTIZE
    reads, a model output QUANTIZE writes (the STM32 model zoo's uint8 images, TFLM's int16 audio and int32
    scores), or SOFTMAX's int16 output that only QUANTIZE reads. Anywhere else uint8 is legacy asymmetric
    quantization and int16 is 16x8 quantization."""
    t = graph[n]
    if t.quant is None or t.dtype not in ("uint8", "int16", "int32"):
        return False
    if op.kind == "SOFTMAX":
        return n == op.outputs[0] and t.dtype == "int16" and all(
            graph.ops[i].kind == "QUANTIZE" for i in graph.consumers(n)) and n not in graph.outputs
    if op.kind != "QUANTIZE" or (graph[op.inputs[0]].dtype, graph[op.outputs[0]].dtype) not in QUANTIZE_TYPES:
        return False
    if n == op.outputs[0]:
        return n in graph.outputs
    writer = graph.producer(n)
    return n in graph.inputs or (writer is not None and graph.ops[writer].kind == "SOFTMAX")


def _float_consumer(graph: Graph, op: Op) -> None:
    """A DEQUANTIZE inside the model: refused naming the float operator after it (the tensor between the two
    is usually an auto-generated name that says nothing)."""
    out = op.outputs[0]
    users = graph.consumers(out)
    if op.kind != "DEQUANTIZE" or out in graph.outputs or not users:
        return
    k = users[0]
    user = graph.ops[k]
    raise ModelError(f"operator #{k} {user.kind} (output {shown(user.outputs[0], 32)}) runs in float32 on a "
                     "DEQUANTIZE's output; the engine runs int8 operators (float32 only at the model's edges): "
                     f"re-convert the model with {user.kind} quantized to int8")


def _check_types(graph: Graph, op: Op, where: str) -> None:
    _float_consumer(graph, op)
    acts = [n for n in (*op.inputs, *op.outputs) if n and not graph[n].is_const]
    weights = [n for n in op.inputs[1:] if n and graph[n].is_const]
    for n in acts:
        t = graph[n]
        if t.dtype == "int8":
            if t.quant is None:
                raise ModelError(f"{where}: int8 tensor {shown(n)} has no quantization parameters")
            continue
        float_edge = t.dtype == "float32" and (
            (op.kind == "QUANTIZE" and n == op.inputs[0] and n in graph.inputs)
            or (op.kind == "DEQUANTIZE" and n == op.outputs[0] and n in graph.outputs))
        if float_edge:
            continue
        if _edge(graph, op, n):
            continue
        if t.dtype in ("float32", "float16") and any(graph[w].dtype == "int8" for w in weights):
            raise ModelError(f"{where}: {t.dtype} activation {shown(n)} with int8 weights (hybrid quantization); "
                             f"{_FIX}")
        if t.dtype in ("float32", "float16"):
            raise ModelError(f"{where}: {t.dtype} activation {shown(n)}: the model is not int8-quantized; {_FIX}")
        if t.dtype == "int16":
            raise ModelError(f"{where}: int16 activation {shown(n)} (16x8 quantization) is not supported; "
                             "quantize activations to int8")
        if t.dtype == "uint8":
            raise ModelError(f"{where}: uint8 tensor {shown(n)} (legacy asymmetric quantization) is not supported; "
                             "re-convert the model with int8 quantization")
        raise ModelError(f"{where}: {t.dtype} tensor {shown(n)} is not supported (int8 activations only)")
    out = graph[op.outputs[0]]
    if op.kind == "DEQUANTIZE" and out.dtype != "float32" or op.kind == "QUANTIZE" and out.dtype == "float32":
        raise ModelError(f"{where}: writes {out.dtype}; {op.kind} gives {'float32' if op.kind == 'DEQUANTIZE' else 'int8'}")
    if op.kind in _WEIGHTED:
        w = graph[op.inputs[1]]
        if not w.is_const:
            raise ModelError(f"{where}: weights {shown(w.name)} are not constant; the engine needs constant weights")
        if w.dtype != "int8" or w.quant is None:
            raise ModelError(f"{where}: weights {shown(w.name)} are {w.dtype}"
                             f"{'' if w.quant else ' without quantization'}; int8 weights expected")
        channel_axis = 3 if op.kind == "DEPTHWISE_CONV_2D" else 0  # the output channels (units)
        if w.quant.scale.size != 1 and (w.quant.axis != channel_axis or w.quant.scale.size != w.shape[channel_axis]):
            raise ModelError(f"{where}: weights {shown(w.name)} have {w.quant.scale.size} scales on dimension "
                             f"{w.quant.axis} of {list(w.shape)}; per-channel scales must match the output "
                             f"channels (dimension {channel_axis})")
        if len(op.inputs) > 2 and op.inputs[2]:
            b = graph[op.inputs[2]]
            if b.dtype != "int32" or not b.is_const:
                raise ModelError(f"{where}: bias {shown(b.name)} must be a constant int32 tensor, got {b.dtype}")
        _check_accumulator(graph, op, where)


def _check_accumulator(graph: Graph, op: Op, where: str) -> None:
    """The int32 accumulator of each output channel, bias + sum of (x - x_zp) * (w - w_zp), cannot overflow
    for any input: |x - x_zp| <= 255, so |bias| + 255 * sum |w - w_zp| < 2^31 (no real model comes close;
    a corrupt bias or weights would make the C's int32 sums overflow)."""
    w = graph[op.inputs[1]]
    if w.data is None or w.quant is None:
        return
    axis = 3 if op.kind == "DEPTHWISE_CONV_2D" else 0
    zp = w.quant.zero_point if w.quant.per_channel else w.quant.zero_point[:1]
    shape = [1] * w.data.ndim
    shape[axis] = zp.size
    spread = np.abs(w.data.astype(np.int64) - zp.reshape(shape).astype(np.int64))
    worst = 255 * spread.sum(axis=tuple(a for a in range(w.data.ndim) if a != axis))
    if len(op.inputs) > 2 and op.inputs[2]:
        worst = worst + np.abs(graph[op.inputs[2]].data.astype(np.int64).reshape(-1))
    if np.any(worst >= 1 << 31):
        c = int(np.argmax(worst))
        raise ModelError(f"{where}: output channel {c}'s bias and weights can sum past the int32 accumulator "
                         "(corrupt bias or weights?)")
