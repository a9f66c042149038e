"""Training the stage-2 supernet, with checkpoints that a killed run resumes from exactly: the sandwich rule
with in-place distillation (BigNAS; the default) or once-for-all's progressive shrinking (nas.progressive).

    state = train_supernet(net, x_train, y_train, TrainConfig(epochs=3), checkpoint="run/supernet.pt")
    state = train_supernet(net, x_train, y_train, TrainConfig(epochs=3), checkpoint="run/supernet.pt",
                           resume=True)          # after a kill or Ctrl-C: continues after the last checkpoint
    acc = subnet_accuracy(net, arch, x_val, y_val, x_train)   # BN recalibrated for `arch`, then scored

Sandwich rule: every step trains, on one batch, the largest subnet on the labels, then `subnets` random
subnets and the smallest on the largest's softened outputs (in-place distillation), and takes one SGD step
on the summed gradients. Why it is the default: measured on the same data, space, steps and seed
(bench/supernet_training.py, docs/supernet_training.md), it gave the better largest, smallest and average
subnet on Fashion-MNIST, both at 6 epochs on 7,200 images and at 24 epochs on 1,800. For example, at 6
epochs the smallest reached 83.3 % against 74.9 %. On Speech Commands (1-D features) progressive shrinking
was ahead: 67.4 % against 55.7 % on average. That reversal is not explained yet, so both methods stay
available.

Determinism: the batch order of epoch e is a permutation drawn from (seed, e), the subnets of step s from
(seed, s), the learning rate is a cosine of the step, so a run resumed from a checkpoint (weights,
optimizer, step) continues exactly as the uninterrupted run would (one torch thread).

The same training on several processes (torch.distributed, each step's batch split among them):
nas.ddp_train, built from this module's step functions (step_batches, step_archs, sandwich_step); it runs
the sandwich rule only.
"""
from __future__ import annotations

import math
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..data import shuffled_batches
from ..errors import UsageError, shown
from .mcunet import Arch, SearchSpace
from .progressive import PHASES, phase_archs, phase_of, phase_starts, progressive_step
from .supernet import Supernet, recalibrate_bn

CHECKPOINT_VERSION = 2  # 2: the training method and phases, and the progressive teacher
METHODS = ("sandwich", "progressive")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    lr: float = 0.05  # peak learning rate (cosine decay to 0 over the run)
    momentum: float = 0.9
    weight_decay: float = 3e-5
    subnets: int = 2  # random subnets per step between the largest and the smallest
    seed: int = 0
    checkpoint_every: int = 50  # steps
    method: str = "sandwich"  # or "progressive" (once-for-all's progressive shrinking, nas.progressive)
    phases: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)  # progressive: full, kernel, depth, expand

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"training method {self.method!r}: choose one of {', '.join(METHODS)}")
        if len(self.phases) != len(PHASES) or min(self.phases) < 0 or sum(self.phases) <= 0:
            raise UsageError(f"phases {self.phases}: give {len(PHASES)} non-negative fractions (full, kernel, depth, "
                             "expand)")


@dataclass
class TrainState:
    step: int  # steps done
    steps: int  # steps in the whole run
    loss: float  # the last step's loss of the largest subnet
    resumed_from: int = 0  # the step the run resumed after (0: a fresh run)


def _batches(n: int, config: TrainConfig, epoch: int) -> list[np.ndarray]:
    return shuffled_batches(n, config.batch_size, (config.seed, epoch))


def _save(path: Path, net: Supernet, optimizer: torch.optim.Optimizer, step: int, config: TrainConfig,
          teacher: Supernet | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"version": CHECKPOINT_VERSION, "step": step, "config": _settings(config), "model": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "teacher": teacher.state_dict() if teacher is not None else None}, tmp)
    os.replace(tmp, path)  # a kill during the save leaves the previous checkpoint


def read_checkpoint(path: Path, config: TrainConfig) -> dict:
    """The checkpoint at `path` (step, model, optimizer), refused in one line when it is unreadable or was
    written with other settings."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise UsageError(f"cannot resume from {shown(str(path))}: {e}; start without --resume") from None
    if saved.get("version") != CHECKPOINT_VERSION or saved.get("config") != _settings(config):
        raise UsageError(f"{shown(str(path))} was written by a run with other settings: resume with the same "
                         "settings, or start without --resume")
    return saved


def _settings(config: TrainConfig) -> dict:
    """The settings a checkpoint records (lists, as torch.load gives them back)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}


def make_optimizer(net: Supernet, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, nesterov=True)


def schedule(n: int, config: TrainConfig) -> tuple[int, int]:
    """(steps per epoch, steps in the run) for n training samples."""
    if config.batch_size < 1 or config.epochs < 0:
        raise UsageError(f"batch size {config.batch_size}, epochs {config.epochs}: give a batch size of at least 1 "
                         "and epochs of at least 0")
    if n < config.batch_size:
        raise UsageError(f"{n} training samples are fewer than one batch of {config.batch_size}: lower the batch size")
    per_epoch = len(_batches(n, config, 0))
    return per_epoch, per_epoch * config.epochs


def step_batches(n: int, config: TrainConfig, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """(step, sample indices of its batch) for every step after the first `start` ones."""
    per_epoch, _ = schedule(n, config)
    for epoch in range(start // per_epoch, config.epochs):
        for k, idx in enumerate(_batches(n, config, epoch)):
            if epoch * per_epoch + k >= start:
                yield epoch * per_epoch + k, idx


def learning_rate(config: TrainConfig, step: int, steps: int) -> float:
    return 0.5 * config.lr * (1 + math.cos(math.pi * step / steps))


def step_archs(space: SearchSpace, config: TrainConfig, step: int) -> list[Arch]:
    """The subnets distilled at `step` after the largest: `config.subnets` random ones (drawn from (seed,
    step), so every worker of a distributed run draws the same) and the smallest."""
    rng = random.Random(config.seed * 1_000_003 + step)
    return [space.sample(rng) for _ in range(config.subnets)] + [space.smallest()]


def sandwich_step(net: Supernet, xb: torch.Tensor, yb: torch.Tensor, archs: list[Arch]) -> torch.Tensor:
    """Gradients of one sandwich-rule step on one batch, accumulated into the parameters' .grad (one
    subnet's graph alive at a time): the largest on the labels, then each of `archs` on the largest's
    softened outputs. Returns the largest's loss (detached)."""
    net.set_active(net.space.largest())
    logits = net(xb)
    loss = F.cross_entropy(logits, yb)
    loss.backward()
    soft = F.softmax(logits.detach(), dim=1)
    for arch in archs:
        net.set_active(arch)
        distill = F.kl_div(F.log_softmax(net(xb), dim=1), soft, reduction="batchmean")
        distill.backward()
    return loss.detach()


def as_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples (float32) and labels (int64) as tensors."""
    return torch.from_numpy(np.ascontiguousarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))


def train_supernet(net: Supernet, x: np.ndarray, y: np.ndarray, config: TrainConfig = TrainConfig(), *,
                   checkpoint: str | os.PathLike | None = None, resume: bool = False,
                   on_step: Callable[[int, float], None] | None = None) -> TrainState:
    """Trains `net` on x (NCHW or NCL float32) and y (int labels); see the module docstring. `on_step(step,
    loss)` is called after every step (progress bars; a test raises from it to simulate a kill)."""
    n = len(x)
    _, steps = schedule(n, config)
    optimizer = make_optimizer(net, config)
    path = Path(checkpoint) if checkpoint is not None else None
    start = 0
    saved_teacher = None
    if resume:
        if path is None or not path.exists():
            raise UsageError("nothing to resume: no checkpoint yet; start without --resume")
        saved = read_checkpoint(path, config)
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        start, saved_teacher = int(saved["step"]), saved.get("teacher")
    xt, yt = as_tensors(x, y)
    space = net.space
    starts = phase_starts(steps, config.phases)
    teacher: Supernet | None = None
    net.train()
    loss_value = math.nan
    step = start
    for step, idx in step_batches(n, config, start):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step, steps)
        optimizer.zero_grad(set_to_none=True)
        if config.method == "sandwich":
            loss = sandwich_step(net, xt[idx], yt[idx], step_archs(space, config, step))
        else:
            if phase_of(step, starts) > 0 and teacher is None:
                teacher = _teacher(net, saved_teacher)
            if step == starts[PHASES.index("expand")] and step < steps:
                net.sort_channels(optimizer)
            loss = progressive_step(net, teacher, xt[idx], yt[idx],
                                    phase_archs(space, step, steps, starts, config.subnets + 2, config.seed))
        loss_value = float(loss)
        optimizer.step()
        step += 1
        if path is not None and (step % config.checkpoint_every == 0 or step == steps):
            _save(path, net, optimizer, step, config, teacher)
        if on_step is not None:
            on_step(step, loss_value)
    net.set_active(space.largest())
    return TrainState(step, steps, loss_value, start)


def _teacher(net: Supernet, saved: dict | None) -> Supernet:
    """The frozen full network that progressive shrinking distills from: the checkpoint's, or `net` now."""
    import copy

    teacher = copy.deepcopy(net)
    if saved is not None:
        teacher.load_state_dict(saved)
    teacher.set_active(net.space.largest())
    teacher.requires_grad_(False)
    return teacher.eval()


def float_accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of the float `model` (eval mode) on (x, y)."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], np.float32))
            correct += int((model(xb).argmax(1).numpy() == np.asarray(y[i:i + batch_size])).sum())
    model.train(was_training)
    return correct / max(len(x), 1)


def subnet_accuracy(net: Supernet, arch: Arch, x_val: np.ndarray, y_val: np.ndarray, x_calib: np.ndarray,
                    calib_batches: int = 4, batch_size: int = 64) -> float:
    """Top-1 accuracy of subnet `arch` on (x_val, y_val), its batch norms recalibrated on the first
    `calib_batches` batches of x_calib (training data, never the validation split)."""
    net.set_active(arch)
    calib = torch.from_numpy(np.ascontiguousarray(x_calib[:calib_batches * batch_size], np.float32))
    recalibrate_bn(net, calib.split(batch_size))
    accuracy = float_accuracy(net, x_val, y_val, batch_size)
    net.train()
    return accuracy


__all__ = ["TrainConfig", "TrainState", "float_accuracy", "learning_rate", "make_optimizer", "read_checkpoint",
           "sandwich_step", "schedule", "step_archs", "step_batches", "subnet_accuracy", "train_supernet"]
