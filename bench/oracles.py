"""NAS peak-SRAM oracles against the engine: on random networks of MCUNet's space (images at every W x R,
1000 classes, and 1-D signals), the shape-only oracles (nas.estimate layer by layer, nas.auto.auto_estimate)
against the engine's own scheduler and planner on `to_graph(spec)`, and each oracle's speed on one core.

    python bench/oracles.py [--n 2000] [--seed 0] [--jobs 2] [--max-resolution 224] [--out docs/oracles.md]

Per network: the layer plan's arena equals estimate's peak; the auto strategy's choice (strategy, patch
stage, fused blocks, extra MACs) and the chosen graph's live-set bound equal auto_estimate's; and how far
the planner's packing lands above that bound. Exits 1 if any network differs.
"""
from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mcuforge.engine.schedule import schedule  # noqa: E402
from mcuforge.nas import estimate, to_graph  # noqa: E402
from mcuforge.nas.auto import auto_estimate, auto_lower_bound  # noqa: E402
from mcuforge.nas.mcunet import RESOLUTIONS, WIDTHS, SearchSpace  # noqa: E402


def network(seed: int, max_resolution: int = RESOLUTIONS[-1]):
    """Network `seed`: a third 1-D signals (window 64..512, 1..12 channels), the rest images of the
    W x R grid up to `max_resolution`, 1000 classes."""
    rng = random.Random(seed)
    if seed % 3 == 0:
        space = SearchSpace(rng.choice(WIDTHS), rng.choice((64, 128, 256, 512)), channels=rng.choice((1, 3, 6, 12)),
                            classes=rng.choice((2, 6, 12)), signal=True)
    else:
        space = SearchSpace(rng.choice(WIDTHS), rng.choice([r for r in RESOLUTIONS if r <= max_resolution]),
                            classes=1000)
    return space.network(space.sample(rng))


def check(job: tuple[int, int]) -> dict:
    seed, max_resolution = job
    spec = network(seed, max_resolution)
    graph = to_graph(spec, seed=seed)
    layer = schedule(graph, "layer").plan
    chosen = schedule(graph, "auto")
    ours, est = auto_estimate(spec), estimate(spec)
    bound, extra, stage, blocks = chosen.considered[0]
    if bound >= layer.lower_bound:
        same = ours.strategy == "layer" and ours.peak_sram_bytes == layer.lower_bound
    else:
        where = (stage.first, stage.last, stage.grid) if stage else None
        same = (ours.peak_sram_bytes == bound and ours.stage == where
                and ours.blocks == tuple((b.layer, b.width) for b in blocks)
                and abs(ours.extra_macs_ratio - extra) < 1e-12)
    return {"seed": seed, "signal": spec.signal, "layer_bound": est.peak_sram_bytes == layer.lower_bound,
            "layer_arena": est.peak_sram_bytes == layer.arena_bytes, "auto_same": same,
            "strategy": chosen.strategy, "ours": ours.peak_sram_bytes, "arena": chosen.plan.arena_bytes,
            "lower": auto_lower_bound(spec) <= ours.peak_sram_bytes <= chosen.plan.arena_bytes}


def speed(seed: int, n: int = 300, repeats: int = 5) -> list[tuple[str, str, float]]:
    """(space, oracle, networks/s on one core, best of `repeats`)."""
    rows = []
    for space in (SearchSpace(0.5, 160), SearchSpace(1.0, 224),
                  SearchSpace(0.5, 128, channels=6, classes=6, signal=True)):
        rng = random.Random(seed)
        specs = [space.network(space.sample(rng)) for _ in range(n)]
        label = space.name + (f" 1-D, {space.channels} channels" if space.signal else "")
        for name, fn in (("layer", estimate), ("auto lower bound", auto_lower_bound), ("auto", auto_estimate)):
            best = 0.0
            for _ in range(repeats):
                start = time.perf_counter()
                for spec in specs:
                    fn(spec)
                best = max(best, n / (time.perf_counter() - start))
            rows.append((label, name, best))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="random networks to check (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="first network's seed")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--max-resolution", type=int, default=RESOLUTIONS[-1],
                   help="largest image resolution drawn (the engine's scheduler takes seconds per large network)")
    p.add_argument("--out", type=Path, default=None, help="write the report here (markdown)")
    args = p.parse_args()
    rates = speed(args.seed)  # before the pool starts, on an idle core
    start = time.perf_counter()
    seeds = [(seed, args.max_resolution) for seed in range(args.seed, args.seed + args.n)]
    with multiprocessing.Pool(args.jobs) as pool:
        results = []
        for result in pool.imap_unordered(check, seeds, chunksize=4):
            results.append(result)
            if len(results) % 50 == 0 or len(results) == args.n:
                print(f"\r{len(results)} / {args.n} networks, {time.perf_counter() - start:.0f} s", end="",
                      file=sys.stderr, flush=True)
        print(file=sys.stderr)
    seconds = time.perf_counter() - start
    images = [r for r in results if not r["signal"]]
    signals = [r for r in results if r["signal"]]
    strategies: dict[str, int] = {}
    for r in results:
        strategies[r["strategy"]] = strategies.get(r["strategy"], 0) + 1
    bad = [r["seed"] for r in results if not (r["layer_bound"] and r["auto_same"] and r["lower"])]

    def gap(rows: list[dict]) -> str:
        above = sorted((r["arena"] - r["ours"]) / r["arena"] for r in rows if r["arena"] > r["ours"])
        text = f"{len(rows) - len(above)} of {len(rows)} equal"
        if above:
            text += (f"; below it in {len(above)}, by {100 * above[len(above) // 2]:.1f} % median and "
                     f"{100 * above[-1]:.1f} % at most")
        return text

    n = len(results)
    lines = [
        "# NAS peak-SRAM oracles against the engine", "",
        f"`python bench/oracles.py --n {args.n} --seed {args.seed} --jobs {args.jobs} "
        f"--max-resolution {args.max_resolution}` "
        f"({seconds:.0f} s on {args.jobs} processes): {n} random networks of MCUNet's space "
        f"({len(images)} images, W 0.2..1.0 x R 48..{args.max_resolution}, 1000 classes; {len(signals)} 1-D "
        "signals), "
        "each built by `to_graph` and scheduled by the engine.", "",
        "| check | networks |", "|---|--:|",
        f"| layer by layer: `nas.estimate` peak = the layer plan's live-set bound | "
        f"{sum(r['layer_bound'] for r in results)} / {n} |",
        f"| layer by layer: `nas.estimate` peak = the layer plan's arena | {sum(r['layer_arena'] for r in results)} "
        f"/ {n} |",
        f"| auto: `auto_estimate` = the scheduler's best-ranked option (strategy, patch stage, fused blocks, "
        f"extra MACs, live-set bound) | {sum(r['auto_same'] for r in results)} / {n} |",
        f"| `auto_lower_bound` <= `auto_estimate` <= the engine's auto arena | {sum(r['lower'] for r in results)} "
        f"/ {n} |", "",
        "Strategies the engine chose: " + ", ".join(f"{k} {v}" for k, v in sorted(strategies.items())) + ".", "",
        "The scheduler packs its options best bound first and keeps the smallest arena; the packing can land "
        "above a bound, so `auto_estimate` (the best bound) is a lower bound of the engine's auto arena. "
        f"Against that arena it is: images {gap(images)}; signals {gap(signals)}.", "",
        "Speed on one core (best of 5 runs over the same 300 networks):", "",
        "| space | oracle | networks/s |", "|---|---|--:|",
        *[f"| {space} | {name} | {rate:,.0f} |" for space, name, rate in rates], "",
    ]
    if bad:
        lines.append(f"DIFFERENT: seeds {bad[:20]}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
