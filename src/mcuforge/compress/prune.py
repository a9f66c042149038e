"""Unstructured magnitude pruning while a model trains: the zeros that the sparse weight formats
(ir/formats.py: sparse, sparse:int4) store for free and the sparse kernels skip.

    qat = prepare_qat(model, example, calibration=x)          # or any module's weight parameters
    pruner = MagnitudePruner(qat.weight_parameters(), 0.75, end=200)
    for step in ...:
        loss.backward(); optimizer.step(); pruner.step()      # masks updated, then applied
    graph = convert(qat.eval())                               # zeros stay zeros through int8 quantization
    compile_model(choose_formats(graph, "auto"))              # the pruned tensors stored sparse

The share of zeros follows the gradual schedule of Zhu and Gupta (2017): s(t) = s * (1 - (1 - p)^3), p the
progress of step t from `begin` to `end` (all at once when end <= begin), recomputed every `every` steps.
A mask keeps the weights of largest magnitude: over all the tensors together (`scope` "global", which
prunes the large layers most) or tensor by tensor ("layer"). Under "global", `max_share` caps the share of
any one tensor that may be pruned (a layer of small weights, e.g. a classifier after batch-norm folding
left its neighbours large, would otherwise lose all of them); the rest comes from the other tensors. Pruned weights are zero after every step, so
they stay the smallest and the masks only grow; a symmetric int8 quantization keeps them zero.
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..errors import UsageError

SCOPES = ("global", "layer")


class MagnitudePruner:
    """Masks for `params` (name -> weight parameter) reaching `sparsity` zeros on the schedule above."""

    def __init__(self, params: Mapping[str, torch.nn.Parameter], sparsity: float, *, scope: str = "global",
                 begin: int = 0, end: int = 0, every: int = 1, max_share: float = 1.0) -> None:
        if not 0 <= sparsity < 1:
            raise UsageError(f"sparsity {sparsity}: give a share of zeros in [0, 1), e.g. 0.75")
        if not sparsity <= max_share <= 1:
            raise UsageError(f"max_share {max_share}: give a cap per tensor in [sparsity, 1]")
        self.max_share = max_share
        if scope not in SCOPES:
            raise UsageError(f"pruning scope {scope!r}: choose one of {', '.join(SCOPES)}")
        if every < 1:
            raise UsageError(f"every {every}: masks are updated every 1 or more steps")
        self.params = dict(params)
        self.sparsity, self.scope, self.begin, self.end, self.every = sparsity, scope, begin, end, every
        self.masks = {name: torch.ones_like(p, dtype=torch.bool) for name, p in self.params.items()}
        self.steps = 0
        self._reached = 0.0  # the share the masks were last computed for

    def target(self, step: int) -> float:
        """The share of zeros the schedule asks for after `step` steps."""
        if self.end <= self.begin:
            return self.sparsity if step >= self.begin else 0.0
        progress = min(max((step - self.begin) / (self.end - self.begin), 0.0), 1.0)
        return self.sparsity * (1.0 - (1.0 - progress) ** 3)

    def step(self) -> None:
        """After an optimizer step: update the masks when the schedule's share has grown (every `every`
        steps, and when it reaches `sparsity`), then zero the pruned weights."""
        self.steps += 1
        share = self.target(self.steps)
        if share > self._reached and (self.steps % self.every == 0 or share == self.sparsity):
            self._update(share)
            self._reached = share
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        for name, p in self.params.items():
            p.mul_(self.masks[name])

    @torch.no_grad()
    def _update(self, share: float) -> None:
        groups = [list(self.params)] if self.scope == "global" else [[name] for name in self.params]
        for names in groups:
            magnitudes = torch.cat([self.params[n].detach().abs().reshape(-1) for n in names])
            prune = int(share * magnitudes.numel())
            keep = torch.ones_like(magnitudes, dtype=torch.bool)
            order = torch.argsort(magnitudes, stable=True)  # the smallest first, the first on a tie
            if self.max_share < 1 and len(names) > 1:
                order = order[self._within_caps(names)[order]]
            keep[order[:prune]] = False
            at = 0
            for n in names:
                count = self.params[n].numel()
                self.masks[n] = keep[at:at + count].reshape(self.params[n].shape) & self.masks[n]
                at += count

    def _within_caps(self, names: list[str]) -> torch.Tensor:
        """Per value of the concatenated tensors: whether it is among the floor(max_share * size) smallest
        of its own tensor (only those may be pruned)."""
        parts = []
        for n in names:
            flat = self.params[n].detach().abs().reshape(-1)
            rank = torch.empty_like(flat, dtype=torch.long)
            rank[torch.argsort(flat, stable=True)] = torch.arange(flat.numel())
            parts.append(rank < int(self.max_share * flat.numel()))
        return torch.cat(parts)

    def zeros(self) -> dict[str, float]:
        """The share of zeros in each parameter now."""
        return {name: int((p.detach() == 0).sum()) / p.numel() for name, p in self.params.items()}
