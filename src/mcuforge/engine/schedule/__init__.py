"""Execution strategies: graph-to-graph rewrites that lower peak SRAM, and the choice among them.

    chosen = schedule(graph, "auto", max_extra_macs=0.15)   # Schedule: graph to run, its plan, strategy
    every = schedules(graph, ("layer", "auto"))               # several strategies, sharing their work

patch.py runs the first layers patch by patch; fuse.py runs inverted-residual blocks in channel slices;
choose.py picks among them (and reorders branchy graphs first).
"""
from .choose import (MAX_EXTRA_MACS, STRATEGIES, Schedule, choose_fusion, layer_profiles, live_profile,
                     live_set_bound, schedule, schedules)
from .fuse import FusedBlock, fusable_blocks, fuse
from .patch import PatchStage, extra_macs_ratio, split, stage_chains

__all__ = ["MAX_EXTRA_MACS", "STRATEGIES", "FusedBlock", "PatchStage", "Schedule", "choose_fusion",
           "extra_macs_ratio", "fusable_blocks", "fuse", "layer_profiles", "live_profile", "live_set_bound",
           "schedule", "schedules", "split", "stage_chains"]
