"""Which plan the auto strategy compiles: the smallest peak SRAM, or the fastest plan that fits a budget.

    choice = choose_plan(graph, sram=320 * 1024)        # objective "latency" when a budget is given
    choice.schedule, choice.reason                       # the Schedule, and why it was taken (in words)

Objective "memory" (the default without an SRAM budget): engine.schedule's auto choice, the lowest arena.
Objective "latency" (the default with one): among the plans the engine can run the model with (layer by
layer, fused blocks, the patch stage, and auto's own choice), those whose arena fits the budget, the one
with the fewest predicted instructions on the core (nas.latency: per-layer instruction counts fitted on our
QEMU plugin's counts of our kernels). When nothing fits, the smallest arena (the budget check then says by
how much it is over).
"""
from __future__ import annotations

from dataclasses import dataclass

from .engine.schedule import MAX_EXTRA_MACS, Schedule, schedule, schedules
from .choices import OBJECTIVES
from .errors import UsageError
from .ir import Graph

CANDIDATES = ("layer", "fused", "patch")  # besides auto's choice


@dataclass(frozen=True)
class PlanChoice:
    schedule: Schedule
    objective: str  # "memory" or "latency"
    reason: str  # why this plan, in words
    predicted: tuple[tuple[str, int, int], ...] = ()  # (strategy, arena bytes, predicted instructions) per plan

    def as_json(self) -> dict:
        return {"objective": self.objective, "reason": self.reason,
                "plans": [{"strategy": s, "arena_bytes": a, "predicted_instructions": n}
                          for s, a, n in self.predicted]}


def predicted_instructions(chosen: Schedule, core: str) -> int:
    """Instructions the model's C code runs on `core` under this schedule (nas.latency's model)."""
    from .nas.latency import predict_instructions
    from .nas.layers import layers_of

    return predict_instructions(layers_of(chosen.graph, chosen.plan), core)


def choose_plan(graph: Graph, *, sram: int | None = None, objective: str | None = None, core: str = "cortex-m7",
                max_extra_macs: float = MAX_EXTRA_MACS) -> PlanChoice:
    """The auto strategy's plan for `graph` under `objective` (None: "latency" when `sram` is given, else
    "memory"); see the module docstring."""
    if objective is None:
        objective = "latency" if sram is not None else "memory"
    if objective not in OBJECTIVES:
        raise UsageError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    if objective == "memory":
        return PlanChoice(schedule(graph, "auto", max_extra_macs), objective,
                          "the smallest peak SRAM (objective memory)")
    if sram is None:
        raise UsageError("objective latency needs an SRAM budget (--sram or --board): the fastest plan is the "
                         "one that fits it")
    every = schedules(graph, ("auto", *CANDIDATES), max_extra_macs, skip_missing=True)
    smallest = every["auto"]
    plans: dict[str, Schedule] = {}
    for name in ("auto", *CANDIDATES):  # auto's own choice first: a strategy's plan once
        if name in every:
            plans.setdefault(every[name].strategy, every[name])
    counts = {name: predicted_instructions(s, core) for name, s in plans.items()}
    predicted = tuple((name, s.plan.arena_bytes, counts[name]) for name, s in plans.items())
    fits = [name for name, s in plans.items() if s.plan.sram_bytes <= sram]  # the state counts too
    if not fits:
        return PlanChoice(smallest, objective, f"nothing fits {sram:,} B: the smallest peak SRAM", predicted)
    best = min(fits, key=lambda name: (counts[name], plans[name].plan.arena_bytes))
    others = ", ".join(f"{name} {counts[name]:,}"
                       + ("" if name in fits else f" (needs {plans[name].plan.arena_bytes:,} B)")
                       for name in plans if name != best)
    reason = (f"the fewest predicted {core} instructions ({counts[best]:,}) of the plans that fit {sram:,} B"
              + (f"; others: {others}" if others else ""))
    return PlanChoice(plans[best], objective, reason, predicted)
