"""Kernel scratch: bytes an op's kernel needs for itself while it runs (and only then).

This is the one place that knows which kernels need scratch; the planner packs each op's scratch into the
arena as a tensor that lives for that op alone, so it fills a gap instead of adding a region.
"""
from __future__ import annotations

from ...ir import DTYPE_BYTES, Graph, Op


def scratch_bytes(op: Op, graph: Graph, inplace: bool) -> int:
    """Scratch bytes of `op`'s kernel; `inplace` says whether its output is placed over its input."""
    if op.kind == "DEPTHWISE_CONV_2D" and inplace:
        # The in-place kernel computes one output channel (all N*H*W positions) into a temporary, then
        # writes it into the channel's interleaved positions, which only held that input channel.
        out = graph.tensors[op.outputs[0]]
        channels = out.shape[-1] if out.shape else 1
        return (out.size // max(channels, 1)) * DTYPE_BYTES[out.dtype]
    return 0
