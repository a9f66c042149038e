"""`mcuforge inspect --plot`: live memory per layer under each execution strategy, with the budget line
(as MCUNet's per-block peak-memory figure). Needs matplotlib (pip install matplotlib)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from .plotting import PLOT_SUFFIXES, check_plot_path, pyplot, save_figure

LABELS = {"layer": "layer by layer", "fused": "fused inverted-residual blocks", "patch": "patch-based first stage",
          "patch+fused": "patch-based first stage + fused blocks (auto)"}
__all__ = ["LABELS", "PLOT_SUFFIXES", "check_plot_path", "plot_memory"]


def plot_memory(model: str, profiles: Mapping[str, Sequence[int]], path: str | Path,
                budget: int | None = None) -> Path:
    """Writes the plot (PNG, SVG or PDF, by the file name; whole or not at all): one line per strategy (live
    bytes at each layer), the peaks marked, the budget dashed."""
    path = check_plot_path(path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    for strategy, live in profiles.items():
        kib = [b / 1024 for b in live]
        peak = max(range(len(kib)), key=kib.__getitem__)
        line = ax.plot(range(len(kib)), kib, marker=".", label=f"{LABELS.get(strategy, strategy)}: "
                       f"peak {live[peak]:,} B")[0]
        ax.annotate(f"{kib[peak]:.1f} KiB", (peak, kib[peak]), textcoords="offset points", xytext=(4, 4),
                    color=line.get_color(), fontsize=8)
    if budget:
        ax.axhline(budget / 1024, color="red", linestyle="--", label=f"budget {budget:,} B")
    ax.set_xlabel("layer")
    ax.set_ylabel("live memory (KiB)")
    ax.set_title(f"{model}: live memory per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
