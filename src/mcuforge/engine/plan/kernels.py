"""Each op's kernel, decided once when the memory is planned and recorded in the plan (MemoryPlan.kernels);
the code generator prints what the plan says.

Per op whose kernel has scratch (Operator.variants or Operator.scratch): the variant plan.scratch chose
(Variant) and whether the planner granted its scratch, and for a pointwise convolution without a column of
its own whether the kernel may put the column over the input pixels it has already read (`column_over_input`): more than 1 % of the pixels would
otherwise run without a column (their outputs reach the column in the output's tail), and no tensor over
the input's bytes that already holds its value at this op (the input itself, an alias of it, a graph
output) is read after it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ...ir import Graph, Op
from ...operators.conv_2d import pointwise
from ...operators.convolution import conv_geometry, folded_bias
from ...operators.variants import KernelScratch, Variant
from .lifetimes import Lifetime, external_tensors
from .scratch import VARIANTS, kernel_scratch


@dataclass(frozen=True)
class KernelChoice:
    scratch: KernelScratch  # the variant and the bytes it needs
    granted: bool  # the plan gave the op that scratch (an arena block of its own)
    column_over_input: bool = False  # pointwise: the column lies over the input pixels already read

    @property
    def variant(self) -> Variant:
        return self.scratch.variant


def choose_kernels(graph: Graph, offsets: Mapping[str, int], lifetimes: Mapping[str, Lifetime],
                   scratch: Mapping[int, tuple[int, int]], inplace_ops: frozenset[int]) -> dict[int, KernelChoice]:
    outside = external_tensors(graph)
    kernels: dict[int, KernelChoice] = {}
    for i, op in enumerate(graph.ops):
        if op.kind not in VARIANTS:
            continue
        choice = kernel_scratch(op, graph, i in inplace_ops)
        granted = i in scratch and scratch[i][1] >= choice.nbytes > 0
        over = (op.kind == "CONV_2D" and not granted
                and _column_over_input(op, i, graph, offsets, lifetimes, outside))
        kernels[i] = KernelChoice(choice, granted, over)
    return kernels


def _column_over_input(op: Op, index: int, graph: Graph, offsets: Mapping[str, int],
                       lifetimes: Mapping[str, Lifetime], outside: frozenset[str]) -> bool:
    g = conv_geometry(op, graph)
    if g.groups != 1 or folded_bias(op, graph) is None or not pointwise(g):
        return False
    name = op.inputs[0]
    pixels = g.batches * g.out_h * g.out_w
    blocked = -(-(8 * g.in_c + 3) // max(g.out_c, 1))  # pixels whose outputs reach a four-pixel column
    if g.in_c % 4 or 100 * blocked <= pixels or name in outside or name not in offsets or offsets[name] % 4:
        return False
    lo = offsets[name]
    hi = lo + graph[name].nbytes
    for t, life in lifetimes.items():
        if t not in offsets or t in outside or not (life.start <= index < life.end):
            continue
        start = offsets[t]
        if start < hi and lo < start + graph[t].nbytes:
            return False
    return True
