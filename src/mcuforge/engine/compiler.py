"""Graph -> memory plan -> C library: the engine's one entry point."""
from __future__ import annotations

from .codegen import CLibrary, CodeOptions, generate
from .plan import MemoryPlan, check_plan, plan_memory
from ..ir import Graph


def compile_graph(graph: Graph, name: str | None = None, *, inplace: bool = True,
                  plan: MemoryPlan | None = None, options: CodeOptions = CodeOptions()) -> CLibrary:
    """Plans the arena (checked: no two live tensors overlap) and generates the C library; `options`: how
    it fits the firmware (whose arena, linker sections)."""
    if plan is None:
        plan = plan_memory(graph, inplace=inplace)
    check_plan(graph, plan)
    return generate(graph, plan, name or graph.name, options)
