"""Facts about one operator that reports and cost models need: MACs and parameter counts."""
from __future__ import annotations

from typing import Callable

from ..ir import Graph, Op

MACS: dict[str, Callable[[Op, Graph], int]] = {}  # the registered operators' rules (mcuforge.operators)


def macs(op: Op, graph: Graph) -> int:
    """Multiply-accumulates of one op (0 for ops without a weight product)."""
    rule = MACS.get(op.kind)
    return rule(op, graph) if rule is not None else 0


def params(op: Op, graph: Graph) -> int:
    """Number of constant values (weights and biases) the op reads."""
    return sum(graph[n].size for n in op.inputs if n and graph[n].is_const)


def param_bytes(op: Op, graph: Graph) -> int:
    return sum(graph[n].nbytes for n in op.inputs if n and graph[n].is_const)


def total_macs(graph: Graph) -> int:
    return sum(macs(op, graph) for op in graph.ops)
