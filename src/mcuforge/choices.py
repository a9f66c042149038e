"""The names a user picks from, shared by the command line and the Python API (standard library only, so the
command line can build its parser before any heavy import): execution strategies and plan objectives."""
from __future__ import annotations

STRATEGIES = ("auto", "layer", "fused", "patch")  # engine.schedule: how the ops run
DEFAULT_STRATEGY = "auto"  # `mcuforge compile`, `validate` and `mcuforge.compile` alike
OBJECTIVES = ("memory", "latency")  # plan_choice: what auto optimises
