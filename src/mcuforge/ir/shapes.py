"""Shape rules: the output shape each canonical operator gives its inputs, checked against the graph.

A graph whose tensors disagree with their operators (an elementwise output with another shape than its
input, a convolution whose output does not follow the window arithmetic) would make a kernel read or
write past its tensors; `check_shapes` refuses it with a ModelError naming the operator.
"""
from __future__ import annotations

import math
from typing import Callable

from ..errors import ModelError
from .graph import Graph, Op
from .ops import SPECS

Shape = tuple[int, ...]


def window_out(size: int, pad_before: int, pad_after: int, kernel: int, stride: int, dilation: int) -> int:
    """Output length of a sliding window over `size` elements padded by the given amounts."""
    return (size + pad_before + pad_after - ((kernel - 1) * dilation + 1)) // stride + 1


def _fail(where: str, what: str) -> ModelError:
    return ModelError(f"{where}: {what}")


def _rank(where: str, shape: Shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        raise _fail(where, f"the {what} has shape {list(shape)}; rank {rank} expected")


def windowed(op: Op, graph: Graph, where: str, kernel: tuple[int, int], channels: int) -> None:
    """A windowed op's rule (convolutions, pools): NHWC in and out, the output size the window arithmetic
    gives, `channels` out."""
    x, y = graph[op.inputs[0]].shape, graph[op.outputs[0]].shape
    _rank(where, x, 4, "input")
    _rank(where, y, 4, "output")
    pad = op.attrs["pad"]
    stride, dilation = op.attrs["stride"], op.attrs.get("dilation", (1, 1))
    if min(pad) < 0 or min(stride) < 1 or min(dilation) < 1 or min(kernel) < 1:
        raise _fail(where, f"invalid window: filter {list(kernel)}, stride {list(stride)}, dilation "
                    f"{list(dilation)}, padding {list(pad)}")
    hw = tuple(window_out(x[1 + i], pad[2 * i], pad[2 * i + 1], kernel[i], stride[i], dilation[i]) for i in (0, 1))
    expect = (x[0], *hw, channels)
    if min(hw) < 1 or y != expect:
        raise _fail(where, f"output shape {list(y)} does not follow from input {list(x)} and the window "
                    f"({list(expect)} expected)")


def _bias(op: Op, graph: Graph, where: str, channels: int) -> None:
    if len(op.inputs) > 2 and op.inputs[2] and graph[op.inputs[2]].size != channels:
        raise _fail(where, f"bias of shape {list(graph[op.inputs[2]].shape)} for {channels} output channels")


def _conv(op: Op, graph: Graph, where: str) -> None:
    w = graph[op.inputs[1]].shape
    _rank(where, w, 4, "filter")
    channels = graph[op.inputs[0]].shape[-1]
    if w[3] < 1 or channels % w[3] or w[0] % (channels // w[3]):  # grouped: input channels = groups * w[3]
        raise _fail(where, f"filter {list(w)} does not match the input's {channels} channels")
    windowed(op, graph, where, (w[1], w[2]), w[0])
    _bias(op, graph, where, w[0])


def _depthwise(op: Op, graph: Graph, where: str) -> None:
    w, x = graph[op.inputs[1]].shape, graph[op.inputs[0]].shape
    _rank(where, w, 4, "filter")
    multiplier = op.attrs["multiplier"]
    if w[0] != 1 or multiplier < 1 or w[3] != x[-1] * multiplier:
        raise _fail(where, f"filter {list(w)} does not fit input {list(x)} with multiplier {multiplier}")
    windowed(op, graph, where, (w[1], w[2]), w[3])
    _bias(op, graph, where, w[3])


def _fully_connected(op: Op, graph: Graph, where: str) -> None:
    x, w, y = graph[op.inputs[0]].shape, graph[op.inputs[1]].shape, graph[op.outputs[0]].shape
    _rank(where, w, 2, "weights")
    if w[1] < 1 or math.prod(x) % w[1] or not y or y[-1] != w[0]:
        raise _fail(where, f"weights {list(w)} do not fit input {list(x)} and output {list(y)}")
    rows = math.prod(x) // w[1]
    if op.attrs.get("keep_num_dims") and (x[-1] != w[1] or y != (*x[:-1], w[0])):
        raise _fail(where, f"output {list(y)} should keep the input's dimensions {list(x[:-1])}")
    if math.prod(y) != rows * w[0]:
        raise _fail(where, f"output {list(y)} should hold {rows} rows of {w[0]}")
    _bias(op, graph, where, w[0])


MAX_SUMMED = (1 << 31) // 256  # an int32 sum of this many int8 values (each |x - zp| <= 255) cannot overflow


def check_summed(where: str, count: int) -> None:
    if count > MAX_SUMMED:
        raise _fail(where, f"sums {count:,} values, more than an int32 sum of int8 values can hold ({MAX_SUMMED:,})")


def _pad(op: Op, graph: Graph, where: str) -> None:
    x, y = graph[op.inputs[0]].shape, graph[op.outputs[0]].shape
    pads = op.attrs["pads"]
    if len(pads) != len(x) or min(min(p) for p in pads) < 0 or y != tuple(d + a + b for d, (a, b) in zip(x, pads)):
        raise _fail(where, f"paddings {list(pads)} do not take {list(x)} to {list(y)}")


def _same_size(op: Op, graph: Graph, where: str) -> None:
    x, y = graph[op.inputs[0]].shape, graph[op.outputs[0]].shape
    if math.prod(x) != math.prod(y):
        raise _fail(where, f"output {list(y)} does not hold the {math.prod(x)} values of input {list(x)}")


def _concat(op: Op, graph: Graph, where: str) -> None:
    y = graph[op.outputs[0]].shape
    axis = op.attrs["axis"]
    shapes = [graph[n].shape for n in op.inputs]
    if not 0 <= axis < len(y) or any(len(s) != len(y) for s in shapes):
        raise _fail(where, f"inputs {[list(s) for s in shapes[:4]]} do not concatenate into {list(y)}")
    rest = [tuple(d for i, d in enumerate(s) if i != axis) for s in (*shapes, y)]
    if len(set(rest)) != 1 or sum(s[axis] for s in shapes) != y[axis]:
        raise _fail(where, f"inputs {[list(s) for s in shapes[:4]]} do not concatenate into {list(y)} on axis {axis}")


def _strided_slice(op: Op, graph: Graph, where: str) -> None:
    x, y = graph[op.inputs[0]].shape, graph[op.outputs[0]].shape
    slices = op.attrs["slices"]
    if len(slices) != len(x):
        raise _fail(where, f"{len(slices)} slices for input {list(x)}")
    counts = [len(range(*slice(*s).indices(d))) for s, d in zip(slices, x)]
    if any(s[0] < 0 for s in slices) or math.prod(counts) != math.prod(y) or not all(counts):
        raise _fail(where, f"the slice {counts} of {list(x)} does not give output {list(y)}")


def elementwise_shape(op: Op, graph: Graph, where: str) -> None:
    """An elementwise op's rule: the output has the broadcast shape of its inputs."""
    shapes = [graph[n].shape for n in op.inputs if n]
    y = graph[op.outputs[0]].shape
    try:
        expect = _broadcast(shapes)
    except ValueError:
        raise _fail(where, f"input shapes {[list(s) for s in shapes]} do not broadcast") from None
    if y != expect:
        raise _fail(where, f"output shape {list(y)} differs from its input's {list(expect)}")


def _broadcast(shapes: list[Shape]) -> Shape:
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0} - {1}
        if len(dims) > 1:
            raise ValueError(shapes)
        out.append(dims.pop() if dims else 1)
    return tuple(out)


RULES: dict[str, Callable[[Op, Graph, str], None]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "FULLY_CONNECTED": _fully_connected,
    "PAD": _pad,
    "RESHAPE": _same_size, "CONCATENATION": _concat, "STRIDED_SLICE": _strided_slice,
    **{kind: elementwise_shape for kind, s in SPECS.items() if s.elementwise and kind != "ACC_REQUANTIZE"},
}


def check_shapes(op: Op, graph: Graph, where: str) -> None:
    """Raises ModelError unless op's output shape follows from its inputs (ops without a rule pass)."""
    rule = RULES.get(op.kind)
    if rule is not None:
        rule(op, graph, where)
