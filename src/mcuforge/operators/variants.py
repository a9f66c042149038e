"""A kernel's scratch variants, as an operator declares them (Operator.variants) and the planner records its
choice (engine.plan.scratch chooses, MemoryPlan.kernels keeps it). Here, not in the planner, because the
operators' modules describe their kernels with them."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterator

from ..ir.graph import Graph, Op


class Variant(str, Enum):
    """A kernel's scratch variant, decided by the planner and recorded in the plan (MemoryPlan.kernels)."""

    PLAIN = ""  # no scratch (or an operator's fixed scratch)
    CHANNELS = "channels"  # in-place depthwise, one channel at a time
    ROWS = "rows"  # depthwise by output rows (in place: a ring), with the DSP plane when `plane`
    PLANE = "plane"  # depthwise with weights in a format: the plane kernel on every build (`plane` too)
    IM2COL4 = "im2col4"  # im2col convolution, four windows at a time
    IM2COL = "im2col"  # im2col convolution, a column of two windows
    COLUMN = "column"  # pointwise convolution's int16 column of four pixels


@dataclass(frozen=True)
class KernelScratch:
    variant: Variant
    nbytes: int
    ring_rows: int = 0  # rows: the in-place ring (0: not in place)
    plane: bool = False  # rows: the scratch also holds a depthwise plane (mcu_dwconv_s8_plane)


NO_SCRATCH = KernelScratch(Variant.PLAIN, 0)
# (op, graph, in place) -> its kernel's scratch variants: the smallest first, then the faster ones that need
# more, fastest first (a generator: the planner often needs only the first)
Variants = Callable[[Op, Graph, bool], Iterator[KernelScratch]]
