"""Which way to train the supernet: the sandwich rule with in-place distillation (BigNAS) against
once-for-all's progressive shrinking (full, kernel, depth, expand, distilled from the full network), on the
same data, space, steps and seed, one torch thread each.

    python bench/supernet_training.py [--data ../shared/datasets/fashion_mnist.npz] [--width 0.3]
                                      [--resolution 48] [--epochs 6] [--max-train 8000] [--subnets 24]
                                      [--append]

Both supernets are scored the way the search scores candidates (nas.train.subnet_accuracy: batch norms
recalibrated on training batches, accuracy on the validation tenth carved from the training data) on the
same subnets: the largest, the smallest and `--subnets` random ones. The sandwich-trained supernet is scored
twice: as trained, and after sorting its expanded channels by importance (what `mcuforge search` did after
training until this benchmark showed what it costs). Writes docs/supernet_training.md (or --doc); with
--append, adds this run's table to it. Raw audio goes through the front-end (a 1-D signal of 40 mel channels).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from mcuforge.nas.mcunet import SearchSpace  # noqa: E402
from mcuforge.nas.search_data import load_search_data, resize, validation_split  # noqa: E402
from mcuforge.nas.supernet import Supernet  # noqa: E402
from mcuforge.nas.train import TrainConfig, subnet_accuracy, train_supernet  # noqa: E402


def scores(net: Supernet, archs, x_val, y_val, x_train) -> list[float]:
    return [subnet_accuracy(net, a, x_val, y_val, x_train) for a in archs]


def row(name: str, acc: list[float], seconds: float | None) -> str:
    largest, smallest, rest = acc[0], acc[1], acc[2:]
    wall = f"{seconds / 60:.1f} min" if seconds is not None else "(same net)"
    return (f"| {name} | {100 * largest:.2f} | {100 * smallest:.2f} | {100 * statistics.mean(rest):.2f} | "
            f"{100 * min(rest):.2f} | {100 * max(rest):.2f} | {wall} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/datasets/fashion_mnist.npz"))
    p.add_argument("--width", type=float, default=0.3)
    p.add_argument("--resolution", type=int, default=48)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--max-train", type=int, default=8000)
    p.add_argument("--subnets", type=int, default=24, help="random subnets scored besides the largest and smallest")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--doc", default=str(ROOT / "docs" / "supernet_training.md"))
    p.add_argument("--append", action="store_true", help="add this run's table to --doc")
    args = p.parse_args()
    torch.set_num_threads(1)

    data = load_search_data(args.data)
    space = SearchSpace(args.width, args.resolution, data.x_train.shape[1], data.classes, data.signal)
    train, val = validation_split(len(data.x_train), data.classes, args.seed, args.max_train)
    x, y = resize(data.x_train[train], space.resolution, data.signal), data.y_train[train]
    x_val, y_val = resize(data.x_train[val], space.resolution, data.signal), data.y_train[val]
    rng = random.Random(args.seed + 1)
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(args.subnets)]

    rows = []
    for method in ("sandwich", "progressive"):
        torch.manual_seed(args.seed)
        net = Supernet(space)
        config = TrainConfig(epochs=args.epochs, seed=args.seed, method=method)
        start = time.perf_counter()
        state = train_supernet(net, x, y, config, on_step=lambda s, loss: print(
            f"\r{method}: step {s}, loss {loss:.3f}", end="", flush=True))
        seconds = time.perf_counter() - start
        print()
        rows.append(row(f"{method} ({state.steps} steps)", scores(net, archs, x_val, y_val, x), seconds))
        print(rows[-1], flush=True)
        if method == "sandwich":
            net.sort_channels()
            rows.append(row("sandwich, channels sorted after training", scores(net, archs, x_val, y_val, x), None))
            print(rows[-1], flush=True)

    command = " ".join(["python bench/supernet_training.py", *sys.argv[1:]])
    load = os.getloadavg()[0]
    section = f"""
## {Path(args.data).name}, space {space.name}, {args.epochs} epochs

`{command}`: {len(x)} training samples ({len(x_val)} for validation), batch {TrainConfig.batch_size}, seed
{args.seed}, one torch thread per run (load average {load:.1f} on 2 cores when it ended: wall times are upper
bounds). Validation accuracy (%) of the same subnets, each with its batch norms recalibrated, as the search
scores candidates.

| training | largest | smallest | {args.subnets} random: mean | min | max | wall time |
|---|--:|--:|--:|--:|--:|--:|
{chr(10).join(rows)}
"""
    doc = Path(args.doc)
    if args.append and doc.exists():
        doc.write_text(doc.read_text() + section)
    else:
        doc.write_text("# Training the supernet: sandwich rule or progressive shrinking\n" + section)
    print(section)


if __name__ == "__main__":
    main()
