"""Execution strategies: graph-to-graph rewrites that lower peak SRAM, and the choice among them.

    chosen = schedule(graph, "auto", max_extra_macs=0.15)   # Schedule: graph to run, its plan, strategy
"""
from .choose import MAX_EXTRA_MACS, STRATEGIES, Schedule, layer_profiles, live_set_bound, schedule
from .patch import PatchStage, extra_macs_ratio, split, stage_chains

__all__ = ["MAX_EXTRA_MACS", "STRATEGIES", "PatchStage", "Schedule", "extra_macs_ratio", "layer_profiles",
           "live_set_bound",
           "schedule", "split", "stage_chains"]
