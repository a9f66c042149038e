"""TinyNAS stage 1 benchmark: the chosen (W, R) space per board, the time it takes, and how much more
compute fits when the engine is better (the co-design argument of MCUNet's Fig. 4/5, with our planner).

    python bench/stage1.py [--samples 1000] [--seed 0] [--jobs 2] [--docs docs]

ImageNet-sized task (1000 classes, RGB): for STM32F412 (256 KB / 1 MB), STM32F746 (320 KB / 1 MB) and
STM32H743 (512 KB / 2 MB), stage 1 over 108 spaces x `--samples` networks under each memory model
(mcuforge's planner layer by layer, and the TFLM-like model), next to the spaces of MCUNet's released
models for those budgets. Draws the CDF figure for STM32F746 and the budget grid (Fig. 3 and Fig. 12), and a
1-D case (6 x 128 activity windows, 6 classes). Writes docs/nas.md; prints it too.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mcuforge.errors import BudgetError  # noqa: E402
from mcuforge.nas.mcunet import RESOLUTIONS, WIDTHS, SearchSpace  # noqa: E402
from mcuforge.nas.oracles import code_model  # noqa: E402
from mcuforge.nas.plots import plot_cdf, plot_grid  # noqa: E402
from mcuforge.nas.stage1 import Budgets, choose, sample_spaces  # noqa: E402
from mcuforge.cli.nas import GRID_FLASH, GRID_SRAM  # noqa: E402
from mcuforge.targets.boards import get_board  # noqa: E402

BOARDS = ("stm32f412", "stm32f746", "stm32h743")
# MCUNet's released ImageNet models for these budgets (the paper's Table / the mcunet repository's zoo),
# chosen under TinyEngine's memory schedule.
MCUNET = {"stm32f412": "w0.5-r160", "stm32f746": "w0.5-r176", "stm32h743": "w1-r160"}
MODELS = ("tflm", "layer", "auto")
LABEL = {"tflm": "TFLM-like", "layer": "mcuforge layer by layer", "auto": "mcuforge auto (patches + fused blocks)"}


def _m(macs: float) -> str:
    return f"{macs / 1e6:.1f}M"


def _oracle_speed(seed: int) -> str:
    """Networks per second of each peak oracle on one core (bench/oracles.py measures them)."""
    from oracles import speed

    rates = ", ".join(f"{name} {rate:,.0f}" for space, name, rate in speed(seed) if space == "w0.5-r160")
    return (f"Peak oracles on one core (networks/s, w0.5-r160 space, best of 5): {rates} (docs/oracles.md: "
            "other spaces, and the oracles against the engine on random networks). Stage 1 under auto runs the "
            "auto oracle only where the layer peak (it fits) and the lower bound (it does not) leave the "
            "budget undecided.")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = p.parse_args()
    spaces = [SearchSpace(w, r) for w in WIDTHS for r in RESOLUTIONS]
    lines = ["# TinyNAS stage 1: the search space per board", "",
             f"`python bench/stage1.py --samples {args.samples} --seed {args.seed} --jobs {args.jobs}`: "
             f"{len(spaces)} spaces (W {WIDTHS[0]}..{WIDTHS[-1]} x R {RESOLUTIONS[0]}..{RESOLUTIONS[-1]}) x "
             f"{args.samples} networks each, ImageNet-sized (1000 classes, RGB). Flash counts int8 weights, "
             "requantization constants and the model's code (Cortex-M7 at -Os, nas.codesize; -Os code of the M4 "
             "and M7 differ by a few bytes); the default --min-fit of 1 %.", ""]
    boards = [get_board(name) for name in BOARDS]
    within = Budgets.covering([Budgets(b.sram_bytes, b.flash_bytes) for b in boards]
                              + [Budgets(sram, flash) for sram in GRID_SRAM for flash in GRID_FLASH])
    drawn = {}
    for model in MODELS:
        start = time.perf_counter()
        drawn[model] = sample_spaces(spaces, args.samples, args.seed, model, code=code_model("cortex-m7"),
                                     within=within, jobs=args.jobs)
        seconds = time.perf_counter() - start
        lines.append(f"- sampling and costing all {len(spaces) * args.samples:,} networks under the {LABEL[model]} "
                     f"memory model: {seconds:.1f} s on {args.jobs} processes")
        print(lines[-1], file=sys.stderr)
    lines += ["", "| board | budgets | MCUNet's model | memory model | chosen space | fit | mean MACs | "
              "best fitting network |", "|---|---|---|---|---|--:|--:|--:|"]
    gains: dict[str, list[str]] = {"layer": [], "auto": []}
    for name in BOARDS:
        board = get_board(name)
        budgets = Budgets(board.sram_bytes, board.flash_bytes)
        chosen = {}
        for model in MODELS:
            c = chosen[model] = choose(drawn[model], budgets, strategy=model).chosen
            lines.append(f"| {board.mcu} | {board.sram_bytes // 1024} KB / {board.flash_bytes // 1024} KB | "
                         f"{MCUNET[name]} | {LABEL[model]} | {c.name} | {100 * c.fit_fraction:.1f} % | "
                         f"{_m(c.mean_macs)} | {_m(c.max_macs)} |")
        theirs = chosen["tflm"]
        for model in gains:
            ours = chosen[model]
            gains[model].append(f"{board.mcu} {100 * (ours.mean_macs / theirs.mean_macs - 1):+.0f} % / "
                                f"{100 * (ours.max_macs / theirs.max_macs - 1):+.0f} %")
    lines += ["", "More compute fits than under the TFLM-like memory model (MACs of the chosen space's fitting "
              "networks, mean / best): mcuforge layer by layer " + ", ".join(gains["layer"]) + "; mcuforge auto "
              + ", ".join(gains["auto"]) + "."]
    f746 = get_board("stm32f746")
    result = choose(drawn["layer"], Budgets(f746.sram_bytes, f746.flash_bytes))
    cdf = plot_cdf(result, args.docs / "nas_cdf_f746.png",
                   title="STM32F746 (320 KB / 1 MB): MACs of the fitting networks, top 10 spaces")
    cells = []
    for sram in GRID_SRAM:
        for flash in GRID_FLASH:
            try:
                cells.append((sram, flash, choose(drawn["layer"], Budgets(sram, flash)).chosen))
            except BudgetError:
                cells.append((sram, flash, None))
    grid = plot_grid(cells, args.docs / "nas_grid.png", title="The chosen space per SRAM x flash budget "
                     "(mcuforge layer by layer, 1000 classes)")
    signal = [SearchSpace(w, r, channels=6, classes=6, signal=True) for w in WIDTHS for r in range(32, 129, 16)]
    start = time.perf_counter()
    sampled = sample_spaces(signal, args.samples, args.seed, code=code_model("cortex-m4"), jobs=args.jobs)
    sig = choose(sampled, Budgets(64 << 10, 256 << 10))
    lines += ["", f"![CDF]({cdf.name})", "", f"![grid]({grid.name})", "",
              "1-D (6 x 128 activity windows, 6 classes, windows of 32..128 samples), 64 KB SRAM / 256 KB flash: "
              f"chosen {sig.chosen.name} ({100 * sig.chosen.fit_fraction:.1f} % fit, mean "
              f"{_m(sig.chosen.mean_macs)} MACs), {time.perf_counter() - start:.1f} s for "
              f"{len(signal)} spaces."]
    lines += ["", _oracle_speed(args.seed)]
    text = "\n".join(lines) + "\n"
    (args.docs / "nas.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
