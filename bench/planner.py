"""NAS cost-model benchmark: shape-only estimates per second vs the full planner, and their equality.

    python bench/planner.py [--n 2000] [--seed 0] [--check 50]

Samples N random MobileNetV2-sized candidates (mcuforge.nas.random_spec), times mcuforge.nas.estimate on
all of them (one Python thread, wall clock, sampling excluded): once with its shape caches cleared (cold)
and the best of three passes (warm). On the first `--check` of them it builds the real graph, times the
full planner (plan_memory) and checks the estimate against compile_model: peak SRAM = arena = lower
bound, flash as the code generator stores it, MACs and op count, and weight+bias bytes against analyze.
Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mcuforge.engine.plan import plan_memory  # noqa: E402
from mcuforge.nas import Estimate, NetworkSpec, cost, estimate, random_spec, to_graph  # noqa: E402
from mcuforge.pipeline import analyze, compile_model  # noqa: E402

TARGET = 2000  # networks per second on one core (the goal)


@dataclass(frozen=True)
class Result:
    n: int
    seed: int
    cold_per_s: float  # estimate() throughput, shape caches cleared first
    warm_per_s: float  # best of three passes
    mean_ops: float
    mean_blocks: float
    checked: int
    equal_peak: int  # estimate == arena == lower bound
    equal_flash: int  # estimate == compile_model's flash
    equal_rest: int  # MACs, op count and weight+bias bytes (analyze)
    above_bound: tuple[str, ...]  # specs whose arena is above the lower bound
    planner_per_s: float  # plan_memory on a built graph
    graph_per_s: float  # to_graph + plan_memory


def _throughput(specs: list[NetworkSpec]) -> float:
    start = time.perf_counter()
    for spec in specs:
        estimate(spec)
    return len(specs) / (time.perf_counter() - start)


def _check(spec: NetworkSpec, est: Estimate) -> tuple[bool, bool, bool, bool, float, float]:
    """(peak equal, flash equal, the rest equal, arena above bound, planner s, to_graph s)."""
    start = time.perf_counter()
    graph = to_graph(spec)
    built = time.perf_counter()
    plan = plan_memory(graph)
    planned = time.perf_counter()
    compiled = compile_model(graph)
    report = analyze(graph)
    peak = est.peak_sram_bytes == plan.arena_bytes == plan.lower_bound == compiled.report.arena_bytes
    rest = (est.macs, est.ops, est.param_bytes) == (report.macs, len(graph.ops), report.param_bytes)
    return (peak, est.flash_bytes == compiled.report.flash_weights_bytes, rest,
            plan.arena_bytes > plan.lower_bound, planned - built, built - start)


def measure(n: int = 2000, seed: int = 0, check: int = 50) -> Result:
    rng = random.Random(seed)
    specs = [random_spec(rng) for _ in range(n)]
    cost._depthwise.cache_clear()
    cost._column.cache_clear()
    cold = _throughput(specs)
    warm = max(_throughput(specs) for _ in range(3))
    estimates = [estimate(s) for s in specs]
    rows = [_check(s, e) for s, e in zip(specs[:check], estimates[:check])]
    plan_s = sum(r[4] for r in rows)
    graph_s = sum(r[5] for r in rows)
    return Result(
        n=n, seed=seed, cold_per_s=cold, warm_per_s=warm,
        mean_ops=statistics.fmean(e.ops for e in estimates),
        mean_blocks=statistics.fmean(sum(st.repeats for st in s.stages) for s in specs),
        checked=len(rows), equal_peak=sum(r[0] for r in rows), equal_flash=sum(r[1] for r in rows),
        equal_rest=sum(r[2] for r in rows),
        above_bound=tuple(repr(s) for s, r in zip(specs, rows) if r[3]),
        planner_per_s=len(rows) / plan_s if plan_s else 0.0,
        graph_per_s=len(rows) / (plan_s + graph_s) if rows else 0.0)


def markdown(r: Result) -> str:
    lines = [
        f"NAS cost model: {r.n} random MobileNetV2-sized candidates (seed {r.seed}), one Python thread.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| `estimate()` throughput, cold caches | {r.cold_per_s:,.0f} networks/s |",
        f"| `estimate()` throughput, warm (best of 3) | {r.warm_per_s:,.0f} networks/s "
        f"({1e6 / r.warm_per_s:.0f} µs per network) |",
        f"| target | {TARGET:,} networks/s: {'met' if min(r.cold_per_s, r.warm_per_s) >= TARGET else 'NOT met'} |",
        f"| mean ops / blocks per network | {r.mean_ops:.1f} / {r.mean_blocks:.1f} |",
        f"| peak = arena = lower bound of the full planner | {r.equal_peak}/{r.checked} |",
        f"| flash = code generator's | {r.equal_flash}/{r.checked} |",
        f"| MACs, ops, weight+bias bytes = analyze's | {r.equal_rest}/{r.checked} |",
        f"| full planner (`plan_memory`, graph built) | {r.planner_per_s:,.1f} networks/s |",
        f"| full planner with `to_graph` | {r.graph_per_s:,.1f} networks/s |",
    ]
    if r.planner_per_s:
        lines.append(f"| speed-up over `plan_memory` | {r.warm_per_s / r.planner_per_s:,.0f}x |")
    lines += [f"\nArena above the lower bound: {s}" for s in r.above_bound]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="random candidates to estimate (default 2000)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    ap.add_argument("--check", type=int, default=50, help="candidates checked against the full planner")
    args = ap.parse_args(argv)
    if args.n < 1 or args.check < 0:
        ap.error("--n must be positive and --check not negative")
    result = measure(args.n, args.seed, min(args.check, args.n))
    print(markdown(result))
    ok = result.equal_peak == result.equal_flash == result.equal_rest == result.checked
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
