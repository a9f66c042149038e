"""Stage-1 figures: the MACs CDF of each space's fitting networks (MCUNet's Fig. 3) and the chosen space
over a grid of SRAM x flash budgets (MCUNet's Fig. 12). Needs matplotlib."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..report.plotting import check_plot_path, pyplot, save_figure
from .stage1 import SpaceStats, Stage1Result

__all__ = ["check_plot_path", "plot_cdf", "plot_grid"]


def plot_cdf(result: Stage1Result, path: str | Path, top: int = 10, title: str = "") -> Path:
    """The cumulative distribution of MACs of the fitting networks of the `top` spaces, one line each,
    labelled `w{W}-r{R} | {mean MACs}`; the chosen space drawn thicker."""
    path = check_plot_path(path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for s in [c for c in result.ranked() if c.fits][:top]:
        macs = [m / 1e6 for m in s.macs]
        share = [(i + 1) / len(macs) for i in range(len(macs))]
        chosen = s is result.chosen
        ax.step(macs, share, where="post", linewidth=2.5 if chosen else 1.2,
                label=f"{s.name} | {s.mean_macs / 1e6:.1f}M (fit {100 * s.fit_fraction:.0f} %)")
    ax.set_xlabel("MACs of the fitting networks (millions)")
    ax.set_ylabel("cumulative probability")
    ax.set_title(title or f"Stage 1: MACs of the networks that fit ({result.strategy} memory model)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def plot_grid(cells: Sequence[tuple[int, int, SpaceStats | None]], path: str | Path, title: str = "") -> Path:
    """One cell per (SRAM, flash) budget: the chosen W and R written in it, coloured by the chosen space's
    mean MACs (empty where nothing fits)."""
    path = check_plot_path(path, "the grid plot")
    plt = pyplot()
    srams = sorted({c[0] for c in cells})
    flashes = sorted({c[1] for c in cells})
    grid = {(s, f): st for s, f, st in cells}
    values = [[(grid[(s, f)].mean_macs / 1e6 if grid.get((s, f)) else float("nan")) for s in srams] for f in flashes]
    fig, ax = plt.subplots(figsize=(1.3 * len(srams) + 2, 0.9 * len(flashes) + 1.5))
    image = ax.imshow(values, cmap="viridis", origin="lower", aspect="auto")
    for j, f in enumerate(flashes):
        for i, s in enumerate(srams):
            st = grid.get((s, f))
            ax.text(i, j, f"W{st.width:g}\nR{st.resolution}" if st else "-", ha="center", va="center", fontsize=8,
                    color="white")
    ax.set_xticks(range(len(srams)), [f"{s // 1024} KB" for s in srams])
    ax.set_yticks(range(len(flashes)), [_flash_label(f) for f in flashes])
    ax.set_xlabel("SRAM budget")
    ax.set_ylabel("flash budget")
    ax.set_title(title or "Stage 1: the chosen search space per budget")
    fig.colorbar(image, ax=ax, label="mean MACs of fitting networks (millions)")
    return save_figure(fig, path)


def _flash_label(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):g} MB" if nbytes >= 1 << 20 else f"{nbytes // 1024} KB"
