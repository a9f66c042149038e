"""`mcuforge search`: from a dataset and a board to verified C, TinyNAS's two stages end to end.

    report = search(load_search_data("digits"), Budgets(sram_bytes=..., flash_bytes=...), "out/", PRESETS["quick"])

1. Stage 1 picks the (width, resolution) space with the most compute that fits (nas.stage1), over the
   resolutions that suit the data (`resolutions_for`); the data is resized to the chosen resolution.
2. A validation split is carved from the training data (never the test split).
3. The space's supernet is trained with the sandwich rule (nas.train; checkpointed in the output folder,
   `resume=True` continues after a kill).
4. Evolution searches it under the budgets (nas.evolution; fitness: the subnet's validation accuracy with
   its batch norms recalibrated); random search with the same number of evaluations runs beside it. Every
   evaluation is saved (`evaluations.json`), so a resumed search replays both without evaluating again.
5. The winner is extracted, fine-tuned from its inherited weights, quantized (PTQ, then QAT), compiled,
   checked against the budgets on the exact compile, verified bit for bit (C = reference = TFLM), and its
   int8 C code is scored on the test split (nas.deploy).
6. The baseline S-MbV2 (nas.baseline: MobileNetV2 scaled to the largest width and resolution that fit the
   same budgets under the same oracles) is trained from scratch for the epochs the winner's weights saw
   (supernet + fine-tuning), with the fine-tuning recipe, and deployed the same way.
The output folder gets the C library (`c/`), `model_int8.tflite`, `report.json`, `search.png` (the search
curves) and `search.log`; `--resume` continues after a kill from the checkpoints there (supernet.pt every
50 steps, finetune.pt and baseline.pt every epoch, evaluations.json after every evaluation).

Not yet (issue 15): the audio front-end, Ray and DDP.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UsageError, shown
from ..progress import Task
from ..targets.boards import Board
from .evolution import EvolutionConfig, budget_check, evolve, random_search, spec_check
from .mcunet import Arch, SearchSpace
from .stage1 import Budgets
from .train import TrainConfig, subnet_accuracy, train_supernet

CORES = ("cortex-m4", "cortex-m7")  # with a board, the deployed networks are counted in QEMU on both
MARKER = ".mcuforge-search"  # an output folder search wrote (and may resume in)
MIN_PER_CLASS = 2


@dataclass(frozen=True)
class Preset:
    epochs: int  # supernet training
    finetune_epochs: int
    population: int
    generations: int
    stage1_samples: int
    batch_size: int = 64
    max_train: int | None = None  # train on at most this many samples (quick runs on large data)
    qat_epochs: int = 1  # quantization-aware fine-tuning of the winner and the baselines (0: PTQ only)
    baselines: bool = True  # train and deploy the S-MbV2 baseline under the same budgets


PRESETS = {"quick": Preset(epochs=8, finetune_epochs=8, population=16, generations=4, stage1_samples=200,
                           batch_size=32, max_train=4000),
           "default": Preset(epochs=30, finetune_epochs=10, population=100, generations=500, stage1_samples=1000,
                             qat_epochs=2),
           "full": Preset(epochs=120, finetune_epochs=30, population=100, generations=500, stage1_samples=1000,
                          qat_epochs=5)}


@dataclass(frozen=True, eq=False)
class SearchData:
    """Samples channels first (NCHW images, NCL signals), float32; int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    signal: bool
    classes: int
    source: str


def _as_samples(x: np.ndarray, signal: bool, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "uif":
        raise UsageError(f"{what} holds {x.dtype} values: give numbers")
    scale = np.float32(255.0) if x.dtype == np.uint8 else np.float32(1.0)
    x = x.astype(np.float32) / scale
    if signal:
        if x.ndim != 3:
            raise UsageError(f"{what} has shape {list(x.shape)}: signals are (N, channels, length)")
        return x
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, H, W, C) -> NCHW
    raise UsageError(f"{what} has shape {list(x.shape)}: images are (N, H, W) or (N, H, W, C)")


FOLDER_SIZE = (64, 64)  # images of a class-folder dataset are resized to this (height, width)
FOLDER_TEST_FRACTION = 0.2


def load_search_data(source: str, signal: bool = False) -> SearchData:
    """"digits" (scikit-learn's, built in), an .npz with x_train, y_train, x_test, y_test, or a folder with
    one sub-folder of images per class (resized to FOLDER_SIZE; a seeded fifth held back as the test split)."""
    if source == "digits":
        from ..data import load_digits

        d = load_digits()
        arrays = {"x_train": d.x_train, "y_train": d.y_train, "x_test": d.x_test, "y_test": d.y_test}
    elif Path(source).is_dir() and not signal:
        from ..data import load_image_folder, split_indices

        try:
            folder = load_image_folder(source, FOLDER_SIZE)
        except ImportError as e:
            raise UsageError(str(e)) from None
        if len(folder.y) < 2:
            raise UsageError(f"--data {shown(source)}: {len(folder.y)} image(s); a search needs many per class")
        train, test = split_indices(len(folder.y), FOLDER_TEST_FRACTION, seed=0)
        arrays = {"x_train": folder.x[train], "y_train": folder.y[train], "x_test": folder.x[test],
                  "y_test": folder.y[test]}
    else:
        path = Path(source)
        if not path.is_file() or path.suffix.lower() != ".npz":
            raise UsageError(f"--data {shown(source)}: give an .npz with x_train, y_train, x_test, y_test, or 'digits'")
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
            if missing:
                raise UsageError(f"{shown(source)} has no {', '.join(missing)}: save x_train, y_train, x_test, y_test")
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    x_train = _as_samples(arrays["x_train"], signal, "x_train")
    x_test = _as_samples(arrays["x_test"], signal, "x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UsageError(f"x_train samples {list(x_train.shape[1:])} and x_test samples {list(x_test.shape[1:])} differ")
    ys = []
    for name, y, x in (("y_train", arrays["y_train"], x_train), ("y_test", arrays["y_test"], x_test)):
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
            raise UsageError(f"{name} must hold one integer label per sample ({len(x)}), not {y.dtype} "
                             f"{list(y.shape)}")
        ys.append(y.astype(np.int64))
    classes = int(ys[0].max()) + 1
    if ys[0].min() < 0 or ys[1].min() < 0 or ys[1].max() >= classes:
        raise UsageError(f"labels must be 0..{classes - 1} (from y_train), in y_train and y_test")
    counts = np.bincount(ys[0], minlength=classes)
    if classes < 2 or counts.min() < MIN_PER_CLASS:
        raise UsageError(f"every class needs at least {MIN_PER_CLASS} training samples; class {int(counts.argmin())} "
                         f"has {int(counts.min())}")
    return SearchData(x_train, ys[0], x_test, ys[1], signal, classes, source)


def resolutions_for(data: SearchData) -> tuple[int, ...]:
    """Input resolutions stage 1 may pick: from 32 up to twice the data's own size (at least 64)."""
    size = data.x_train.shape[-1]
    top = max(64, 2 * size)
    return tuple(r for r in range(32, top + 1, 16))


def resize(x: np.ndarray, resolution: int, signal: bool) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(x)
    if signal:
        out = F.interpolate(t, size=resolution, mode="linear", align_corners=False)
    else:
        out = F.interpolate(t, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return out.numpy().astype(np.float32)


def check_output_folder(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {shown(str(out))} is a file: give a folder")
    if resume:
        if not (out / MARKER).exists():
            raise UsageError(f"--resume: {shown(str(out))} holds no search to resume; start without --resume")
        return
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UsageError(f"--out {shown(str(out))} is not empty and not a search's folder: choose a new or empty one")


class Evaluations:
    """Memoised fitness, saved in the output folder after every new evaluation: a resumed search replays
    evolution and random search (same seeds) without evaluating an architecture twice."""

    def __init__(self, path: Path, fitness: Callable[[Arch], float], resume: bool) -> None:
        self.path, self.fitness = path, fitness
        self.scores: dict[str, float] = {}
        if resume and path.exists():
            try:
                self.scores = {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
            except (ValueError, AttributeError) as e:
                raise UsageError(f"cannot resume from {shown(str(path))}: {e}; start without --resume") from None

    def __call__(self, arch: Arch) -> float:
        key = json.dumps(asdict(arch), separators=(",", ":"))
        if key not in self.scores:
            self.scores[key] = self.fitness(arch)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(json.dumps(self.scores))
            os.replace(tmp, self.path)
        return self.scores[key]


def _plot(path: Path, evo: list[float], rnd: list[float], evo_evals: int) -> None:
    from ..plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(np.linspace(0, evo_evals, len(evo)), evo, label="evolution")
    ax.plot(np.arange(1, len(rnd) + 1), rnd, label="random search")
    ax.set_xlabel("architectures evaluated")
    ax.set_ylabel("best validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def search(data: SearchData, budgets: Budgets, out: str | os.PathLike, preset: Preset, *, board: Board | None = None,
           strategy: str = "layer", seed: int = 0, resume: bool = False,
           progress: Callable[[str], None] | None = None, bars: Task | None = None) -> dict:
    """Runs the whole search (see the module docstring); returns the report written to report.json.
    `progress(message)` after each phase; `bars(description, total) -> advance(n)` for progress bars."""
    import torch

    from ..pipeline import write_library
    from .baseline import scale_to_fit
    from .cost import layers
    from .deploy import Recipe, deploy, train_network
    from .oracles import code_model, latency_model
    from .stage1 import optimize_space
    from .supernet import Supernet, build_network

    out = Path(out)
    check_output_folder(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("mcuforge search\n")
    log = logging.getLogger(f"mcuforge.search.{id(out)}")
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(out / "search.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    say = lambda msg: (log.info(msg), progress(msg) if progress else None)  # noqa: E731
    bar = bars or (lambda description, total: (lambda n: None))
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        core = board.core if board is not None and board.target else "cortex-m7"
        latency = latency_model(board) if board is not None else None
        channels = data.x_train.shape[1]
        resolutions = resolutions_for(data)
        chosen = optimize_space(budgets, channels=channels, classes=data.classes, signal=data.signal,
                                resolutions=resolutions, samples=preset.stage1_samples, seed=seed,
                                strategy=strategy, code=code_model(core),
                                latency=latency if budgets.latency_ms else None)
        if not chosen.chosen.fits:
            raise UsageError("no network of any space fits the budgets: give a larger --sram/--flash/--latency-ms")
        space = SearchSpace(chosen.chosen.width, chosen.chosen.resolution, channels, data.classes, data.signal)
        times["stage1"] = time.perf_counter() - t0
        say(f"stage 1: space {space.name} ({chosen.chosen.fit_fraction:.1%} of its networks fit)")

        rng = np.random.default_rng(seed)
        order = rng.permutation(len(data.x_train))
        if preset.max_train:
            order = order[:preset.max_train]
        n_val = max(data.classes, len(order) // 10)
        val, train = order[:n_val], order[n_val:]
        split = (data.x_train[train], data.y_train[train], data.x_train[val], data.y_train[val])

        def at(resolution: int) -> tuple[np.ndarray, ...]:
            """Train, validation and test samples at `resolution`."""
            return (resize(split[0], resolution, data.signal), resize(split[2], resolution, data.signal),
                    resize(data.x_test, resolution, data.signal))

        x_train, x_val, x_test = at(space.resolution)
        y_train, y_val = split[1], split[3]

        t = time.perf_counter()
        torch.manual_seed(seed)
        net = Supernet(space)
        config = TrainConfig(epochs=preset.epochs, batch_size=min(preset.batch_size, len(x_train)), seed=seed)
        checkpoint = out / "supernet.pt"
        steps = bar("supernet steps", (len(x_train) // config.batch_size) * config.epochs)
        done = [0]

        def on_step(step: int, loss: float) -> None:
            log.info(f"supernet step {step}: loss {loss:.4f}")
            steps(step - done[0])
            done[0] = step

        state = train_supernet(net, x_train, y_train, config, checkpoint=checkpoint,
                               resume=resume and checkpoint.exists(), on_step=on_step)
        net.sort_channels()
        times["train_supernet"] = time.perf_counter() - t
        say(f"supernet: {state.steps} steps" + (f" (resumed after step {state.resumed_from})" if state.resumed_from
                                                else ""))

        t = time.perf_counter()
        fits = budget_check(space, budgets, strategy=strategy, board=board, code_core=core)
        fitness = Evaluations(out / "evaluations.json",
                              lambda arch: subnet_accuracy(net, arch, x_val, y_val, x_train), resume)
        generation = bar("evolution generations", preset.generations)
        evo = evolve(space, fitness, fits, EvolutionConfig(population=preset.population,
                                                           generations=preset.generations, seed=seed),
                     on_generation=lambda g, best: (log.info(f"generation {g}: best {best:.4f}"), generation(1)))
        times["evolution"] = time.perf_counter() - t
        t = time.perf_counter()
        rnd = random_search(space, fitness, fits, evaluations=evo.evaluations, seed=seed + 1)
        times["random_search"] = time.perf_counter() - t
        say(f"search: evolution {evo.best_fitness:.4f}, random search {rnd.best_fitness:.4f} "
            f"({evo.evaluations} evaluations each)")

        t = time.perf_counter()
        target = board.target if board is not None and board.target else "host"
        best: Arch = evo.best
        net.set_active(best)
        model = net.extract(best)
        finetune = Recipe(epochs=preset.finetune_epochs, batch_size=config.batch_size, qat_epochs=preset.qat_epochs,
                          seed=seed)
        epoch = bar("fine-tuning epochs", finetune.epochs)
        train_network(model, x_train, y_train, finetune, checkpoint=out / "finetune.pt", resume=resume,
                      on_epoch=lambda e, loss: (log.info(f"fine-tuning epoch {e}: loss {loss:.4f}"), epoch(1)))
        estimate_ms = (lambda spec: float(latency(layers(spec))) if latency is not None else None)  # noqa: E731
        measure = dict(cores=CORES if board is not None else (), board=board)
        searched = deploy(model, "searched", x_train, y_train, x_test, data.y_test, budgets, finetune,
                          strategy=strategy, target=target, latency_ms=estimate_ms(space.network(best)), **measure)
        times["deploy"] = time.perf_counter() - t
        write_library(searched.compiled.lib, out / "c")
        (out / "model_int8.tflite").write_bytes(searched.tflite)
        say(f"int8 C: test accuracy {searched.test_accuracy:.4f}, peak SRAM {searched.peak_sram_bytes:,} B, "
            f"flash {searched.flash_bytes:,} B, bit-exact {searched.bit_exact}")

        baselines = []
        if preset.baselines:
            t = time.perf_counter()
            base = scale_to_fit(spec_check(budgets, strategy=strategy, board=board, code_core=core), resolutions,
                                channels=channels, classes=data.classes, signal=data.signal)
            if base is None:
                say("S-MbV2: no MobileNetV2 of the grid fits the budgets")
            else:
                bx_train, _, bx_test = at(base.resolution)
                torch.manual_seed(seed)
                bmodel = build_network(base.spec)
                recipe = dataclasses.replace(finetune, epochs=preset.epochs + preset.finetune_epochs)
                epoch = bar(f"{base.name} epochs", recipe.epochs)
                train_network(bmodel, bx_train, y_train, recipe, checkpoint=out / "baseline.pt", resume=resume,
                              on_epoch=lambda e, loss: (log.info(f"{base.name} epoch {e}: loss {loss:.4f}"),
                                                        epoch(1)))
                deployed = deploy(bmodel, base.name, bx_train, y_train, bx_test, data.y_test, budgets, recipe,
                                  strategy=strategy, target=target, latency_ms=estimate_ms(base.spec), **measure)
                baselines.append(deployed.report() | {"width": base.width, "resolution": base.resolution})
                say(f"{base.name}: test accuracy {deployed.test_accuracy:.4f}, peak SRAM "
                    f"{deployed.peak_sram_bytes:,} B, flash {deployed.flash_bytes:,} B")
            times["baselines"] = time.perf_counter() - t

        report = {
            "data": data.source, "space": space.name, "budgets": budgets.as_json(),
            "board": board.name if board is not None else None, "strategy": strategy, "seed": seed,
            "preset": asdict(preset),
            "searched": searched.report() | {"arch": asdict(best), "validation_accuracy": evo.best_fitness},
            "search": {"evolution_history": evo.history, "random_history": rnd.history,
                       "evaluations": evo.evaluations, "random_best": rnd.best_fitness},
            "baselines": baselines,
            "seconds": {k: round(v, 1) for k, v in times.items()} | {"total": round(time.perf_counter() - t0, 1)}}
        (out / "report.json").write_text(json.dumps(report, indent=1))
        try:
            _plot(out / "search.png", evo.history, rnd.history, evo.evaluations)
        except UsageError as e:  # matplotlib missing: the report stands without the plot
            say(f"no plot: {e}")
        return report
    finally:
        log.removeHandler(handler)
        handler.close()


__all__ = ["PRESETS", "Preset", "SearchData", "load_search_data", "resolutions_for", "search"]
