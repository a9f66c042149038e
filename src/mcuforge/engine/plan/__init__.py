"""Static memory planning: one arena for all activations and kernel scratch.

    plan = plan_memory(graph)          # MemoryPlan: arena size, offsets, scratch, in-place ops
    check_plan(graph, plan)            # PlanError unless no two live buffers overlap

Passes, one module each: lifetimes (when a tensor is live) -> inplace (which tensors share bytes:
aliases and in-place outputs) -> blocks (buffers and scratch with per-step footprints) -> packing (offsets).
Before planning, reorder picks the execution order of a branchy graph with the lowest peak.
"""
from .check import check_plan
from .errors import PlanError
from .lifetimes import Lifetime, activation_lifetimes
from .memory_plan import MemoryPlan
from .planner import plan_memory
from .reorder import Reordering, reorder_for_memory
from .scratch import scratch_bytes

__all__ = ["MemoryPlan", "PlanError", "Reordering", "check_plan", "plan_memory", "reorder_for_memory",
           "scratch_bytes", "Lifetime", "activation_lifetimes"]
