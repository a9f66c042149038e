"""`mcuforge compress sweep`: train every combination of a pruning level and a weight format, deploy each as C,
measure it, and rank them by a quality metric.

    data = load_search_data("digits")
    report = sweep(data, "sweep_out", prunes=(0, 0.5), weights=("int8", "int4"), preset=PRESETS["quick"])
    report["best"]        # the combination the metric ranks first; report["combinations"]: all of them

1. The baseline (compress.baseline): a float network trained on the data (`--arch` tiny_cnn or mobilenet, nas.deploy.train_network:
   resumable, one checkpoint per epoch), or a given torch.export program (`--model`). Its test accuracy and
   float32 size (4 bytes per weight and bias, batch norm folded) are the reference.
2. Each combination fine-tunes the baseline's float graph with quantization-aware training into its weight
   format (quant.qat, weights=...), pruning `prune` of the weights by magnitude on a gradual schedule over
   the first PRUNE_END of the steps (compress.prune, global scope, no tensor beyond PRUNE_CAP), with Adam
   and a cosine learning rate.
   "mixed" takes a format per layer (compress.mixed) under `flash_budget`.
3. Deployment: the converted int8 graph with each weight tensor stored in the smallest format that holds it
   exactly (formats "auto": pruned tensors become sparse or sparse:int4 when that is smaller), compiled for
   the board's core (flash exact, code included, at -Os), run as C on the host over the whole test split
   (test_accuracy, and same_predictions: the C's class equals the fake-quantized model's on every test
   sample), checked C = reference = TFLM on VERIFY_SAMPLES test samples, and one inference counted in QEMU
   on the core (latency_ms: instructions at one per cycle at the board's clock).
4. Ranking: `quality` (compress.quality; a metric of the result's fields) and the Pareto front of test
   accuracy against flash, drawn in pareto.png.

Combinations run one after another in this process, or as Ray tasks (`workers` local CPUs, or the cluster at
`ray_address`), one CPU each. Every finished combination is saved (runs/KEY.json, runs/KEY.tflite); a resumed
sweep runs only the missing ones, so a kill loses the combinations in progress. OUT ends with report.json,
pareto.png, best.tflite and c/ (the best combination's C library).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..data import shuffled_batches
from ..errors import UsageError, shown
from ..ir import Graph
from .baseline import (ARCHS, PRESETS_WIDTH, baseline_network, float_flash, load_baseline, train_baseline,
                       training_split)
from .quality import DEFAULT_METRIC, metric, pareto_front

MARKER = ".mcuforge-sweep"
PRUNE_END = 0.6  # the pruning schedule reaches its target after this share of the QAT steps
PRUNE_UPDATES = 20  # mask updates over the schedule
PRUNE_CAP = 0.9  # no weight tensor loses more than this share (global pruning would empty a classifier)
VERIFY_SAMPLES = 32
DEFAULT_BOARD = "stm32f746"


@dataclass(frozen=True)
class SweepPreset:
    epochs: int  # of the float baseline
    qat_epochs: int  # of each combination
    max_train: int | None  # training samples used (all when None)
    batch_size: int = 64
    lr: float = 0.05  # baseline: SGD, cosine
    qat_lr: float = 1e-3  # combinations: Adam, cosine
    width: float = PRESETS_WIDTH  # mobilenet's width multiplier


PRESETS = {"quick": SweepPreset(epochs=10, qat_epochs=3, max_train=2000),
           "default": SweepPreset(epochs=30, qat_epochs=10, max_train=None)}


@dataclass(frozen=True)
class Combination:
    prune: float
    weights: str  # a trainable format (quant.weight_grids.TRAINABLE) or "mixed"

    @property
    def key(self) -> str:
        return f"p{round(100 * self.prune):02d}-{self.weights.replace(':', '')}"


@dataclass
class Shared:
    """What every combination of a sweep needs (put into Ray's object store once)."""

    float_graph: Graph
    x_train: np.ndarray  # IR layout, float32
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    preset: SweepPreset
    seed: int
    core: str | None  # the board's core when mcuforge targets it (flash with code, QEMU latency)
    clock_hz: int
    threads: int = 1


@dataclass(frozen=True)
class Job:
    """One combination to train (a Ray task with the sweep's Shared)."""

    combination: Combination
    formats: dict[str, str] = field(default_factory=dict)  # "mixed": weight tensor -> format


# ---------------------------------------------------------------- one combination


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    return shuffled_batches(n, batch_size, (seed, 11, epoch))


def train_combination(job: Job, shared: Shared):
    """The QATModel of `job` after its fine-tuning (see the module docstring, step 2)."""
    import torch
    import torch.nn.functional as F

    from ..quant.qat import prepare_qat
    from .prune import MagnitudePruner

    torch.manual_seed(shared.seed)
    g = shared.float_graph
    shape = g[g.inputs[0]].shape[1:]
    x = torch.from_numpy(np.ascontiguousarray(shared.x_train, np.float32).reshape(len(shared.x_train), *shape))
    y = torch.from_numpy(np.asarray(shared.y_train, np.int64))
    weights = job.formats if job.combination.weights == "mixed" else job.combination.weights
    qat = prepare_qat(g, calibration=x[:512].numpy(), weights=weights)
    preset = shared.preset
    batch = min(preset.batch_size, len(x))
    per_epoch = len(_batches(len(x), batch, shared.seed, 0))
    steps = max(1, per_epoch * preset.qat_epochs)
    pruner = None
    if job.combination.prune > 0:
        pruner = MagnitudePruner(qat.weight_parameters(), job.combination.prune, end=max(1, int(PRUNE_END * steps)),
                                 every=max(1, steps // PRUNE_UPDATES), max_share=max(PRUNE_CAP, job.combination.prune))
    optimizer = torch.optim.Adam(qat.parameters(), lr=preset.qat_lr)
    step = 0
    qat.train()
    for epoch in range(preset.qat_epochs):
        for idx in _batches(len(x), batch, shared.seed, epoch):
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * preset.qat_lr * (1 + math.cos(math.pi * step / steps))
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(qat(x[idx]), y[idx]).backward()
            optimizer.step()
            if pruner is not None:
                pruner.step()
            step += 1
    return qat.eval()


def _fake_predictions(qat, x: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    shape = qat.graph[qat.graph.inputs[0]].shape[1:]
    with torch.no_grad():
        return np.concatenate([qat(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32)
                                                    .reshape(-1, *shape))).argmax(1).numpy()
                               for i in range(0, len(x), batch)])


def measure_deployment(graph: Graph, x_test: np.ndarray, y_test: np.ndarray, core: str | None,
                       clock_hz: int) -> dict[str, Any]:
    """Compile `graph` (formats set) for `core` and measure it (see the module docstring, step 3); the C's
    class per test sample under "predictions"."""
    from ..frontends.tflite_writer import write_tflite
    from ..ir.formats import format_summary
    from ..nas.deploy import OPT
    from ..pipeline import compile_model
    from ..quant.ptq import quantize_input
    from ..targets.host import HostModel
    from ..verify import verify

    compiled = compile_model(graph, "model", target=core or "host", opt=OPT)
    shape = graph[graph.inputs[0]].shape[1:]
    given = [quantize_input(graph, xi.reshape(1, *shape)) for xi in x_test]
    host = HostModel.build(compiled.lib)
    predictions = np.array([int(np.argmax(out[0])) for out in host.run_batch([[q] for q in given])])
    tflite = write_tflite(graph)
    check = verify(graph, samples=0, given=given[:VERIFY_SAMPLES], tflite_bytes=tflite, compiled=compiled)
    instructions = None
    if core is not None:
        from ..targets.cortex_m import CortexMModel

        counts, _ = CortexMModel.build(compiled.lib, core, OPT).count_instructions_batch([[given[0]]])
        instructions = int(counts[0])
    summary = format_summary(graph)
    report = compiled.report
    return {"test_accuracy": float(np.mean(predictions == y_test)), "flash_bytes": int(report.flash_bytes),
            "flash_includes_code": report.flash_code_bytes is not None,
            "weight_bytes": sum(r["bytes"] for r in summary.values()),
            "formats": {f: r["tensors"] for f, r in summary.items()},
            "peak_sram_bytes": int(report.sram_bytes), "macs": int(report.macs),
            "instructions": instructions,
            "latency_ms": None if instructions is None else instructions / clock_hz * 1e3,
            "bit_exact": bool(check.ok and check.tflm_checked), "predictions": predictions, "tflite": tflite}


def run_combination(job: Job, shared: Shared) -> dict[str, Any]:
    """Train, deploy and measure one combination: its result (the fields of report.json's combinations, plus
    "tflite", the deployed model's bytes)."""
    import torch

    from ..ir.formats import choose_formats
    from ..quant.qat import convert

    torch.set_num_threads(shared.threads)
    start = time.perf_counter()
    qat = train_combination(job, shared)
    trained = time.perf_counter()
    fake = _fake_predictions(qat, shared.x_test)
    graph = choose_formats(convert(qat), "auto")
    measured = measure_deployment(graph, shared.x_test, shared.y_test, shared.core, shared.clock_hz)
    predictions = measured.pop("predictions")
    weights = list(qat.weight_parameters().values())
    zeros = sum(int((w.detach() == 0).sum()) for w in weights) / max(1, sum(w.numel() for w in weights))
    return {"key": job.combination.key, "prune": job.combination.prune, "weights": job.combination.weights,
            **({"layer_formats": job.formats} if job.combination.weights == "mixed" else {}),
            "zeros": zeros, "fake_test_accuracy": float(np.mean(fake == shared.y_test)),
            "same_predictions": bool(np.array_equal(fake, predictions)), **measured,
            "train_seconds": trained - start, "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------- the sweep


def check_sweep_folder(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {shown(str(out))} is a file: give a folder")
    if resume:
        if not (out / MARKER).exists():
            raise UsageError(f"--resume: {shown(str(out))} holds no sweep to resume; start without --resume")
        return
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {shown(str(out))} is not empty: choose a new or empty folder, or add --resume")


def combinations(prunes: Sequence[float], weights: Sequence[str], mixed: bool) -> list[Combination]:
    from ..quant.weight_grids import check_format

    for p in prunes:
        if not 0 <= p < 1:
            raise UsageError(f"--prune {p}: give shares of zeros in [0, 1), e.g. 0,0.5,0.75")
    for w in weights:
        check_format(w)
    return [Combination(float(p), w) for p in prunes for w in (*weights, *(("mixed",) if mixed else ()))]


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(tmp, path)


def _run_all(jobs: list[Job], shared: Shared, workers: int, ray_address: str | None,
             done: Callable[[dict], None]) -> None:
    if not jobs:
        return
    if workers <= 1 and ray_address is None:
        for job in jobs:
            done(run_combination(job, shared))
        return
    from ..nas.parallel import _ray, start_ray

    ray = _ray()
    owned = start_ray(workers, ray_address)
    try:
        task = ray.remote(num_cpus=1)(run_combination)
        shared_ref = ray.put(shared)  # the data once, not once per task
        pending = [task.remote(job, shared_ref) for job in jobs]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done(ray.get(ready[0]))
    finally:
        if owned:
            ray.shutdown()


def sweep(data, out: str | os.PathLike, *, prunes: Sequence[float] = (0.0, 0.25, 0.5, 0.75),
          weights: Sequence[str] = ("int8", "int4", "ternary", "pow2", "codebook:4"), model: str | None = None,
          arch: str = "tiny_cnn", preset: SweepPreset = PRESETS["default"], board=None, mixed: bool = False,
          flash_budget: int | None = None, metric_name: str = DEFAULT_METRIC, seed: int = 0, resume: bool = False,
          workers: int = 1, ray_address: str | None = None, progress: Callable[[str], None] | None = None,
          bars=None) -> dict[str, Any]:
    """Runs the sweep (see the module docstring) and returns the report written to OUT/report.json."""
    from ..nas.deploy import ir_layout
    from ..targets.boards import BOARDS

    out = Path(out)
    todo = combinations(prunes, weights, mixed)
    rank = metric(metric_name)
    if mixed and flash_budget is None:
        raise UsageError("--mixed needs --flash-budget: the flash the per-layer formats must fit, e.g. 64K")
    board = board or BOARDS[DEFAULT_BOARD]
    check_sweep_folder(out, resume)
    given = load_baseline(model, data) if model else None  # a bad file is refused before OUT is written
    if given is None:
        baseline_network(arch, data, preset.width)  # an unknown arch too
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("mcuforge compress sweep\n")
    say = progress or (lambda msg: None)
    bar = bars or (lambda description, total: (lambda n: None))
    t0 = time.perf_counter()
    base = given or train_baseline(data, out, arch, preset, seed, resume, say)
    say(f"baseline {base.source}: float test accuracy {base.test_accuracy:.4f}, float32 weights "
        f"{base.flash_bytes:,} B")
    x_train, y_train = training_split(data, preset, seed)
    shared = Shared(base.graph, ir_layout(x_train), y_train, ir_layout(data.x_test), data.y_test, preset, seed,
                    board.target, board.clock_hz)
    formats: dict[str, str] = {}
    if mixed:
        from .mixed import choose_layer_formats

        formats, note = choose_layer_formats(base.graph, shared.x_train, y_train, weights, flash_budget, shared.core)
        say(note)
    jobs = [Job(c, formats if c.weights == "mixed" else {})
            for c in todo if not (out / "runs" / f"{c.key}.json").exists()]
    say(f"{len(todo) - len(jobs)} of {len(todo)} combinations done already; training {len(jobs)}"
        + (f" on {workers} Ray workers" if workers > 1 or ray_address else ""))
    advance = bar("combinations", len(jobs))
    t_runs = time.perf_counter()

    def done(result: dict) -> None:
        (out / "runs" / f"{result['key']}.tflite").write_bytes(result.pop("tflite"))
        _write_json(out / "runs" / f"{result['key']}.json", result)
        say(f"{result['key']}: test accuracy {result['test_accuracy']:.4f}, flash {result['flash_bytes']:,} B, "
            f"SRAM {result['peak_sram_bytes']:,} B, same predictions {result['same_predictions']}")
        advance(1)

    _run_all(jobs, shared, workers, ray_address, done)
    runs_seconds = time.perf_counter() - t_runs
    results = [json.loads((out / "runs" / f"{c.key}.json").read_text()) for c in todo]
    for r in results:
        r["float_test_accuracy"] = base.test_accuracy
        r["float_flash_bytes"] = base.flash_bytes
        r["quality"] = rank(r)
    fitting = [r for r in results if flash_budget is None or r["flash_bytes"] <= flash_budget]
    best = max(fitting or results, key=lambda r: r["quality"])
    front = [results[i]["key"] for i in pareto_front(results)]
    report = {"data": data.source, "baseline": base.source, "preset": asdict(preset), "seed": seed,
              "board": board.name, "core": shared.core, "metric": metric_name, "flash_budget": flash_budget,
              "workers": workers, "ray_address": ray_address,
              "float": {"test_accuracy": base.test_accuracy, "flash_bytes": base.flash_bytes},
              "combinations": results, "best": best, "pareto": front,
              "wall_seconds": {"total": time.perf_counter() - t0, "combinations": runs_seconds,
                               "combinations_run": len(jobs)}}
    _deploy_best(out, best, shared.core)
    _write_json(out / "report.json", report)
    try:
        from .plots import plot_pareto

        plot_pareto(results, front, best["key"], out / "pareto.png", f"{data.source}: {base.source}")
    except ImportError:
        say("pareto.png not drawn: matplotlib is not installed")
    say(f"best by {metric_name}: {best['key']} (test accuracy {best['test_accuracy']:.4f}, flash "
        f"{best['flash_bytes']:,} B, quality {best['quality']:.2f})")
    return report


def _deploy_best(out: Path, best: dict, core: str | None) -> None:
    """OUT/best.tflite and OUT/c/: the best combination's model and its C library."""
    import shutil

    from ..ir.formats import choose_formats
    from ..nas.deploy import OPT
    from ..pipeline import compile_model, load_model, write_library

    shutil.copyfile(out / "runs" / f"{best['key']}.tflite", out / "best.tflite")
    graph = choose_formats(load_model(out / "best.tflite"), "auto")
    write_library(compile_model(graph, "model", target=core or "host", opt=OPT).lib, out / "c")


__all__ = ["ARCHS", "Combination", "Job", "PRESETS", "Shared", "SweepPreset", "baseline_network", "combinations", "float_flash",
           "measure_deployment", "run_combination", "sweep", "train_combination"]
