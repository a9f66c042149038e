"""Shape rules: the output shape each canonical operator gives its inputs, checked against the graph.

A graph whose tensors disagree with their operators (an elementwise output with another shape than its
input, a convolution whose output does not follow the window arithmetic) would make a kernel read or
write past its tensors; `check_shapes` refuses it with a ModelError naming the operator.
"""
from __future__ import annotations

from typing import Callable

from ..errors import ModelError
from .graph import Graph, Op

Shape = tuple[int, ...]


def window_out(size: int, pad_before: int, pad_after: int, kernel: int, stride: int, dilation: int) -> int:
    """Output length of a sliding window over `size` elements padded by the given amounts."""
    return (size + pad_before + pad_after - ((kernel - 1) * dilation + 1)) // stride + 1


def _fail(where: str, what: str) -> ModelError:
    return ModelError(f"{where}: {what}")


def expect_rank(where: str, shape: Shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        raise _fail(where, f"the {what} has shape {list(shape)}; rank {rank} expected")


def windowed(op: Op, graph: Graph, where: str, kernel: tuple[int, int], channels: int) -> None:
    """A windowed op's rule (convolutions, pools): NHWC in and out, the output size the window arithmetic
    gives, `channels` out."""
    x, y = graph[op.inputs[0]].shape, graph[op.outputs[0]].shape
    expect_rank(where, x, 4, "input")
    expect_rank(where, y, 4, "output")
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


def expect_bias(op: Op, graph: Graph, where: str, channels: int) -> None:
    if len(op.inputs) > 2 and op.inputs[2] and graph[op.inputs[2]].size != channels:
        raise _fail(where, f"bias of shape {list(graph[op.inputs[2]].shape)} for {channels} output channels")


MAX_SUMMED = (1 << 31) // 256  # an int32 sum of this many int8 values (each |x - zp| <= 255) cannot overflow


def check_summed(where: str, count: int) -> None:
    if count > MAX_SUMMED:
        raise _fail(where, f"sums {count:,} values, more than an int32 sum of int8 values can hold ({MAX_SUMMED:,})")


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


# kind -> its rule; filled by mcuforge.operators.install() (Operator.check)
RULES: dict[str, Callable[[Op, Graph, str], None]] = {}


def check_shapes(op: Op, graph: Graph, where: str) -> None:
    """Raises ModelError unless op's output shape follows from its inputs (ops without a rule pass)."""
    rule = RULES.get(op.kind)
    if rule is not None:
        rule(op, graph, where)
