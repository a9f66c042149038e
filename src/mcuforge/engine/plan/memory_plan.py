"""The result of planning: where every activation and scratch buffer lives in the one static arena."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class MemoryPlan:
    arena_bytes: int  # size of the single static arena (all activations + scratch)
    lower_bound: int  # largest live set (aligned bytes) at any step of the schedule; arena_bytes >= it
    offsets: Mapping[str, int]  # every activation tensor (incl. graph inputs/outputs, aliases) -> offset
    scratch: Mapping[int, tuple[int, int]]  # op index -> (offset, nbytes) of that op's kernel scratch
    inplace_ops: frozenset[int]  # ops whose output lies over an input (same offset)
    live_bytes: tuple[int, ...]  # per op index: bytes live while that op runs (tensors + its scratch)
    peak_step: int  # op index whose live set is largest (it sets the lower bound)
    align: int = 4  # every offset is a multiple of it
    packing: str = ""  # how the offsets were found: a greedy order and fit, "local search" or "exact"
    optimal: bool = False  # no packing of this schedule's buffers is smaller: the arena is at the lower
    # bound, or the exact method proved it (it may then lie above the lower bound)
    # State tensors (SVDF, LSTM) live in a buffer of their own, kept between invocations: offsets in it
    state_offsets: Mapping[str, int] = field(default_factory=dict)
    state_bytes: int = 0
    # op index -> its kernel (plan.kernels.KernelChoice), for the ops with scratch variants: the code generator
    # prints what the plan chose
    kernels: Mapping[int, Any] = field(default_factory=dict)

    @property
    def sram_bytes(self) -> int:
        """Peak SRAM the model's data takes: the arena plus the persistent state."""
        return self.arena_bytes + self.state_bytes

    @property
    def overhead(self) -> float:
        """How far the arena is above the lower bound (0.0 = optimal packing for this schedule)."""
        return self.arena_bytes / self.lower_bound - 1.0 if self.lower_bound else 0.0

    def summary(self) -> str:
        return (f"arena {self.arena_bytes} B{' (optimal)' if self.optimal else ''}, lower bound "
                f"{self.lower_bound} B at op {self.peak_step}, {len(self.inplace_ops)} ops in place")
