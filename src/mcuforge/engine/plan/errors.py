"""The planner's own error type."""
from __future__ import annotations

from ...errors import McuforgeError


class PlanError(McuforgeError):
    """A memory plan is invalid (overlapping live tensors, out of the arena, misaligned), or the graph's
    schedule cannot be planned (a tensor read before it is written)."""
