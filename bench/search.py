"""TinyNAS end to end against the S-MbV2 baseline: `mcuforge search` on a real dataset under several
budgets, the searched network's int8 C test accuracy beside the best MobileNetV2 scaled to the same budgets.

    python bench/search.py [--data ../shared/datasets/fashion_mnist.npz] [--budgets 64K/256K,16K/64K]
                           [--board stm32f746] [--signal] [--epochs 10] [--max-train 12000] [--population 32]
                           [--generations 10] [--out bench_search] [--resume] [--doc docs/search_<data>.md]

Each budget runs in its own folder under --out (resumable with --resume after a kill). Every figure comes
from the run's report.json: test accuracy is the int8 C on the whole test split; SRAM and flash are the
exact compile's (flash with code only with --board, which also counts both networks in QEMU on Cortex-M4
and M7). Raw audio goes through the C front-end (its SRAM and instructions in their own columns). Writes
the markdown table to --doc and prints it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mcuforge.cli.args import parse_bytes  # noqa: E402
from mcuforge.nas.search import Preset, load_search_data, search  # noqa: E402
from mcuforge.nas.stage1 import Budgets  # noqa: E402
from mcuforge.targets.boards import get_board  # noqa: E402


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def _ms(d: dict, core: str, clock_hz: int | None) -> str:
    n = d.get("instructions", {}).get(core)
    return "" if n is None or clock_hz is None else f"{n / clock_hz * 1e3:.1f} ms"


def _cells(label: str, name: str, d: dict, clock_hz: int | None) -> list[str]:
    return [label, name, f"{100 * d['test_accuracy']:.2f}", _kb(d["peak_sram_bytes"]), _kb(d["flash_bytes"]),
            f"{d['macs'] / 1e6:.2f}M", _ms(d, "cortex-m4", clock_hz), _ms(d, "cortex-m7", clock_hz)]


def _rows(label: str, r: dict, clock_hz: int | None) -> list[str]:
    s = r["searched"]
    weights = s.get("weights", {}).get("chosen")
    name = f"searched in {r['space']}" + (f" ({weights} weights)" if weights else "")
    rows = [_cells(label, name, s, clock_hz) + [
        f"{100 * s['validation_accuracy']:.2f} / {100 * r['search']['random_best']:.2f}",
        f"{r['seconds']['total'] / 60:.0f} min"]]
    rows += [_cells(label, b["name"], b, clock_hz) + ["", ""] for b in r["baselines"]]
    best = max(d["test_accuracy"] for d in [s, *r["baselines"]])
    for row, d in zip(rows, [s, *r["baselines"]]):
        if d["test_accuracy"] == best:
            row[2] = f"**{row[2]}**"
    return ["| " + " | ".join(row) + " |" for row in rows]


def _audio_line(r: dict, clock_hz: int | None) -> str:
    a = r.get("audio")
    if not a:
        return ""
    fe = ", ".join(f"{core.replace('cortex-', '').upper()} {n:,} instructions"
                   + (f" ({n / clock_hz * 1e3:.1f} ms)" if clock_hz else "")
                   for core, n in a["frontend_instructions"].items())
    return (f"- {r['budgets']['sram_bytes'] // 1024} KB: raw test clips through the C front-end: test accuracy "
            f"{100 * a['test_accuracy']:.2f} % (same predictions as on the numpy features: {a['same_predictions']}); "
            f"SRAM with the front-end {a['total_sram_bytes']:,} B (front-end and glue {a['frontend_sram_bytes']:,} B, "
            f"tables {a['frontend_flash_tables_bytes']:,} B of flash)" + (f"; front-end per clip: {fe}" if fe else "")
            + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/datasets/fashion_mnist.npz"))
    p.add_argument("--budgets", default="64K/256K,16K/64K", help="SRAM/flash pairs, comma separated")
    p.add_argument("--epochs", type=int, default=10, help="supernet epochs (the baseline trains epochs * 1.5)")
    p.add_argument("--max-train", type=int, default=12000)
    p.add_argument("--population", type=int, default=32)
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench_search")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--table-only", action="store_true", help="write the table from the report.json files in --out")
    p.add_argument("--board", help="board profile: code counted in flash, QEMU counts on Cortex-M4 and M7")
    p.add_argument("--signal", action="store_true", help="the samples are 1-D signals (N, channels, length)")
    p.add_argument("--doc", help="markdown file to write (default docs/search_<data>.md)")
    args = p.parse_args()

    board = get_board(args.board) if args.board else None
    data = load_search_data(args.data, signal=args.signal)
    preset = Preset(epochs=args.epochs, finetune_epochs=max(1, args.epochs // 2), population=args.population,
                    generations=args.generations, stage1_samples=300, batch_size=64, max_train=args.max_train,
                    qat_epochs=1)
    rows, notes = [], []
    clock = board.clock_hz if board is not None else None
    for pair in args.budgets.split(","):
        sram, flash = (parse_bytes(v) for v in pair.split("/"))
        out = Path(args.out) / pair.replace("/", "_")
        start = time.perf_counter()
        if args.table_only:
            report = json.loads((out / "report.json").read_text())
        else:
            report = search(data, Budgets(sram_bytes=sram, flash_bytes=flash), out, preset, seed=args.seed,
                            board=board, resume=args.resume and out.exists(),
                            progress=lambda m: print(f"[{pair}] {m}", flush=True))
            print(f"[{pair}] {time.perf_counter() - start:.0f} s", flush=True)
        rows += _rows(pair.replace("/", " / "), report, clock)
        notes.append(_audio_line(report, clock))

    header = ["| SRAM / flash | network | int8 C test accuracy (%) | peak SRAM | flash | MACs | M4 | M7 | "
              "best validation: evolution / random (%) | wall time |", "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    where = (f"on {board.name} ({board.clock_hz / 1e6:.0f} MHz; M4 and M7: instructions counted in QEMU / the clock)"
             if board else "without a board (flash: weights and constants, no code)")
    command = " ".join(["python bench/search.py", *(a for a in sys.argv[1:] if a != "--table-only")])
    doc = f"""# `mcuforge search` on {Path(args.data).name}

`{command}`, on 2 CPU cores shared with other jobs (wall times are upper bounds), {where}. The supernet
trains {preset.epochs} epochs; the winner fine-tunes {preset.finetune_epochs} and gets {preset.qat_epochs} epoch
of QAT. S-MbV2 (MobileNetV2 scaled by width and resolution to the largest configuration that fits,
nas.baseline) trains {preset.epochs + preset.finetune_epochs} epochs from scratch with the same recipe and QAT.
Both use at most {args.max_train or 'all'} training samples, less the validation tenth. Test accuracy: the int8
C on the whole test split. SRAM and flash: the exact compile's.

{chr(10).join(header + rows)}
{"".join(notes)}"""
    path = Path(args.doc or ROOT / "docs" / f"search_{Path(args.data).stem}.md")
    path.write_text(doc)
    print(doc)


if __name__ == "__main__":
    main()
