"""`mcuforge search`: from a dataset and a board to verified C, TinyNAS's two stages end to end.

    report = search(load_search_data("digits"), Budgets(sram_bytes=..., flash_bytes=...), "out/", PRESETS["quick"])

1. Stage 1 picks the (width, resolution) space with the most compute that fits (nas.stage1), over the
   resolutions that suit the data (`resolutions_for`); the data is resized to the chosen resolution.
2. A validation split is carved from the training data (never the test split).
3. The space's supernet is trained with the sandwich rule, or progressive shrinking with
   `Preset.training` (nas.train; checkpointed in the output folder, `resume=True` continues after a kill).
4. Evolution searches it under the budgets (nas.evolution; fitness: the subnet's validation accuracy with
   its batch norms recalibrated); random search with the same number of evaluations runs beside it. Every
   evaluation is saved (`evaluations.json`), so a resumed search replays both without evaluating again.
5. The winner is extracted and fine-tuned from its inherited weights; it is also trained from scratch for
   as many epochs as the baseline (`Preset.scratch`), and the better on the validation split is kept (in
   short runs from scratch often wins: docs/search_fashion_mnist.md). The kept weights are quantized (PTQ,
   then QAT), compiled, checked against the budgets on the exact compile, verified bit for bit (C =
   reference = TFLM), and the int8 C code is scored on the test split (nas.deploy).
6. The baseline S-MbV2 (nas.baseline: MobileNetV2 scaled to the largest width and resolution that fit the
   same budgets under the same oracles) is trained from scratch for the epochs the winner's weights saw
   (supernet + fine-tuning), with the fine-tuning recipe, and deployed the same way.
The output folder gets the C library (`c/`), `model_int8.tflite`, `report.json`, `report.html` (the
searched network's layers, memory profile and flash, and the accuracy table), `search.png` (the search
curves) and `search.log`; `--resume` continues after a kill from the checkpoints there (supernet.pt every
50 steps, finetune.pt and baseline-<config>.pt every epoch, evaluations.json after every evaluation).

Raw audio (search_data): the network trains on the fixed-point front-end's features; `c/` also gets the front-end
and `model_input_from_audio`, and the raw test clips are run through that C (report.json "audio").

Scale-out (`workers`, `ray_address`): the supernet trains data-parallel with torch.distributed (nas.ddp_train)
and the candidates are scored as Ray tasks (nas.parallel), with the same memo; docs/distributed.md.
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

from ..errors import BudgetError, UsageError, shown
from ..progress import Task
from ..targets.boards import Board
from .evolution import EvolutionConfig, budget_check, evolve, random_search, spec_check
from .mcunet import NARROW_WIDTHS, WIDTHS, Arch, SearchSpace
from .search_data import SearchData, load_search_data, resize, resolutions_for, validation_split
from .stage1 import Budgets
from .train import TrainConfig, float_accuracy, subnet_accuracy, train_supernet

CORES = ("cortex-m4", "cortex-m7")  # with a board, the deployed networks are counted in QEMU on both
MARKER = ".mcuforge-search"  # an output folder search wrote (and may resume in)


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
    training: str = "sandwich"  # supernet training: "sandwich" or "progressive" (nas.train.TrainConfig.method)
    scratch: bool = True  # also train the winner from scratch (supernet + fine-tuning epochs); validation picks


PRESETS = {"quick": Preset(epochs=8, finetune_epochs=8, population=16, generations=4, stage1_samples=200,
                           batch_size=32, max_train=4000),
           "default": Preset(epochs=30, finetune_epochs=10, population=100, generations=500, stage1_samples=1000,
                             qat_epochs=2),
           "full": Preset(epochs=120, finetune_epochs=30, population=100, generations=500, stage1_samples=1000,
                          qat_epochs=5)}


def network_budgets(budgets: Budgets, data: SearchData) -> Budgets:
    """The budgets left to the network: for audio, less the front-end's scratch (SRAM) and tables (flash);
    the front-end's code (about 1.7 KB) and time are not subtracted."""
    if data.frontend is None:
        return budgets
    from ..audio.emit import scratch_bytes, table_bytes
    from ..audio.glue import glue_scratch_bytes

    sram = scratch_bytes(data.frontend) + glue_scratch_bytes(data.frontend)
    flash = table_bytes(data.frontend)
    return Budgets(budgets.sram_bytes - sram if budgets.sram_bytes is not None else None,
                   budgets.flash_bytes - flash if budgets.flash_bytes is not None else None, budgets.latency_ms)


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

    @staticmethod
    def _key(arch: Arch) -> str:
        return json.dumps(asdict(arch), separators=(",", ":"))

    def _save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.scores))
        os.replace(tmp, self.path)

    def __call__(self, arch: Arch) -> float:
        key = self._key(arch)
        if key not in self.scores:
            self.scores[key] = self.fitness(arch)
            self._save()
        return self.scores[key]

    def ranked(self) -> list[Arch]:
        """Every architecture scored so far, the best first."""
        return [Arch(**json.loads(k)) for k, _ in sorted(self.scores.items(), key=lambda kv: -kv[1])]

    def batched(self, evaluate_many: Callable[[list[Arch]], list[float]]) -> Callable[[list[Arch]], list[float]]:
        """evaluate_many behind the same memo: only the architectures not scored yet are sent, in one call."""
        def many(archs: list[Arch]) -> list[float]:
            missing = list(dict.fromkeys(a for a in archs if self._key(a) not in self.scores))
            if missing:
                for arch, score in zip(missing, evaluate_many(missing)):
                    self.scores[self._key(arch)] = float(score)
                self._save()
            return [self.scores[self._key(a)] for a in archs]

        return many


def _plot(path: Path, evo: list[float], rnd: list[float], evo_evals: int) -> None:
    from ..report.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(np.linspace(0, evo_evals, len(evo)), evo, label="evolution")
    ax.plot(np.arange(1, len(rnd) + 1), rnd, label="random search")
    ax.set_xlabel("architectures evaluated")
    ax.set_ylabel("best validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


EXACT_TRIES = 10  # candidates tried on the exact compile before giving up


def exactly_fitting(best: Arch, ranked: list[Arch], space: SearchSpace, budgets: Budgets, strategy: str, target: str,
                    say: Callable[[str], None]) -> Arch:
    """`best`, or else the best-scored of `ranked` whose network passes the exact compile: the oracles'
    estimate can miss it by a little (the code-size model's error, the packing gap)."""
    from .deploy import exact_misfit

    misfit = exact_misfit(space.network(best), budgets, strategy=strategy, target=target)
    if misfit is None:
        return best
    for arch in [a for a in ranked if a != best][:EXACT_TRIES]:
        if exact_misfit(space.network(arch), budgets, strategy=strategy, target=target) is None:
            say(f"the best candidate does not fit on the exact compile ({misfit}); taking the next best that does")
            return arch
    raise UsageError(f"none of the {EXACT_TRIES + 1} best candidates fits on the exact compile ({misfit}): give "
                     "larger budgets")


def _write_html(path: Path, searched, rows: list[dict], budgets: Budgets, board: Board | None,
                audio: dict | None) -> None:
    """The compile report of the searched network (its layers, memory profile, flash, predicted and
    counted instructions per board) with the accuracy table of the searched network and the baselines."""
    from ..report.file import ReportContent, board_rows, layer_predictions, write_report

    compiled = searched.compiled
    predicted = layer_predictions(compiled.report, compiled.graph, compiled.plan, CORES)
    counted = {board.name: searched.instructions[board.core]} if board is not None and searched.instructions else {}
    notes = ["Accuracy: the int8 C on the test split. " + "; ".join(
        f"{r['name']}: {100 * r['test_accuracy']:.2f} % ({r['peak_sram_bytes']:,} B SRAM, {r['flash_bytes']:,} B "
        f"flash, {r['macs'] / 1e6:.2f} M MACs)" for r in rows) + "."]
    if audio is not None:
        notes.append(f"Raw audio through the C front-end: {100 * audio['test_accuracy']:.2f} %; SRAM with the "
                     f"front-end {audio['total_sram_bytes']:,} B.")
    write_report(path, ReportContent(compiled.report, title="mcuforge search: the searched network",
                                     layer_instructions=predicted, boards=board_rows(predicted, counted),
                                     sram_budget=budgets.sram_bytes, flash_budget=budgets.flash_bytes, notes=notes))


def search(data: SearchData, budgets: Budgets, out: str | os.PathLike, preset: Preset, *, board: Board | None = None,
           strategy: str = "layer", seed: int = 0, resume: bool = False,
           progress: Callable[[str], None] | None = None, bars: Task | None = None, workers: int = 1,
           ray_address: str | None = None) -> dict:
    """Runs the whole search (see the module docstring); returns the report written to report.json.
    `progress(message)` after each phase; `bars(description, total) -> advance(n)` for progress bars.
    `workers` > 1: the supernet trains data-parallel on that many processes (nas.ddp_train) and candidates are
    scored as Ray tasks on that many local CPUs (nas.parallel), or on the Ray cluster at `ray_address`."""
    import torch

    from ..pipeline import write_library
    from .baseline import fitting
    from .cost import layers
    from .deploy import Recipe, deploy, deploy_audio, exact_misfit, train_network
    from .oracles import code_model, latency_model
    from .stage1 import optimize_space
    from .supernet import Supernet, build_network

    out = Path(out)
    TrainConfig(method=preset.training)  # an unknown method is refused here, before anything is written
    if workers > 1 and preset.training != "sandwich":
        raise UsageError(f"--training {preset.training} runs on one process: leave out --workers, or train with "
                         "the sandwich rule")
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
        # code counts in flash where the exact compile counts it: for a board's Cortex-M target; without one the
        # flash budget is the weights and constants, as the host compile that checks it reports
        core = board.core if board is not None and board.target else None
        latency = latency_model(board) if board is not None else None
        channels = data.x_train.shape[1]
        resolutions = resolutions_for(data)
        user_budgets, budgets = budgets, network_budgets(budgets, data)

        def stage1(widths: tuple[float, ...]):
            return optimize_space(budgets, channels=channels, classes=data.classes, signal=data.signal,
                                  widths=widths, resolutions=resolutions, samples=preset.stage1_samples, seed=seed,
                                  strategy=strategy, code=code_model(core) if core else None,
                                  latency=latency if budgets.latency_ms else None)

        try:
            chosen = stage1(WIDTHS)
        except BudgetError as e:  # tiny budgets: the paper's grid has nothing this small; try narrower spaces
            say(f"stage 1: {e}; trying widths {', '.join(f'{w:g}' for w in NARROW_WIDTHS)}")
            chosen = stage1(NARROW_WIDTHS)
        space = SearchSpace(chosen.chosen.width, chosen.chosen.resolution, channels, data.classes, data.signal)
        times["stage1"] = time.perf_counter() - t0
        say(f"stage 1: space {space.name} ({chosen.chosen.fit_fraction:.1%} of its networks fit)")

        train, val = validation_split(len(data.x_train), data.classes, seed, preset.max_train)
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
        config = TrainConfig(epochs=preset.epochs, batch_size=min(preset.batch_size, len(x_train)), seed=seed,
                             method=preset.training)
        checkpoint = out / "supernet.pt"
        steps = bar("supernet steps", (len(x_train) // config.batch_size) * config.epochs)
        done = [0]

        def on_step(step: int, loss: float) -> None:
            log.info(f"supernet step {step}: loss {loss:.4f}")
            steps(step - done[0])
            done[0] = step

        if workers > 1:
            from .ddp_train import train_supernet_workers

            config = dataclasses.replace(config, batch_size=max(workers, config.batch_size // workers * workers))
            state = train_supernet_workers(net, x_train, y_train, config, workers=workers, checkpoint=checkpoint,
                                           resume=resume and checkpoint.exists(), on_step=on_step)
        else:
            state = train_supernet(net, x_train, y_train, config, checkpoint=checkpoint,
                                   resume=resume and checkpoint.exists(), on_step=on_step)
        # no sort_channels() here: sorting a trained supernet moves channels away from the subnets that learned
        # with them (the smallest subnet lost 2.6 points, docs/supernet_training.md)
        times["train_supernet"] = time.perf_counter() - t
        say(f"supernet: {state.steps} steps" + (f" (resumed after step {state.resumed_from})" if state.resumed_from
                                                else ""))

        t = time.perf_counter()
        fits = budget_check(space, budgets, strategy=strategy, board=board, code_core=core)
        fitness = Evaluations(out / "evaluations.json",
                              lambda arch: subnet_accuracy(net, arch, x_val, y_val, x_train), resume)
        evaluator, many = None, None
        if workers > 1 or ray_address:
            from .parallel import RayEvaluator

            evaluator = RayEvaluator(net, x_val, y_val, x_train, workers=workers if not ray_address else None,
                                     address=ray_address)
            many = fitness.batched(evaluator.evaluate_many)
        try:
            generation = bar("evolution generations", preset.generations)
            evo = evolve(space, fitness, fits, EvolutionConfig(population=preset.population,
                                                               generations=preset.generations, seed=seed),
                         on_generation=lambda g, best: (log.info(f"generation {g}: best {best:.4f}"), generation(1)),
                         evaluate_many=many)
            times["evolution"] = time.perf_counter() - t
            t = time.perf_counter()
            rnd = random_search(space, fitness, fits, evaluations=evo.evaluations, seed=seed + 1, evaluate_many=many)
            times["random_search"] = time.perf_counter() - t
        finally:
            if evaluator is not None:
                evaluator.close()
        say(f"search: evolution {evo.best_fitness:.4f}, random search {rnd.best_fitness:.4f} "
            f"({evo.evaluations} evaluations each)")

        t = time.perf_counter()
        target = board.target if board is not None and board.target else "host"
        best = exactly_fitting(evo.best, [a for a in fitness.ranked() if fits(a)], space, budgets, strategy, target,
                               say)
        net.set_active(best)
        model = net.extract(best)
        finetune = Recipe(epochs=preset.finetune_epochs, batch_size=config.batch_size, qat_epochs=preset.qat_epochs,
                          seed=seed)
        epoch = bar("fine-tuning epochs", finetune.epochs)
        train_network(model, x_train, y_train, finetune, checkpoint=out / "finetune.pt", resume=resume,
                      on_epoch=lambda e, loss: (log.info(f"fine-tuning epoch {e}: loss {loss:.4f}"), epoch(1)))
        scratch = dataclasses.replace(finetune, epochs=preset.epochs + preset.finetune_epochs)  # and the baseline's
        recipe = finetune  # the recipe of the weights deployed (its QAT settings)
        winner = {"inherited_validation_accuracy": float_accuracy(model, x_val, y_val), "chosen": "inherited"}
        if preset.scratch:  # the same architecture trained from scratch as the baseline is; the validation decides
            torch.manual_seed(seed)
            fresh = build_network(space.network(best))
            epoch = bar("from-scratch epochs", scratch.epochs)
            train_network(fresh, x_train, y_train, scratch, checkpoint=out / "scratch.pt", resume=resume,
                          on_epoch=lambda e, loss: (log.info(f"from scratch epoch {e}: loss {loss:.4f}"), epoch(1)))
            winner["scratch_validation_accuracy"] = float_accuracy(fresh, x_val, y_val)
            if winner["scratch_validation_accuracy"] > winner["inherited_validation_accuracy"]:
                model, recipe, winner["chosen"] = fresh, scratch, "scratch"
            say(f"winner's weights: inherited and fine-tuned {winner['inherited_validation_accuracy']:.4f}, from "
                f"scratch {winner['scratch_validation_accuracy']:.4f} validation accuracy; {winner['chosen']} chosen")
        estimate_ms = (lambda spec: float(latency(layers(spec))) if latency is not None else None)  # noqa: E731
        measure = dict(cores=CORES if board is not None else (), board=board)
        searched = deploy(model, "searched", x_train, y_train, x_test, data.y_test, budgets, recipe,
                          strategy=strategy, target=target, latency_ms=estimate_ms(space.network(best)), **measure)
        times["deploy"] = time.perf_counter() - t
        write_library(searched.compiled.lib, out / "c")
        (out / "model_int8.tflite").write_bytes(searched.tflite)
        say(f"int8 C: test accuracy {searched.test_accuracy:.4f}, peak SRAM {searched.peak_sram_bytes:,} B, "
            f"flash {searched.flash_bytes:,} B, bit-exact {searched.bit_exact}")
        audio = None
        if data.frontend is not None:
            from ..audio import write_frontend

            write_frontend(out / "c", data.frontend, "model", samples=data.test_clips.shape[1])
            audio = deploy_audio(searched, data.frontend, data.test_clips, data.y_test, **measure)
            say(f"raw audio through the C front-end: test accuracy {audio['test_accuracy']:.4f} (same predictions: "
                f"{audio['same_predictions']}), SRAM with the front-end {audio['total_sram_bytes']:,} B")

        baselines = []
        if preset.baselines:
            t = time.perf_counter()
            candidates = fitting(spec_check(budgets, strategy=strategy, board=board, code_core=core), resolutions,
                                 channels=channels, classes=data.classes, signal=data.signal)
            base = next((c for c in candidates[:EXACT_TRIES]
                         if not exact_misfit(c.spec, budgets, strategy=strategy, target=target)), None)
            if base is None:
                say("S-MbV2: no MobileNetV2 of the grid fits the budgets on the exact compile")
            else:
                bx_train, _, bx_test = at(base.resolution)
                torch.manual_seed(seed)
                bmodel = build_network(base.spec)
                epoch = bar(f"{base.name} epochs", scratch.epochs)
                train_network(bmodel, bx_train, y_train, scratch, resume=resume,
                              checkpoint=out / f"baseline-{base.name.split()[-1]}.pt",
                              on_epoch=lambda e, loss: (log.info(f"{base.name} epoch {e}: loss {loss:.4f}"),
                                                        epoch(1)))
                deployed = deploy(bmodel, base.name, bx_train, y_train, bx_test, data.y_test, budgets, scratch,
                                  strategy=strategy, target=target, latency_ms=estimate_ms(base.spec), **measure)
                baselines.append(deployed.report() | {"width": base.width, "resolution": base.resolution})
                say(f"{base.name}: test accuracy {deployed.test_accuracy:.4f}, peak SRAM "
                    f"{deployed.peak_sram_bytes:,} B, flash {deployed.flash_bytes:,} B")
            times["baselines"] = time.perf_counter() - t

        report = {
            "data": data.source, "space": space.name,
            "board": board.name if board is not None else None, "strategy": strategy, "seed": seed,
            "workers": workers, "ray_address": ray_address,
            "preset": asdict(preset),
            "network_budgets": budgets.as_json(), "budgets": user_budgets.as_json(),
            "searched": searched.report() | {"arch": asdict(best), "validation_accuracy": fitness(best),
                                             "weights": winner},
            "audio": audio,
            "search": {"evolution_history": evo.history, "random_history": rnd.history,
                       "evaluations": evo.evaluations, "random_best": rnd.best_fitness},
            "baselines": baselines,
            "seconds": {k: round(v, 1) for k, v in times.items()} | {"total": round(time.perf_counter() - t0, 1)}}
        (out / "report.json").write_text(json.dumps(report, indent=1))
        _write_html(out / "report.html", searched, [searched.report(), *baselines], user_budgets, board, audio)
        try:
            _plot(out / "search.png", evo.history, rnd.history, evo.evaluations)
        except UsageError as e:  # matplotlib missing: the report stands without the plot
            say(f"no plot: {e}")
        return report
    finally:
        log.removeHandler(handler)
        handler.close()


__all__ = ["PRESETS", "Preset", "SearchData", "load_search_data", "resolutions_for", "search"]
