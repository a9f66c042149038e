"""A network as the list of layers the engine runs, described by shapes and the engine's kernel choices.

The latency and code-size models (nas.latency, nas.codesize) predict from these records. They come from two
places that must agree (tests/test_nas_layers.py holds them to it):
- `layers_of(graph, plan)`: a compiled model, with the kernel variant the planner chose for each layer;
- `nas.cost.layers(spec)`: a NetworkSpec, from shapes alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..engine.opinfo import macs
from ..engine.plan import MemoryPlan
from ..engine.plan.scratch import kernel_scratch
from ..ir import Graph, Op

Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class Layer:
    kind: str  # the IR operator: CONV_2D, DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D, RESHAPE, ...
    in_shape: Shape3  # (H, W, C) of the data input (lower ranks: leading dimensions of 1)
    out_shape: Shape3
    kernel: tuple[int, int] = (1, 1)  # the window (convolutions and pools)
    stride: tuple[int, int] = (1, 1)
    activation: str = "NONE"
    variant: str = ""  # the kernel scratch variant (operators.variants.Variant, its value)
    plane: bool = False  # a depthwise "rows" variant that also holds a plane
    inplace: bool = False  # the output lies over the input
    macs: int = 0


def _hwc(shape: tuple[int, ...]) -> Shape3:
    """(H, W, C) of an NHWC shape; other ranks fold their leading dimensions into H."""
    if len(shape) == 4:
        return shape[1], shape[2], shape[3]
    if not shape:
        return 1, 1, 1
    return 1, math.prod(shape[:-1]), shape[-1]


def layer_of(op: Op, graph: Graph, inplace: bool) -> Layer:
    x = next((n for n in op.inputs if n and not graph[n].is_const), op.inputs[0])
    kernel: tuple[int, int] = (1, 1)
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = graph[op.inputs[1]].shape
        kernel = (w[1], w[2])
    elif "filter" in op.attrs:
        kernel = tuple(op.attrs["filter"])  # type: ignore[assignment]
    scratch = kernel_scratch(op, graph, inplace)
    return Layer(op.kind, _hwc(graph[x].shape), _hwc(graph[op.outputs[0]].shape), kernel,
                 tuple(op.attrs.get("stride", (1, 1))), str(op.attrs.get("activation", "NONE")),  # type: ignore[arg-type]
                 scratch.variant.value, scratch.plane, inplace, macs(op, graph))


def layers_of(graph: Graph, plan: MemoryPlan) -> list[Layer]:
    """The layers of a planned graph, in execution order."""
    return [layer_of(op, graph, i in plan.inplace_ops) for i, op in enumerate(graph.ops)]
