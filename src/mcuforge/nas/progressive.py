"""Progressive shrinking (once-for-all): the other way to train the supernet, chosen with
`TrainConfig(method="progressive")`; nas.train runs it, this module says what each step trains.

The run's steps are split into four phases (`TrainConfig.phases`, fractions of the steps):
1. full: the largest network alone, on the labels;
2. kernel: elastic kernel size (largest depth and expand ratio);
3. depth: elastic kernel and depth (the first half of the phase keeps the deepest two depths per stage);
4. expand: everything elastic (the first half keeps the largest three expand ratios); the expanded channels
   are sorted by importance once, when the phase starts (optimizer momentum permuted with them).
From the kernel phase on, each step trains `subnets + 2` subnets drawn from the phase's part of the space
(from (seed, step): a resumed run draws the same), each on the labels plus the distillation loss from the
teacher: a frozen copy of the full network as it stood when the full phase ended (saved in the checkpoint).
The full phase runs one network per step, so the whole run does about 80 % of the sandwich rule's passes.
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from .mcunet import DEPTHS, EXPANDS, KERNELS, LAST_DEPTH, SLOTS, STAGES, Arch, SearchSpace
from .supernet import Supernet

PHASES = ("full", "kernel", "depth", "expand")


def phase_starts(steps: int, fractions: tuple[float, ...]) -> list[int]:
    """The first step of each phase."""
    total = sum(fractions)
    starts, acc = [], 0.0
    for f in fractions:
        starts.append(round(steps * acc / total))
        acc += f
    return starts


def phase_of(step: int, starts: list[int]) -> int:
    """The index in PHASES of the phase that `step` belongs to."""
    return max(i for i, start in enumerate(starts) if step >= start)


def _late(step: int, starts: list[int], phase: int, steps: int) -> bool:
    """Whether `step` is in the second half of its phase."""
    end = starts[phase + 1] if phase + 1 < len(starts) else steps
    return step >= (starts[phase] + end) / 2


def phase_archs(space: SearchSpace, step: int, steps: int, starts: list[int], count: int, seed: int) -> list[Arch]:
    """The subnets trained at `step`: the largest in the full phase, else `count` drawn from the phase's part
    of the space."""
    phase = phase_of(step, starts)
    if phase == 0:
        return [space.largest()]
    rng = random.Random(seed * 1_000_003 + step)
    late = _late(step, starts, phase, steps)
    depths = DEPTHS if phase > 2 or (phase == 2 and late) else sorted(DEPTHS)[-2:]
    expands = EXPANDS if phase == 3 and late else sorted(EXPANDS)[1:]
    archs = []
    for _ in range(count):
        kernels = [rng.choice(KERNELS) for _ in range(SLOTS)]
        d = [rng.choice(depths) if phase >= 2 else max(DEPTHS) for _ in STAGES[:-1]] + [LAST_DEPTH]
        e = [rng.choice(expands) if phase == 3 else max(EXPANDS) for _ in range(SLOTS)]
        archs.append(Arch(d, kernels, e))
    return archs


def progressive_step(net: Supernet, teacher: Supernet | None, xb: torch.Tensor, yb: torch.Tensor,
                     archs: list[Arch]) -> torch.Tensor:
    """Gradients of one progressive-shrinking step, accumulated into .grad: each of `archs` on the labels,
    plus (with a teacher) the distillation loss from the teacher's outputs. Returns the first's label loss."""
    soft = None
    if teacher is not None:
        with torch.no_grad():
            soft = F.softmax(teacher(xb), dim=1)
    first = None
    for arch in archs:
        net.set_active(arch)
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
        first = loss.detach() if first is None else first
        if soft is not None:
            loss = loss + F.kl_div(F.log_softmax(logits, dim=1), soft, reduction="batchmean")
        loss.backward()
    assert first is not None
    return first


__all__ = ["PHASES", "phase_archs", "phase_of", "phase_starts", "progressive_step"]
