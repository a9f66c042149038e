"""What every figure of ours shares: matplotlib without a screen, and a file written whole or not at all."""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..outdir import check_output_file, write_file_atomically

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path: str | Path, what: str = "the plot") -> Path:
    """UsageError unless `path` can take a figure: a .png, .svg or .pdf file in an existing folder."""
    return check_output_file(path, PLOT_SUFFIXES, what)


def pyplot():
    """matplotlib.pyplot on the Agg backend; UsageError when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("plots need matplotlib: pip install matplotlib") from None
    return plt


def save_figure(fig, path: Path) -> Path:
    """Lays out and writes `fig` in the format of `path`'s suffix (whole or not at all), then closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        write_file_atomically(path, lambda f: fig.savefig(f, format=path.suffix[1:].lower(), dpi=120))
    finally:
        plt.close(fig)
    return path
