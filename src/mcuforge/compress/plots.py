"""The sweep's figure: test accuracy against flash for every combination, the Pareto front joined, each point's
area the peak SRAM and its colour the latency. Needs matplotlib."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from ..report.plotting import check_plot_path, pyplot, save_figure


def plot_pareto(results: Sequence[Mapping], front: Sequence[str], best: str, path: str | Path, title: str = "") -> Path:
    path = check_plot_path(path, "the Pareto plot")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    flash = [r["flash_bytes"] / 1024 for r in results]
    accuracy = [100 * r["test_accuracy"] for r in results]
    sram = [r["peak_sram_bytes"] for r in results]
    latency = [r["latency_ms"] if r.get("latency_ms") is not None else 0.0 for r in results]
    top = max(sram) or 1
    points = ax.scatter(flash, accuracy, s=[30 + 270 * s / top for s in sram], c=latency, cmap="viridis",
                        alpha=0.8, edgecolors="black", linewidths=0.5)
    by_key = {r["key"]: r for r in results}
    ax.plot([by_key[k]["flash_bytes"] / 1024 for k in front], [100 * by_key[k]["test_accuracy"] for k in front],
            color="tab:red", linewidth=1.2, label="Pareto front")
    for r, x, y in zip(results, flash, accuracy):
        ax.annotate(r["key"], (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points",
                    fontweight="bold" if r["key"] == best else "normal")
    float_accuracy = 100 * results[0]["float_test_accuracy"]
    ax.axhline(float_accuracy, color="gray", linestyle="--", linewidth=1, label=f"float {float_accuracy:.1f} %")
    ax.set_xscale("log")
    from matplotlib.ticker import ScalarFormatter

    for axis in (ax.xaxis,):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(ScalarFormatter())
    ax.set_xlabel("flash, KiB (code included; log scale)")
    ax.set_ylabel("test accuracy of the deployed C, %")
    ax.set_title(title or "compression sweep")
    fig.colorbar(points, ax=ax, label="latency, ms (point area: peak SRAM)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


__all__ = ["plot_pareto"]
