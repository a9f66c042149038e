"""`mcuforge nas ...`: the command line of the NAS half (arguments here, the work in mcuforge.nas).

Standard library only at module level (cli.args builds the parser before the heavy imports)."""
from __future__ import annotations

import argparse
import json
import os
import re

from .argtypes import parse_bytes, parse_count, parse_fraction, parse_positive
from ..errors import BudgetError, UsageError, shown
from ..nas.oracles import WEIGHT_FORMATS

SPACE_DESCRIPTION = """\
TinyNAS stage 1: choose the search space (width multiplier W x input resolution R) for a board. For each
of the 108 (W, R) spaces of MCUNet's MobileNetV2 backbone (W 0.2..1.0, R 48..224) it samples networks,
keeps those that fit the SRAM (peak under the memory model of --strategy) and flash budgets, and picks the
space whose fitting networks have the largest mean MACs (more compute, more accuracy: MCUNet's Fig. 3).
Flash counts the weights and requantization constants as the code generator stores them and the model's
code (a model fitted on arm-none-eabi-size, for the board's core at -Os); --latency-ms adds a latency
budget (instructions of our kernels predicted per layer, fitted on QEMU counts, at the board's clock).

  mcuforge nas space --board stm32f746
  mcuforge nas space --board stm32f412 --classes 10 --input 96x96x3 --plot cdf.png
  mcuforge nas space --sram 64K --flash 512K --signal 6x128 --classes 6 --json
  mcuforge nas space --board stm32h743 --grid grid.png      # the choice over SRAM x flash budgets
  mcuforge nas space --board stm32f746 --latency-ms 500      # and at most 500 ms per inference
Exit 3 when no sampled network fits the budgets."""

GRID_SRAM = tuple(k << 10 for k in (128, 192, 256, 320, 384, 448, 512))
GRID_FLASH = tuple(k << 10 for k in (512, 768, 1024, 1536, 2048))


def add_nas_parser(sub) -> None:
    n = sub.add_parser("nas", help="neural architecture search: stage 1 (choose the search space for a board)",
                       description="Neural architecture search for microcontrollers (TinyNAS).")
    nsub = n.add_subparsers(dest="nas_command", required=True, metavar="NAS_COMMAND")
    s = nsub.add_parser("space", help="TinyNAS stage 1: the (width, resolution) space with the most compute "
                        "that fits", description=SPACE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--board", help="board profile (stm32f412, stm32f746, stm32f765, stm32h743, nrf52840, rp2040): "
                   "its SRAM and flash are the budgets")
    s.add_argument("--sram", type=parse_bytes, help="SRAM budget for the arena, e.g. 320K (overrides the board's)")
    s.add_argument("--flash", type=parse_bytes, help="flash budget, e.g. 1M (overrides the board's)")
    s.add_argument("--classes", type=parse_positive, default=1000, help="classifier outputs (default 1000)")
    task = s.add_mutually_exclusive_group()
    task.add_argument("--input", metavar="HxWxC", help="image input, e.g. 224x224x3 (default): C channels, "
                      "resolutions up to min(H, W)")
    task.add_argument("--signal", metavar="CxL", help="1-D signal input, e.g. 6x128: C channels, windows of "
                      "up to L samples (the 1-D space: 1xK windows)")
    s.add_argument("--strategy", choices=("layer", "auto", "tflm"), default="layer",
                   help="memory model for peak SRAM: layer (mcuforge's planner, layer by layer; default), auto "
                   "(its auto strategy: patch-based first layers and fused blocks; about 10x slower) or tflm "
                   "(a TFLM-like runtime: nothing in place, kernel scratch on top; for comparison)")
    s.add_argument("--weights", choices=WEIGHT_FORMATS, default="int8",
                   help="weight format for the flash budget: int8 (default), int4, ternary, pow2 or codebook:B, each "
                   "weight tensor's bytes in that format (compile --weights, mcuforge compress)")
    s.add_argument("--opt", choices=("Os", "O2"), default="Os",
                   help="optimisation level of the firmware build, for the model's code in the flash budget "
                   "(default Os)")
    s.add_argument("--no-code", action="store_true", help="leave the model's code out of the flash budget")
    s.add_argument("--latency-ms", type=parse_milliseconds, metavar="MS",
                   help="latency budget per inference in ms on the board (needs --board; estimated from "
                   "instruction counts of our kernels, one instruction per cycle)")
    s.add_argument("--samples", type=parse_positive, default=1000, help="networks sampled per space (default 1000)")
    s.add_argument("--seed", type=parse_count, default=0, help="sampling seed (default 0)")
    s.add_argument("--min-fit", type=parse_fraction, default=0.01, metavar="FRACTION",
                   help="only choose spaces where at least this fraction of the samples fits (default 0.01: a "
                   "mean over 10 or more of 1000 networks; 0: the paper's rule, whatever the fraction)")
    s.add_argument("--jobs", type=parse_positive, default=os.cpu_count() or 1,
                   help="worker processes (default: all cores)")
    s.add_argument("--top", type=parse_positive, default=10, help="spaces to print and plot (default 10)")
    s.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    s.add_argument("--plot", metavar="PNG", help="MACs CDF of the top spaces' fitting networks (.png, .svg, .pdf)")
    s.add_argument("--grid", metavar="PNG", help="the choice over a grid of SRAM x flash budgets (.png, .svg, .pdf)")


def parse_task(args) -> dict:
    """channels, signal and the resolutions of the grid from --input / --signal."""
    from ..nas.mcunet import RESOLUTIONS

    if args.signal:
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", args.signal)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 32:
            raise UsageError(f"--signal {shown(args.signal)}: give CxL, channels x window length (L >= 32), e.g. 6x128")
        channels, length = int(m.group(1)), int(m.group(2))
        step = max(16, (length // 12 + 15) // 16 * 16)
        return {"channels": channels, "signal": True,
                "resolutions": tuple(range(length - (length - 32) // step * step, length + 1, step))}
    text = args.input or "224x224x3"
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or min(int(g) for g in m.groups()) < 1:
        raise UsageError(f"--input {shown(text)}: give HxWxC, e.g. 224x224x3")
    h, w, c = (int(g) for g in m.groups())
    resolutions = tuple(r for r in RESOLUTIONS if r <= min(h, w))
    if not resolutions:
        raise UsageError(f"--input {shown(text)}: the smallest resolution of the space is {RESOLUTIONS[0]}")
    return {"channels": c, "signal": False, "resolutions": resolutions}


def parse_milliseconds(text: str) -> float:
    value = parse_fraction(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of milliseconds, not {shown(text)}")
    return value


def _budgets(args):
    from ..nas.stage1 import Budgets
    from ..targets.boards import get_board

    board = get_board(args.board) if args.board else None
    sram = args.sram or (board.sram_bytes if board else None)
    flash = args.flash or (board.flash_bytes if board else None)
    if sram is None and flash is None and args.latency_ms is None:
        raise UsageError("give a budget: --board NAME, or --sram and/or --flash")
    if args.latency_ms is not None and board is None:
        raise UsageError("--latency-ms needs --board: the latency comes from its core and clock")
    return Budgets(sram, flash, args.latency_ms), board


def _models(args, board):
    """The code-size and latency models stage 1 uses, and a line saying which core they are for."""
    from ..nas import latency as latency_tables
    from ..nas.oracles import code_model, latency_model

    cores = latency_tables.cores()
    core = board.core if board is not None and board.core in cores else "cortex-m7"
    if args.latency_ms is not None and (board is None or board.core not in cores):
        raise UsageError(f"--latency-ms: no latency model for {board.core if board else 'this board'}'s core "
                         f"(models: {', '.join(cores)})")
    code = None if args.no_code else code_model(core, args.opt)
    latency = latency_model(board) if args.latency_ms is not None else None
    note = [] if args.no_code else [f"code for {core} at -{args.opt}"]
    if latency is not None:
        note.append(f"latency on {board.mcu} at {board.clock_hz / 1e6:g} MHz (estimate)")
    return code, latency, ", ".join(note)


def run_space(args, console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..nas.plots import check_plot_path, plot_cdf, plot_grid
    from ..nas.stage1 import Budgets, choose, sample_spaces
    from ..nas.mcunet import WIDTHS, SearchSpace

    budgets, board = _budgets(args)
    code, latency, note = _models(args, board)
    task = parse_task(args)
    for path, what in ((args.plot, "the plot"), (args.grid, "the grid plot")):
        if path:
            check_plot_path(path, what)
    spaces = [SearchSpace(w, r, channels=task["channels"], classes=args.classes, signal=task["signal"])
              for w in WIDTHS for r in task["resolutions"]]
    import time

    start = time.perf_counter()
    with Progress(TextColumn("sampling spaces"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=args.json) as bar:
        job = bar.add_task("spaces", total=len(spaces))
        grid = [Budgets(sram, flash, budgets.latency_ms) for sram in GRID_SRAM for flash in GRID_FLASH]
        within = Budgets.covering([budgets, *grid] if args.grid else [budgets])
        drawn = sample_spaces(spaces, args.samples, args.seed, args.strategy, args.weights, code, latency, within,
                              jobs=args.jobs, progress=lambda done: bar.update(job, completed=done))
    result = choose(drawn, budgets, strategy=args.strategy, weights=args.weights, min_fit=args.min_fit,
                    seconds=time.perf_counter() - start)
    _print_result(result, board, task, args, console, note)
    if args.plot:
        console.print(f"wrote {plot_cdf(result, args.plot, args.top)}", markup=False)
    if args.grid:
        cells = []
        for sram in GRID_SRAM:
            for flash in GRID_FLASH:
                try:
                    cell = Budgets(sram, flash, budgets.latency_ms)
                    cells.append((sram, flash, choose(drawn, cell, min_fit=args.min_fit).chosen))
                except BudgetError:  # nothing fits this cell
                    cells.append((sram, flash, None))
        console.print(f"wrote {plot_grid(cells, args.grid)}", markup=False)
    if args.json:
        print(json.dumps(result.as_json()))
    return 0


def _print_result(result, board, task, args, console, note: str) -> None:
    from rich.table import Table

    what = f"{task['channels']}-channel {'signal' if task['signal'] else 'image'}, {args.classes} classes"
    what += f"; {note}" if note else ""
    where = f"{board.mcu}: " if board else ""
    t = Table(title=f"{where}stage 1 over {len(result.configs)} spaces x {args.samples} networks ({what}; "
                    f"{result.strategy} memory model, {result.weights} weights; {result.seconds:.1f} s)",
              title_justify="left")
    for col in ("space", "fit", "mean MACs", "p50 MACs", "p90 MACs", "max MACs"):
        t.add_column(col, justify="left" if col == "space" else "right")
    for s in result.ranked()[:args.top]:
        t.add_row(s.name + (" (chosen)" if s is result.chosen else ""), f"{100 * s.fit_fraction:.1f} %",
                  f"{s.mean_macs / 1e6:.1f}M", f"{s.p50_macs / 1e6:.1f}M", f"{s.p90_macs / 1e6:.1f}M",
                  f"{s.max_macs / 1e6:.1f}M")
    console.print(t)
    c = result.chosen
    console.print(f"chosen: width {c.width:g}, resolution {c.resolution} ({100 * c.fit_fraction:.1f} % of its "
                  f"networks fit; their mean {c.mean_macs / 1e6:.1f}M MACs)", markup=False)


def run_nas(args, console) -> int:
    if args.nas_command == "space":
        return run_space(args, console)
    raise UsageError(f"unknown nas command {shown(args.nas_command)}")


SEARCH_DESCRIPTION = """TinyNAS end to end: stage 1 picks the (width, resolution) space for the budgets, a
weight-sharing supernet is trained on DATA (sandwich rule, checkpointed; --resume continues after a kill),
evolution searches it under the budgets (random search at equal evaluations beside it), and the winner is
fine-tuned, quantized to int8 (QAT), compiled, checked against the budgets on the exact compile, verified
bit-exact (C = reference = TFLM) and scored on the test split, beside the S-MbV2 baseline (MobileNetV2 scaled to
the same budgets, trained as long and deployed the same way). DATA: 'digits' (built in) or an .npz with x_train,
y_train, x_test, y_test (images (N,H,W) or (N,H,W,C); signals (N,C,L) with --signal; raw int16 audio (N,samples),
fed through the fixed-point log-mel front-end that OUT's C also gets), or a folder of images per class. OUT gets the C library
(c/), model_int8.tflite, report.json, search.png and search.log."""


def add_search_parser(sub) -> None:
    s = sub.add_parser("search", help="TinyNAS: from a dataset and a board to the most accurate network that fits, "
                       "as verified C", description=SEARCH_DESCRIPTION)
    s.add_argument("--data", required=True, help="'digits', an .npz with x_train, y_train, x_test, y_test, or a "
                   "folder with one sub-folder of images per class (resized to 64x64, a fifth held back for test)")
    s.add_argument("--board", help="board profile (sets the budgets and the core of the code and latency models)")
    s.add_argument("--sram", type=parse_bytes, help="SRAM budget, e.g. 64K (overrides the board's)")
    s.add_argument("--flash", type=parse_bytes, help="flash budget, e.g. 256K (overrides the board's)")
    s.add_argument("--latency-ms", type=parse_milliseconds, metavar="MS", help="latency budget on --board (estimate)")
    s.add_argument("-o", "--out", required=True, help="output folder: new, empty, or a search's (with --resume)")
    s.add_argument("--preset", choices=("quick", "default", "full"), default="default",
                   help="quick: minutes on 2 cores (8 epochs, population 16, 4 generations, at most 4000 training "
                   "samples); default: 30 epochs, population 100, 500 generations; full: 120 epochs")
    s.add_argument("--epochs", type=parse_positive, help="supernet epochs (overrides the preset)")
    s.add_argument("--training", choices=("sandwich", "progressive"),
                   help="supernet training: the sandwich rule with in-place distillation (the default) or "
                   "once-for-all's progressive shrinking (docs/supernet_training.md compares them)")
    s.add_argument("--signal", action="store_true", help="the samples are 1-D signals (N, channels, length)")
    s.add_argument("--strategy", choices=("layer", "auto"), default="layer",
                   help="memory model of the budgets and execution strategy of the winner (default layer)")
    s.add_argument("--seed", type=parse_count, default=0, help="seed of every random choice (default 0)")
    s.add_argument("--resume", action="store_true", help="continue the search in OUT after a kill or Ctrl-C")
    s.add_argument("--workers", type=parse_positive, default=1,
                   help="processes for the supernet's data-parallel training (torch.distributed) and local Ray CPUs "
                   "for scoring candidates (default 1: neither)")
    s.add_argument("--ray-address", metavar="HOST:PORT", help="score candidates on this Ray cluster instead")
    s.add_argument("--json", action="store_true", help="print report.json's object as the last line")


def run_search(args, console) -> int:
    import dataclasses
    import json

    from ..nas.search import PRESETS, load_search_data, search
    from ..progress import phase_bars

    budgets, board = _budgets(args)
    preset = PRESETS[args.preset]
    if args.epochs:
        preset = dataclasses.replace(preset, epochs=args.epochs)
    if args.training:
        preset = dataclasses.replace(preset, training=args.training)
    data = load_search_data(args.data, signal=args.signal)
    with phase_bars(not args.json, console) as bars:
        report = search(data, budgets, args.out, preset, board=board, strategy=args.strategy, seed=args.seed,
                        resume=args.resume, progress=lambda msg: console.print(msg, markup=False), bars=bars,
                        workers=args.workers, ray_address=args.ray_address)
    console.print(f"wrote {args.out}/ (report.json, c/, model_int8.tflite)", markup=False)
    if args.json:
        print(json.dumps(report))
    return 0
