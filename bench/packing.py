"""Packing benchmark: the heuristic packer (greedy orders + local search) against the lower bound and
against the exact method (MILP, plan/exact.py) for one fixed schedule.

    python bench/packing.py [--graphs 200] [--time 2] [--models DIR] [--out FILE] [--seed 0]

Random graphs (chains with branches, residual adds, convolutions, depthwise, relu, reshape; seeded) of
growing size: for the small ones every plan is also solved exactly, so the heuristic's gap to the true
optimum is measured; the large ones are planned by the heuristic only. Then every model in --models.
"""
from __future__ import annotations

import argparse
import glob
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mcuforge.engine.plan import check_plan, plan_memory  # noqa: E402
from mcuforge.engine.plan.blocks import Block, live_bytes  # noqa: E402
from mcuforge.engine.plan.exact import exact_pack  # noqa: E402
from mcuforge.engine.plan.packing import pack  # noqa: E402
from mcuforge.engine.plan.planner import plan_blocks  # noqa: E402
from mcuforge.ir import Graph, Op, QuantParams, Tensor  # noqa: E402
from mcuforge.pipeline import load_model  # noqa: E402

Q = QuantParams.per_tensor(0.05, 0)


def random_graph(rng: random.Random, n_ops: int) -> Graph:
    """Like tests/test_plan.py's random_graphs: mostly a chain, sometimes a branch from an older tensor."""
    tensors: dict[str, Tensor] = {}
    ops: list[Op] = []

    def tensor(shape: tuple[int, ...], data: bool = False, dtype: str = "int8") -> str:
        name = f"{'w' if data else 't'}{len(tensors)}"
        tensors[name] = Tensor(name, shape, dtype, Q, np.ones(shape, dtype) if data else None)
        return name

    def op(kind: str, inputs: list[str], shape: tuple[int, ...], **attrs) -> str:
        out = tensor(shape)
        ops.append(Op(kind, tuple(inputs), (out,), attrs))
        return out

    def window(x: str, k: int, stride: int) -> tuple[int, int, dict]:
        _, h, w, _ = tensors[x].shape
        pad = (k - 1) // 2
        attrs = {"stride": (stride, stride), "dilation": (1, 1), "pad": (pad,) * 4}
        return (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1, attrs

    first = tensor((1, rng.randint(4, 16), rng.randint(4, 16), rng.randint(1, 9)))
    made = [first]
    while len(ops) < n_ops:
        x = made[-1] if rng.randrange(4) else rng.choice(made)
        _, h, w, c = tensors[x].shape
        kind = rng.choice(["conv", "conv", "dw", "dw", "relu", "add", "reshape"])
        if kind == "conv":
            k = rng.choice([1, 1, 3])
            oh, ow, attrs = window(x, k, rng.choice([1, 1, 1, 2]) if k == 3 and min(h, w) > 2 else 1)
            co = rng.randint(1, 24)
            y = op("CONV_2D", [x, tensor((co, k, k, c), True), tensor((co,), True, "int32")], (1, oh, ow, co),
                   activation="RELU", **attrs)
        elif kind == "dw":
            k = rng.choice([1, 3, 5])
            oh, ow, attrs = window(x, k, rng.choice([1, 1, 1, 2]) if min(h, w) > 2 else 1)
            y = op("DEPTHWISE_CONV_2D", [x, tensor((1, k, k, c), True), tensor((c,), True, "int32")],
                   (1, oh, ow, c), activation="RELU6", multiplier=1, **attrs)
        elif kind == "relu":
            y = op("RELU", [x], (1, h, w, c))
        elif kind == "add":
            y = op("ADD", [x, rng.choice([m for m in made if tensors[m].shape == (1, h, w, c)])], (1, h, w, c),
                   activation="NONE")
        else:
            y = op("RESHAPE", [x], (1, w, h, c))
        made.append(y)
    extra = rng.sample(made, min(len(made), rng.randint(0, 2)))
    return Graph(tensors, tuple(ops), (first,), tuple(dict.fromkeys([made[-1], *extra])))


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


def _pct(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.0f}%)" if whole else "0"


# (ops, share of --graphs, exact time limit: --time, --time-large or none (heuristic only))
SIZES = ((4, 1, "time"), (8, 1, "time"), (16, 1, "time"), (24, 1, "time"), (32, 1, "time"), (48, 1, "time"),
         (64, 4, "time"), (128, 20, "time_large"), (256, 20, None))


def _stat(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.mean(values))} / {fmt.format(max(values))}" if values else "-"


def random_rows(n_graphs: int, seed: int, times: dict[str, float]) -> list[str]:
    rows = ["| ops | graphs | blocks (mean / max) | heuristic at bound | heuristic over bound % (mean / max) "
            "| exact: smaller | exact: proven optimal | optimum over bound | heuristic over optimum % "
            "(mean / max) | heuristic plan ms (mean / max) | exact plan s (mean / max) |",
            "|---:|---:|---|---:|---|---:|---:|---:|---|---|---|"]
    for n_ops, share, limit in SIZES:
        rng = random.Random(seed * 1000 + n_ops)
        count = max(n_graphs // share, 1)
        exact_time = times[limit] if limit else 0.0
        n_blocks, over_bound, over_opt, ms, secs = [], [], [], [], []
        at_bound = better = proven = opt_above = 0
        for _ in range(count):
            graph = random_graph(rng, n_ops)
            n_blocks.append(len(plan_blocks(graph)))
            heur, t = _timed(plan_memory, graph, exact=False)
            check_plan(graph, heur)
            ms.append(t * 1e3)
            over_bound.append(100 * heur.overhead)
            if heur.optimal:
                at_bound += 1
                over_opt.append(0.0)
            if heur.optimal or not limit:
                continue
            best, t = _timed(plan_memory, graph, exact=True, exact_time=exact_time)
            check_plan(graph, best)
            secs.append(t)
            better += best.arena_bytes < heur.arena_bytes
            if best.optimal:
                proven += 1
                opt_above += best.arena_bytes > best.lower_bound
                over_opt.append(100 * (heur.arena_bytes / best.arena_bytes - 1))
        exact = bool(limit)
        rows.append(f"| {n_ops} | {count} | {_stat(n_blocks, '{:.1f}')} | {_pct(at_bound, count)} "
                    f"| {_stat(over_bound)} | {_pct(better, count - at_bound) if exact else '-'} "
                    f"| {_pct(proven + at_bound, count) if exact else '-'} | {_pct(opt_above, count) if exact else '-'} "
                    f"| {_stat(over_opt) if exact else '-'} | {_stat(ms)} | {_stat(secs, '{:.3f}')} |")
        print(rows[-1], flush=True)
    return rows


def random_blocks(rng: random.Random, n: int) -> list[Block]:
    """Block sets as tests/test_plan_exact.py builds them, denser: n blocks over n/2 steps, spans of 1-4
    steps, 60% of constant size (few sizes), the rest shrinking (an in-place buffer)."""
    steps, blocks = max(n // 2, 1), []
    for _ in range(n):
        start = rng.randrange(steps)
        end = min(steps - 1, start + rng.randrange(4))
        if rng.random() < 0.6:
            footprint = (rng.choice([4, 8, 12, 20, 28, 44]),) * (end - start + 1)
        else:
            footprint = tuple(sorted((4 * rng.randint(1, 12) for _ in range(end - start + 1)), reverse=True))
        blocks.append(Block(("t",), None, start, end, footprint))
    return blocks


def block_rows(count: int, seed: int, exact_time: float) -> list[str]:
    rows = ["| blocks | sets | heuristic at bound | heuristic over bound % (mean / max) | exact: smaller "
            "| exact: proven optimal | optimum over bound | heuristic over optimum % (mean / max) "
            "| heuristic ms (mean / max) | exact s (mean / max) |", "|---:|---:|---:|---|---:|---:|---:|---|---|---|"]
    for n in (10, 20, 30, 40):
        rng = random.Random(seed * 1000 + n)
        over_bound, over_opt, ms, secs = [], [], [], []
        at_bound = better = proven = opt_above = 0
        for _ in range(count):
            blocks = random_blocks(rng, n)
            live = live_bytes(blocks, n)
            lb = max(live)
            heur, t = _timed(pack, blocks, lb, live.index(lb), 200)
            ms.append(t * 1e3)
            over_bound.append(100 * (heur.arena_bytes / lb - 1))
            if heur.arena_bytes == lb:
                at_bound += 1
                over_opt.append(0.0)
                continue
            found = exact_pack(blocks, lb, exact_time, heur)
            secs.append(found.seconds)
            better += found.arena_bytes < heur.arena_bytes
            if found.optimal:
                proven += 1
                opt_above += found.arena_bytes > lb
                over_opt.append(100 * (heur.arena_bytes / found.arena_bytes - 1))
        rows.append(f"| {n} | {count} | {_pct(at_bound, count)} | {_stat(over_bound)} "
                    f"| {_pct(better, count - at_bound)} | {_pct(proven + at_bound, count)} "
                    f"| {_pct(opt_above, count)} | {_stat(over_opt)} | {_stat(ms)} | {_stat(secs, '{:.3f}')} |")
        print(rows[-1], flush=True)
    return rows


def model_rows(models: str, exact_time: float) -> list[str]:
    rows = ["| model | ops | blocks | lower bound (B) | heuristic (B) | heuristic ms | exact (B) | proven optimal "
            "| exact s |", "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for path in sorted(glob.glob(os.path.join(models, "*.tflite"))):
        graph = load_model(path)
        heur, t = _timed(plan_memory, graph, exact=False)
        check_plan(graph, heur)
        if heur.optimal:
            exact_cell, proven, secs = f"{heur.arena_bytes}", "yes (at bound)", "-"
        else:
            best, t_exact = _timed(plan_memory, graph, exact=True, exact_time=exact_time)
            check_plan(graph, best)
            exact_cell, secs = f"{best.arena_bytes}", f"{t_exact:.2f}"
            proven = "yes (MILP)" if best.optimal else "no (time limit)"
        rows.append(f"| {os.path.basename(path)} | {len(graph.ops)} | {len(plan_blocks(graph))} "
                    f"| {heur.lower_bound} | {heur.arena_bytes} | {t * 1e3:.1f} | {exact_cell} | {proven} | {secs} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=200, help="random graphs per size (fewer for large ones)")
    ap.add_argument("--time", type=float, default=2.0, help="time limit of one exact solve, seconds")
    ap.add_argument("--time-large", type=float, default=10.0, help="the same for the 128-op graphs")
    ap.add_argument("--models", default=str(ROOT.parent / "shared" / "models"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="also write the tables (markdown) to this file")
    args = ap.parse_args()
    text = ["## Packing: heuristic vs lower bound vs exact", "",
            f"Random graphs (seed {args.seed}; exact time limit {args.time} s, {args.time_large} s at 128 ops; "
            "in place on, align 4). A plan tries in place, then without when above the bound: an exact plan "
            "may hold two solves.", ""]
    text += random_rows(args.graphs, args.seed, {"time": args.time, "time_large": args.time_large})
    text += ["", f"Random block sets (no graph; heuristic = greedy orders + 200 local-search steps; exact time "
             f"limit {args.time} s):", ""]
    text += block_rows(args.graphs, args.seed, args.time)
    text += ["", "Reference models:", ""]
    text += model_rows(args.models, args.time)
    if args.out:
        Path(args.out).write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
