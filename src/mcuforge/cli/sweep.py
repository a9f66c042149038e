"""`mcuforge compress sweep`: its arguments and its run (the work is compress.sweep)."""
from __future__ import annotations

import argparse

from ..errors import shown
from .argtypes import parse_bytes, parse_count, parse_fraction, parse_positive

COMMAND = "compress-sweep"  # `mcuforge compress sweep ...` is dispatched here (main._dispatch)

DESCRIPTION = """\
Train every combination of a pruning level and a weight format from one float network, deploy each as C and
measure it there: test accuracy of the C on the whole test split, flash (exact, code included, for the board's
core), peak SRAM, and latency (instructions of one inference counted in QEMU, at the board's clock). Rank them
by a quality metric (default halvings-per-point: log2 of the flash saved against float32, minus the accuracy
points lost) and draw the Pareto front.

Without --model it first trains the baseline (--arch). Each combination fine-tunes it with quantization-aware
training into its format while magnitude pruning reaches --prune; the weights are then stored in the
smallest format that holds them (sparse when pruned). --mixed adds one combination per pruning level with a
format per layer, chosen by each layer's measured sensitivity to fit --flash-budget.

OUT gets report.json (every combination and `best`), pareto.png, best.tflite, c/ (the best one's C library)
and runs/ (one file per combination: --resume runs only the missing ones).
"""


def _list(parse):
    def parse_items(text: str):
        items = [s.strip() for s in text.split(",") if s.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"give a comma-separated list, not {shown(text)}")
        return [parse(s) for s in items]
    return parse_items


def add_sweep_parser(sub) -> None:
    from ..compress.quality import DEFAULT_METRIC, METRICS
    from ..compress.sweep import ARCHS, DEFAULT_BOARD
    from ..quant.weight_grids import TRAINABLE

    s = sub.add_parser(COMMAND, prog="mcuforge compress sweep", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="(run as `mcuforge compress sweep`) train and rank pruning x weight-format combinations",
                       epilog="example:\n  mcuforge compress sweep --data digits --preset quick --prune 0,0.5 "
                       "--weights int8,int4,ternary --out sweep_digits/")
    s.add_argument("--data", required=True, help="'digits', an .npz with x_train, y_train, x_test, y_test, or a "
                   "folder with one sub-folder of images per class (as mcuforge search)")
    s.add_argument("--signal", action="store_true", help="the samples are 1-D signals (N, channels, length)")
    s.add_argument("--model", metavar="MODEL.pt2", help="the float baseline as a torch.export program (its input "
                   "channels first); without it --arch is trained")
    s.add_argument("--arch", choices=ARCHS, default="tiny_cnn", help="the baseline to train (default tiny_cnn)")
    s.add_argument("--prune", type=_list(parse_fraction), default=[0.0, 0.25, 0.5, 0.75], metavar="LIST",
                   help="shares of zeros, e.g. 0,0.25,0.5,0.75 (the default)")
    s.add_argument("--weights", type=_list(str), default=["int8", "int4", "ternary", "pow2", "codebook:4"],
                   metavar="LIST", help=f"formats to train into, from {', '.join(TRAINABLE)} (default "
                   "int8,int4,ternary,pow2,codebook:4)")
    s.add_argument("--mixed", action="store_true", help="also a format per layer (from --weights) under "
                   "--flash-budget, at each pruning level")
    s.add_argument("--flash-budget", type=parse_bytes, metavar="BYTES", help="flash the best must fit (code "
                   "included), e.g. 64K; --mixed fits its layers' formats to it")
    s.add_argument("--metric", choices=sorted(METRICS), default=DEFAULT_METRIC,
                   help=f"quality metric that ranks the combinations (default {DEFAULT_METRIC})")
    s.add_argument("--board", default=DEFAULT_BOARD, help=f"board profile: core and clock (default {DEFAULT_BOARD})")
    s.add_argument("--preset", choices=("quick", "default"), default="default",
                   help="quick: minutes on 2 cores (10 baseline epochs, 3 per combination, at most 2000 training "
                   "samples); default: 30 and 10 epochs, all samples")
    s.add_argument("--epochs", type=parse_positive, help="baseline epochs (overrides the preset)")
    s.add_argument("--qat-epochs", type=parse_positive, help="epochs per combination (overrides the preset)")
    s.add_argument("-o", "--out", required=True, help="output folder: new or empty, or a sweep's with --resume")
    s.add_argument("--resume", action="store_true", help="continue the sweep in OUT after a kill or Ctrl-C")
    s.add_argument("--seed", type=parse_count, default=0, help="seed of every random choice (default 0)")
    s.add_argument("--workers", type=parse_positive, default=1,
                   help="local Ray CPUs training combinations in parallel (default 1: in this process)")
    s.add_argument("--ray-address", metavar="HOST:PORT", help="run the combinations on this Ray cluster instead")
    s.add_argument("--json", action="store_true", help="print report.json's object as the last line")


def run_sweep(args, console) -> int:
    import dataclasses
    import json

    from ..compress.sweep import PRESETS, sweep
    from ..nas.search_data import load_search_data
    from ..progress import phase_bars
    from ..targets.boards import get_board

    preset = PRESETS[args.preset]
    if args.epochs:
        preset = dataclasses.replace(preset, epochs=args.epochs)
    if args.qat_epochs:
        preset = dataclasses.replace(preset, qat_epochs=args.qat_epochs)
    board = get_board(args.board)
    data = load_search_data(args.data, signal=args.signal)
    with phase_bars(not args.json, console) as bars:
        report = sweep(data, args.out, prunes=args.prune, weights=args.weights, model=args.model, arch=args.arch,
                       preset=preset, board=board, mixed=args.mixed, flash_budget=args.flash_budget,
                       metric_name=args.metric, seed=args.seed, resume=args.resume, workers=args.workers,
                       ray_address=args.ray_address, progress=lambda msg: console.print(msg, markup=False),
                       bars=bars)
    console.print(f"wrote {args.out}/ (report.json, pareto.png, best.tflite, c/)", markup=False)
    if args.json:
        print(json.dumps(report))
    return 0
