"""Compression sweeps on real data (`mcuforge compress sweep` through its API): images (Fashion-MNIST), keyword
spotting (Speech Commands, 8 words, through the fixed-point log-mel front-end), activity recognition
(BasicMotions, a smartwatch's 6 channels) and ECG (ECG200: myocardial infarction against normal beats).

    python examples/compress_apps.py ecg200 --out runs/            # one application: runs/ecg200/
    python examples/compress_apps.py all --out runs/ --table tables.md   # the tables of docs/compression.md

Each application trains the tiny_cnn baseline (2-D for images, 1-D for signals) on its training split, then
every combination of its pruning levels and weight formats with quantization-aware training (and a format
per layer chosen to fit 1/8 of the float32 model's bytes, "mixed"), deploys each
as C and measures it there (compress.sweep: accuracy of the C on the whole held-back test split, flash with
code for the Cortex-M7 of an STM32F746, peak SRAM, latency counted in QEMU). The data come from
../shared/datasets (MCUFORGE_DATASETS overrides the folder); --resume continues an interrupted run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from mcuforge.compress.sweep import SweepPreset, float_flash, sweep
from mcuforge.nas.search_data import load_search_data

WEIGHTS = ("int8", "int4", "ternary", "pow2", "codebook:4")
BUDGET_RATIO = 8  # the flash budget: the float32 model's bytes / 8; the best is chosen among those that fit


@dataclass(frozen=True)
class App:
    file: str
    what: str
    preset: SweepPreset
    prunes: tuple[float, ...] = (0.0, 0.5, 0.75)
    signal: bool = False


APPS = {
    "fashion_mnist": App("fashion_mnist.npz", "images, 28x28, 10 classes",
                         SweepPreset(epochs=8, qat_epochs=2, max_train=20_000)),
    "speech_commands8": App("speech_commands8.npz", "keyword spotting, 1 s clips -> 40 log-mels x 49 frames, 8 words",
                            SweepPreset(epochs=40, qat_epochs=10, max_train=None, batch_size=32)),
    "basic_motions": App("basic_motions.npz", "activity recognition, 6 channels x 100 samples, 4 classes",
                         SweepPreset(epochs=60, qat_epochs=20, max_train=None, batch_size=8, lr=0.02),
                         signal=True),
    "ecg200": App("ucr_ecg200.npz", "ECG, 96 samples per beat, 2 classes",
                  SweepPreset(epochs=60, qat_epochs=20, max_train=None, batch_size=16, lr=0.02), signal=True),
}


def datasets() -> Path:
    return Path(os.environ.get("MCUFORGE_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def run_app(name: str, out: Path, resume: bool, workers: int, quick: bool = False) -> dict:
    app = APPS[name]
    preset = replace(app.preset, epochs=3, qat_epochs=1, max_train=2000) if quick else app.preset
    prunes, weights = (app.prunes[:2], WEIGHTS[:3]) if quick else (app.prunes, WEIGHTS)
    data = load_search_data(str(datasets() / app.file), signal=app.signal)
    budget = float_flash("tiny_cnn", data) // BUDGET_RATIO
    return sweep(data, out / name, prunes=prunes, weights=weights, preset=preset, mixed=True,
                 flash_budget=budget, resume=resume, workers=workers,
                 progress=lambda msg: print(f"[{name}] {msg}", flush=True))


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f}"


def _mixed(report: dict) -> str:
    formats = next((r["layer_formats"] for r in report["combinations"] if r["weights"] == "mixed"), None)
    return ", ".join(f"{k} {v}" for k, v in formats.items()) if formats else ""


def table(name: str, report: dict) -> list[str]:
    """A markdown section: the float baseline and every combination, the best marked."""
    app = APPS[name]
    f = report["float"]
    lines = [f"### {name}: {app.what}", "",
             f"Float baseline (tiny_cnn): test accuracy {100 * f['test_accuracy']:.2f} %, float32 weights "
             f"{_kb(f['flash_bytes'])} KiB; flash budget {_kb(report['flash_budget'])} KiB (1/{BUDGET_RATIO}), the best "
             f"chosen among the combinations that fit. Preset {json.dumps(report['preset'])}, seed {report['seed']}.",
             *([f"Mixed: {mixed}."] if (mixed := _mixed(report)) else []), "",
             "| prune | weights | stored as | test acc. (C) | flash KiB (code incl.) | weights KiB | peak SRAM KiB "
             "| M7 latency ms | quality | C = fake-quant |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(report["combinations"], key=lambda r: (r["prune"], WEIGHTS.index(r["weights"])
                                                            if r["weights"] in WEIGHTS else 99)):
        best = " **(best)**" if r["key"] == report["best"]["key"] else ""
        stored = ", ".join(f"{k} x{v}" for k, v in r["formats"].items())
        lines.append(f"| {r['prune']:.2f} | {r['weights']}{best} | {stored} | {100 * r['test_accuracy']:.2f} | "
                     f"{_kb(r['flash_bytes'])} | {_kb(r['weight_bytes'])} | {_kb(r['peak_sram_bytes'])} | "
                     f"{r['latency_ms']:.2f} | {r['quality']:.2f} | {'yes' if r['same_predictions'] else 'NO'} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", choices=(*APPS, "all"))
    parser.add_argument("--out", required=True, help="folder of the runs (one sub-folder per application)")
    parser.add_argument("--table", help="also write the markdown tables of the finished applications here")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="local Ray workers (default 1: in this process)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 baseline epochs, 1 per combination, "
                        "two pruning levels, int8, int4 and ternary")
    args = parser.parse_args(argv)
    out = Path(args.out)
    names = list(APPS) if args.app == "all" else [args.app]
    for name in names:
        run_app(name, out, args.resume, args.workers, args.quick)
    if args.table:
        sections = [line for name in APPS if (out / name / "report.json").exists()
                    for line in table(name, json.loads((out / name / "report.json").read_text()))]
        Path(args.table).write_text("\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
