"""Distributed NAS benchmark: the speed-up from 1 to 2 workers of (a) candidate evaluation as Ray tasks
(nas.parallel.RayEvaluator) and (b) data-parallel supernet training (nas.ddp_train, torch.distributed, gloo),
on a small space with the built-in digits (8x8 images resized to the space's resolution).

    python bench/distributed.py [--candidates 32] [--steps 200] [--width 0.2] [--resolution 32] [--two-threads]

Prints a markdown table (docs/distributed.md). Every worker runs one torch thread; the serial rows are the
same work in this process on one thread (with --two-threads, training also on two threads: what the same two
cores give without workers). Ray's start and a worker's first task (it rebuilds the supernet) are timed apart from the
candidates; the training rows' wall time includes starting the worker processes (spawn), and "per step"
counts from the first step to the last. A benchmark, not a test: wall time depends on the machine and its
load (the load average is printed).
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mcuforge.nas.ddp_train import train_supernet_workers  # noqa: E402
from mcuforge.nas.mcunet import SearchSpace  # noqa: E402
from mcuforge.nas.search_data import load_search_data, resize, validation_split  # noqa: E402
from mcuforge.nas.supernet import Supernet  # noqa: E402
from mcuforge.nas.train import TrainConfig, subnet_accuracy, train_supernet  # noqa: E402


def data(space: SearchSpace, seed: int = 0):
    """The digits' training data split as `mcuforge search` splits it (10 % validation), resized."""
    d = load_search_data("digits")
    train, val = validation_split(len(d.x_train), d.classes, seed)
    return (resize(d.x_train[train], space.resolution, False), d.y_train[train],
            resize(d.x_train[val], space.resolution, False), d.y_train[val])


def bench_ray(space: SearchSpace, candidates: int, rows: list[str]) -> None:
    from mcuforge.nas.parallel import RayEvaluator

    x, y, x_val, y_val = data(space)
    torch.manual_seed(0)
    net = Supernet(space)
    net.sort_channels()
    rng = random.Random(0)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(candidates + 8)))
    warm, archs = archs[:2], archs[2:candidates + 2]
    torch.set_num_threads(1)
    t = time.perf_counter()
    serial = [subnet_accuracy(net, a, x_val, y_val, x) for a in archs]
    t_serial = time.perf_counter() - t
    times = {}
    for workers in (1, 2):
        t = time.perf_counter()
        with RayEvaluator(net, x_val, y_val, x, workers=workers) as evaluator:
            t_init = time.perf_counter() - t
            t = time.perf_counter()
            evaluator.evaluate_many(warm)  # starts the workers; each rebuilds the supernet once
            t_warm = time.perf_counter() - t
            t = time.perf_counter()
            scores = evaluator.evaluate_many(archs)
            times[workers] = time.perf_counter() - t
        assert scores == serial, "a Ray score differs from the serial one"
        rows.append(f"| Ray candidate evaluation, {len(archs)} candidates | {workers} worker{'s' * (workers > 1)} | "
                    f"{times[workers]:.2f} s ({times[workers] / len(archs) * 1000:.0f} ms each) | "
                    f"{times[1] / times[workers]:.2f}x | Ray start {t_init:.1f} s, first tasks {t_warm:.1f} s |")
    rows.insert(len(rows) - 2, f"| Ray candidate evaluation, {len(archs)} candidates | serial, this process | "
                               f"{t_serial:.2f} s ({t_serial / len(archs) * 1000:.0f} ms each) | "
                               f"{times[1] / t_serial:.2f}x | scores equal the Ray ones |")


def share_bound(space: SearchSpace, x: np.ndarray, y: np.ndarray, batch: int, rounds: int = 8) -> float:
    """The time of one sandwich step on `batch` rows over that on batch/2 rows (one thread, this process,
    alternated so that a change of load hits both): the 2-worker speed-up with free communication."""
    from mcuforge.nas.train import sandwich_step, step_archs

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = Supernet(space)
    config = TrainConfig(subnets=2)
    xt, yt = torch.from_numpy(x[:batch]), torch.from_numpy(y[:batch])
    spent = {batch: 0.0, batch // 2: 0.0}
    for r in range(rounds + 1):
        for b in spent:
            t = time.perf_counter()
            net.zero_grad()
            sandwich_step(net, xt[:b], yt[:b], step_archs(space, config, r))
            if r:  # the first round warms up
                spent[b] += time.perf_counter() - t
    return spent[batch] / spent[batch // 2]


def bench_ddp(space: SearchSpace, steps: int, batch: int, rows: list[str], two_threads: bool) -> None:
    x, y, _, _ = data(space)
    bound = share_bound(space, x, y, batch)
    per_epoch = len(x) // batch
    config = TrainConfig(epochs=math.ceil(steps / per_epoch), batch_size=batch, subnets=2, checkpoint_every=10 ** 6)
    total = per_epoch * config.epochs
    results = {}

    def run(label: str, train) -> None:
        torch.manual_seed(0)
        net = Supernet(space)
        marks: list[float] = []
        t = time.perf_counter()
        train(net, lambda s, loss: marks.append(time.perf_counter()))
        wall = time.perf_counter() - t
        per_step = (marks[-1] - marks[0]) / (len(marks) - 1)
        results[label] = (wall, per_step, net)

    for threads in (1, 2) if two_threads else (1,):
        def single(net, on_step, threads=threads):
            torch.set_num_threads(threads)
            train_supernet(net, x, y, config, on_step=on_step)
        run(f"serial, this process, {threads} thread{'s' * (threads > 1)}", single)
    for workers in (1, 2):
        run(f"{workers} worker{'s' * (workers > 1)}", lambda net, on_step, w=workers: train_supernet_workers(
            net, x, y, config, workers=w, threads=1, on_step=on_step))
    one = results["1 worker"]
    same = all(torch.equal(a, b) for a, b in zip(results["serial, this process, 1 thread"][2].state_dict().values(),
                                                 one[2].state_dict().values()))
    for label, (wall, per_step, _) in results.items():
        note = "weights equal 1 worker's bit for bit" if label.startswith("serial, this process, 1") and same else ""
        if label == "2 workers":
            note = f"at most {bound:.2f}x: a step on {batch // 2} rows takes 1/{bound:.2f} of one on {batch}"
        rows.append(f"| DDP supernet training, {total} steps of {batch} | {label} | {wall:.1f} s "
                    f"({per_step * 1000:.0f} ms/step) | {one[0] / wall:.2f}x ({one[1] / per_step:.2f}x per step) | "
                    f"{note} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int, default=32)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--width", type=float, default=0.2)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--two-threads", action="store_true", help="also train in this process on 2 torch threads")
    args = p.parse_args()
    space = SearchSpace(args.width, args.resolution, 1, 10)
    load = os.getloadavg()[0]
    rows = ["| job | workers | wall time | speed-up vs 1 worker | notes |", "|---|---|--:|--:|---|"]
    bench_ray(space, args.candidates, rows)
    bench_ddp(space, args.steps, args.batch_size, rows, args.two_threads)
    print(f"space {space.name} (digits, 10 classes), {os.cpu_count()} cores, load average {load:.2f} at the start "
          f"and {os.getloadavg()[0]:.2f} at the end; torch {torch.__version__}\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
