"""From a trained float network to verified C: what `mcuforge search` does with its winner and with the
baselines, the same way for both.

    train_network(model, x_train, y_train, Recipe(epochs=10), checkpoint="run/baseline.pt")  # resumable
    result = deploy(model, "model", x_train, y_train, x_test, y_test, budgets, recipe)
    result.report()      # test accuracy of the int8 C, peak SRAM, flash, bit-exact, ...

`train_network` is plain SGD with Nesterov momentum and a cosine learning rate per step, one checkpoint per
epoch (a kill loses at most the current epoch; the batch order of epoch e is drawn from (seed, e), so a
resumed run continues as the uninterrupted one would). `deploy` quantizes with quantization-aware
fine-tuning (`Recipe.qat_epochs`; 0: post-training quantization only), compiles under the budgets (the
exact check: BudgetError when the compiled model does not fit), verifies C = reference = TFLM, and scores
the int8 C on the test split. Samples are channels first (NCHW images, NCL signals), float32.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import shuffled_batches
from ..errors import UsageError, shown
from .stage1 import Budgets

CHECKPOINT_VERSION = 1
OPT = "-Os"  # firmware builds: the code size the NAS oracles model, and what the flash budget checks


@dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int = 64
    lr: float = 0.05  # peak (cosine decay to 0)
    momentum: float = 0.9
    weight_decay: float = 3e-5
    qat_epochs: int = 1
    qat_lr: float = 1e-4  # Adam, constant: the folded weights move little
    seed: int = 0


def _order(n: int, recipe: Recipe, epoch: int) -> list[np.ndarray]:
    return shuffled_batches(n, recipe.batch_size, (recipe.seed, 7, epoch))


def _save(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, recipe: Recipe) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"version": CHECKPOINT_VERSION, "epoch": epoch, "recipe": asdict(recipe),
                "model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp)
    os.replace(tmp, path)


def _load(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, recipe: Recipe) -> int:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.get("version") != CHECKPOINT_VERSION or saved.get("recipe") != asdict(recipe):
            raise ValueError("it was written with other settings")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    except (OSError, RuntimeError, EOFError, ValueError, KeyError) as e:
        raise UsageError(f"cannot resume from {shown(str(path))}: {e}; start without --resume") from None
    return int(saved["epoch"])


def train_network(model: nn.Module, x: np.ndarray, y: np.ndarray, recipe: Recipe, *,
                  checkpoint: str | os.PathLike | None = None, resume: bool = False,
                  on_epoch: Callable[[int, float], None] | None = None) -> None:
    """Trains `model` in place (see the module docstring); resumes from `checkpoint` when it exists and
    `resume` is set. `on_epoch(epoch, mean loss)` after every epoch."""
    if len(x) < recipe.batch_size:
        raise UsageError(f"{len(x)} training samples are fewer than one batch of {recipe.batch_size}")
    per_epoch = len(_order(len(x), recipe, 0))
    steps = per_epoch * recipe.epochs
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                                weight_decay=recipe.weight_decay)
    path = Path(checkpoint) if checkpoint is not None else None
    start = _load(path, model, optimizer, recipe) if resume and path is not None and path.exists() else 0
    xt, yt = torch.from_numpy(np.ascontiguousarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    model.train()
    for epoch in range(start, recipe.epochs):
        total = 0.0
        for k, idx in enumerate(_order(len(x), recipe, epoch)):
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * recipe.lr * (1 + math.cos(math.pi * (epoch * per_epoch + k) / steps))
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        if path is not None:
            _save(path, model, optimizer, epoch + 1, recipe)
        if on_epoch is not None:
            on_epoch(epoch + 1, total / per_epoch)
    model.eval()


def ir_layout(x: np.ndarray) -> np.ndarray:
    """Channels first (torch) -> channels last, as the IR takes samples (NHWC; signals (N, L, C))."""
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def quantize_network(model: nn.Module, x: np.ndarray, y: np.ndarray, recipe: Recipe):
    """The int8 graph of `model`: PTQ calibrated on x, then `recipe.qat_epochs` of QAT on (x, y)."""
    from ..frontends.torch_capture import from_torch
    from ..quant import qat
    from ..quant.ptq import quantize

    model.eval()
    example = torch.from_numpy(np.ascontiguousarray(x[:1], np.float32))
    calib = ir_layout(x[:512])
    if recipe.qat_epochs == 0:
        float_graph = from_torch(model, example)
        return quantize(float_graph, calib.reshape(len(calib), *float_graph[float_graph.inputs[0]].shape[1:]),
                        progress=False)
    q = qat.prepare_qat(model, example, calibration=calib, observer="ema")
    xq = torch.from_numpy(np.ascontiguousarray(ir_layout(x), np.float32))
    xq = xq.reshape(len(x), *q.graph[q.graph.inputs[0]].shape[1:])
    yt = torch.from_numpy(np.asarray(y, np.int64))
    optimizer = torch.optim.Adam(q.parameters(), lr=recipe.qat_lr)
    q.train()
    for epoch in range(recipe.qat_epochs):
        for idx in _order(len(x), recipe, 10_000 + epoch):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(q(xq[idx]), yt[idx]).backward()
            optimizer.step()
    return qat.convert(q.eval())


@dataclass
class Deployed:
    name: str
    test_accuracy: float  # of the int8 C on the test split
    peak_sram_bytes: int
    flash_bytes: int
    flash_includes_code: bool
    macs: int
    bit_exact: bool  # C = reference = TFLM on random inputs
    latency_ms: float | None  # estimated on the board (nas.oracles.latency_model), None without a board
    instructions: dict[str, int]  # core -> instructions of one inference counted in QEMU (OPT), when asked
    measured_ms: float | None  # instructions on the board's core / its clock, when measured
    compiled: Any = None  # pipeline.Compiled
    tflite: bytes = b""
    predictions: Any = None  # the int8 C's class per test sample

    def report(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("compiled", "tflite", "predictions")}


def deploy(model: nn.Module, name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
           y_test: np.ndarray, budgets: Budgets, recipe: Recipe, *, strategy: str = "layer", target: str = "host",
           latency_ms: float | None = None, cores: tuple[str, ...] = (), board=None) -> Deployed:
    """Quantizes, compiles under `budgets`, verifies and scores `model` (see the module docstring).
    `latency_ms`: the board's latency estimate, carried into the result. `cores` ("cortex-m4", "cortex-m7"):
    counts one inference on the first test sample in QEMU on each, checking its outputs against the host's;
    with `board`, measured_ms is the count on its core at its clock."""
    from ..frontends.tflite_writer import write_tflite
    from ..pipeline import compile_model
    from ..quant.ptq import quantize_input
    from ..targets.host import HostModel
    from ..verify import verify

    int8 = quantize_network(model, x_train, y_train, recipe)
    compiled = compile_model(int8, "model", sram=budgets.sram_bytes, flash=budgets.flash_bytes, strategy=strategy,
                             target=target, opt=OPT)
    tflite = write_tflite(int8)
    check = verify(int8, samples=5, tflite_bytes=tflite, compiled=compiled)
    host = HostModel.build(compiled.lib)
    shape = int8[int8.inputs[0]].shape[1:]
    samples = [quantize_input(int8, s.reshape(1, *shape)) for s in ir_layout(x_test)]
    predictions = np.array([int(np.argmax(host.run([x])[0])) for x in samples])
    instructions = {}
    for core in cores:
        from ..targets.cortex_m import CortexMModel

        counts, outs = CortexMModel.build(compiled.lib, core, OPT).count_instructions_batch([[samples[0]]])
        if not all(np.array_equal(a, b) for a, b in zip(outs[0], host.run([samples[0]]))):
            raise AssertionError(f"{name}: the {core} build's outputs differ from the host's")
        instructions[core] = counts[0]
    measured = (board.cycles_to_ms(instructions[board.core]) if board is not None and board.core in instructions
                else None)
    report = compiled.report
    return Deployed(name, float(np.mean(predictions == y_test)), report.sram_bytes, report.flash_bytes,
                    report.flash_code_bytes is not None, report.macs, bool(check.ok and check.tflm_checked),
                    latency_ms, instructions, measured, compiled, tflite, predictions)


def exact_misfit(spec, budgets: Budgets, *, strategy: str = "layer", target: str = "host") -> str | None:
    """None when a network of `spec`'s shapes compiles within `budgets` (the exact check deploy makes: arena,
    and flash with the code as linked for a Cortex-M target), else why not. It compiles the spec's int8 graph
    with random weights: sizes depend on shapes only, so this decides before any training."""
    from ..errors import BudgetError
    from ..pipeline import compile_model
    from .space import to_graph

    try:
        compile_model(to_graph(spec), "model", sram=budgets.sram_bytes, flash=budgets.flash_bytes, strategy=strategy,
                      target=target, opt=OPT)
    except BudgetError as e:
        return str(e)
    return None


def deploy_audio(result: Deployed, config, clips: np.ndarray, y_test: np.ndarray, *, cores: tuple[str, ...] = (),
                 board=None) -> dict:
    """The deployed network behind the audio front-end, as the firmware runs it (audio.glue): raw test clips
    -> front-end -> quantization -> network, in C on the host; its predictions must be the network's on the
    numpy features (`same_predictions`). With `cores`, the whole path is counted in QEMU on the first clip."""
    from ..audio.emit import scratch_bytes, table_bytes
    from ..audio.glue import audio_model_library, glue_scratch_bytes
    from ..targets.host import HostModel

    lib = audio_model_library(result.compiled.lib, config, clips.shape[1])
    host = HostModel.build(lib)
    predictions = np.array([int(np.argmax(host.run([c])[0])) for c in clips])
    instructions = {}
    for core in cores:
        from ..targets.cortex_m import CortexMModel

        instructions[core] = CortexMModel.build(lib, core, OPT).count_instructions_batch([[clips[0]]])[0][0]
    frontend_sram = scratch_bytes(config) + glue_scratch_bytes(config)
    return {"frontend": asdict(config), "test_accuracy": float(np.mean(predictions == y_test)),
            "same_predictions": bool(np.array_equal(predictions, result.predictions)),
            "frontend_sram_bytes": frontend_sram, "frontend_flash_tables_bytes": table_bytes(config),
            "total_sram_bytes": result.peak_sram_bytes + frontend_sram, "instructions": instructions,
            "frontend_instructions": {c: n - result.instructions[c] for c, n in instructions.items()
                                      if c in result.instructions},
            "measured_ms": (board.cycles_to_ms(instructions[board.core])
                            if board is not None and board.core in instructions else None)}


__all__ = ["Deployed", "OPT", "Recipe", "deploy", "deploy_audio", "exact_misfit", "ir_layout", "quantize_network",
           "train_network"]
