"""Facts about one operator that reports and cost models need: MACs and parameter counts."""
from __future__ import annotations

from typing import Callable

from ..ir import Graph, Op


MACS: dict[str, Callable[[Op, Graph], int]] = {}  # the registered operators' rules (mcuforge.operators)


def macs(op: Op, graph: Graph) -> int:
    """Multiply-accumulates of one op (0 for ops without a weight product)."""
    if op.kind in MACS:
        return MACS[op.kind](op, graph)
    out = graph[op.outputs[0]]
    if op.kind in ("CONV_2D", "CONV_1X1_ACC"):
        w = graph[op.inputs[1]]  # [O, KH, KW, I]
        return out.size * w.shape[1] * w.shape[2] * w.shape[3]
    if op.kind == "DEPTHWISE_CONV_2D":
        w = graph[op.inputs[1]]  # [1, KH, KW, C]
        return out.size * w.shape[1] * w.shape[2]
    if op.kind == "FULLY_CONNECTED":
        w = graph[op.inputs[1]]  # [O, I]
        return out.size * w.shape[1]
    return 0


def params(op: Op, graph: Graph) -> int:
    """Number of constant values (weights and biases) the op reads."""
    return sum(graph[n].size for n in op.inputs if n and graph[n].is_const)


def param_bytes(op: Op, graph: Graph) -> int:
    return sum(graph[n].nbytes for n in op.inputs if n and graph[n].is_const)


def total_macs(graph: Graph) -> int:
    return sum(macs(op, graph) for op in graph.ops)
