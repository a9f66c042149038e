"""TinyNAS stage 1: choose the search space (width multiplier W x input resolution R) for a board.

For each (W, R) space, sample networks (seeded), keep those within every budget (peak SRAM under a memory
model, flash, latency), and compare the distribution of their MACs: the space whose fitting networks carry
the most compute (the largest mean MACs) wins; the paper (MCUNet, Fig. 3) shows this choice alone is worth
points of accuracy.

    result = optimize_space(Budgets(sram_bytes=320 << 10, flash_bytes=1 << 20), classes=1000)
    result.chosen.width, result.chosen.resolution

Each space's sample is drawn once (`sample_space`) and then filtered by any number of budgets (`choose`),
which is what makes the budget grid (the paper's Fig. 12) cheap.
"""
from __future__ import annotations

import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import BudgetError
from .cost import estimate, layers
from .mcunet import RESOLUTIONS, WIDTHS, SearchSpace
from .oracles import MEMORY_MODELS, WEIGHT_FORMATS, CodeModel, LatencyModel, const_bytes, peak_sram


@dataclass(frozen=True)
class Budgets:
    sram_bytes: int | None = None
    flash_bytes: int | None = None
    latency_ms: float | None = None
    sram_low: int = 0  # as the `within` of sample_space: the smallest SRAM budget that will be asked

    @staticmethod
    def covering(budgets: Sequence["Budgets"]) -> "Budgets":
        """The `within` of sample_space for networks that will be checked against each of `budgets`."""
        def largest(values: list) -> object:
            return None if any(v is None for v in values) else max(values)

        srams = [b.sram_bytes for b in budgets]
        return Budgets(largest(srams), largest([b.flash_bytes for b in budgets]),
                       largest([b.latency_ms for b in budgets]),
                       0 if any(v is None for v in srams) else min(srams))  # type: ignore[arg-type]

    def as_json(self) -> dict:
        return {"sram_bytes": self.sram_bytes, "flash_bytes": self.flash_bytes, "latency_ms": self.latency_ms}


@dataclass(frozen=True)
class Sample:
    """One space's sampled networks: MACs, peak SRAM, flash and (when a latency model is given) ms each."""

    space: SearchSpace
    macs: np.ndarray
    peak: np.ndarray
    flash: np.ndarray
    latency_ms: np.ndarray | None = None

    def fitting(self, budgets: Budgets) -> np.ndarray:
        ok = np.ones(self.macs.size, bool)
        if budgets.sram_bytes is not None:
            ok &= self.peak <= budgets.sram_bytes
        if budgets.flash_bytes is not None:
            ok &= self.flash <= budgets.flash_bytes
        if budgets.latency_ms is not None:
            if self.latency_ms is None:
                raise ValueError("a latency budget needs a latency model (sample_space(..., latency=...))")
            ok &= self.latency_ms <= budgets.latency_ms
        return ok


@dataclass(frozen=True)
class SpaceStats:
    """The networks of one space that fit: how many, and their MACs."""

    width: float
    resolution: int
    samples: int
    fits: int
    mean_macs: float
    p10_macs: float = 0.0
    p50_macs: float = 0.0
    p90_macs: float = 0.0
    max_macs: int = 0
    macs: tuple[int, ...] = field(default=(), repr=False)  # the fitting networks' MACs, sorted (for the CDF)

    @property
    def name(self) -> str:
        return f"w{self.width:g}-r{self.resolution}"

    @property
    def fit_fraction(self) -> float:
        return self.fits / self.samples if self.samples else 0.0

    def as_json(self) -> dict:
        return {"width": self.width, "resolution": self.resolution, "mean_macs": round(self.mean_macs),
                "fit_fraction": round(self.fit_fraction, 4), "fits": self.fits, "samples": self.samples,
                "p10_macs": round(self.p10_macs), "p50_macs": round(self.p50_macs), "p90_macs": round(self.p90_macs),
                "max_macs": self.max_macs}


@dataclass(frozen=True)
class Stage1Result:
    chosen: SpaceStats
    configs: tuple[SpaceStats, ...]  # every space, in the grid's order
    strategy: str
    weights: str
    budgets: Budgets
    seconds: float

    def ranked(self) -> list[SpaceStats]:
        """The spaces, best first (largest mean MACs of fitting networks, then the larger fit fraction)."""
        return sorted(self.configs, key=_rank, reverse=True)

    def as_json(self) -> dict:
        return {"chosen": self.chosen.as_json(), "configs": [c.as_json() for c in self.configs],
                "strategy": self.strategy, "weights": self.weights, "budgets": self.budgets.as_json(),
                "seconds": round(self.seconds, 2)}


def _rank(s: SpaceStats) -> tuple[float, float]:
    return (s.mean_macs if s.fits else -1.0, s.fit_fraction)


def sample_space(space: SearchSpace, samples: int = 1000, seed: int = 0, strategy: str = "layer",
                 weights: str = "int8", code: CodeModel | None = None,
                 latency: LatencyModel | None = None, within: Budgets | None = None) -> Sample:
    """`samples` random networks of `space` (seeded by `seed`, W and R) and what each costs: MACs, peak SRAM
    under the memory model `strategy`, flash (const data in `weights`' format, plus `code(layers)` bytes)
    and, with a latency model, `latency(layers)` milliseconds (see oracles.code_model, latency_model).
    `within`: the largest budgets that will be asked; a network already over its SRAM or flash (const data
    alone) skips the code and latency models, its flash and latency recorded as infinite."""
    if strategy not in MEMORY_MODELS:
        raise ValueError(f"unknown strategy {strategy!r}: choose one of {', '.join(MEMORY_MODELS)}")
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"unknown weight format {weights!r}: choose one of {', '.join(WEIGHT_FORMATS)}")
    rng = random.Random(f"{seed}/{space.width:g}/{space.resolution}")
    macs, peak, flash = (np.zeros(samples, np.int64) for _ in range(3))
    ms = np.zeros(samples)
    for i in range(samples):
        spec = space.network(space.sample(rng))
        est = estimate(spec)
        macs[i] = est.macs
        peak[i] = _auto_peak(spec, est, within) if strategy == "auto" else peak_sram(spec, strategy, est)
        flash[i] = const_bytes(est, weights)
        if code is None and latency is None:
            continue
        if within is not None and ((within.sram_bytes is not None and peak[i] > within.sram_bytes)
                                   or (within.flash_bytes is not None and flash[i] > within.flash_bytes)):
            flash[i], ms[i] = _NEVER, np.inf
            continue
        rows = layers(spec)
        flash[i] += code(rows) if code is not None else 0
        ms[i] = latency(rows) if latency is not None else 0.0
    return Sample(space, macs, peak, flash, ms if latency is not None else None)


def _auto_peak(spec, est, within: Budgets | None) -> int:
    """The auto strategy's peak, or a stand-in that decides every SRAM budget up to `within`'s the same way:
    the layer-by-layer peak when it fits already (auto's is never higher), a lower bound when even that is
    over the budget; the exact figure only in between (nas.auto is ~100x slower than the layer estimate)."""
    from .auto import auto_estimate, auto_lower_bound

    if within is not None and within.sram_bytes is not None:
        if est.peak_sram_bytes <= within.sram_low:
            return est.peak_sram_bytes
        low = auto_lower_bound(spec)
        if low > within.sram_bytes:
            return low
    return auto_estimate(spec).peak_sram_bytes


_NEVER = np.iinfo(np.int64).max  # the flash of a network the expensive models skipped (it fits no budget asked)


def stats(sample: Sample, budgets: Budgets) -> SpaceStats:
    fit = np.sort(sample.macs[sample.fitting(budgets)])
    if not fit.size:
        return SpaceStats(sample.space.width, sample.space.resolution, int(sample.macs.size), 0, 0.0)
    p10, p50, p90 = np.percentile(fit, (10, 50, 90))
    return SpaceStats(sample.space.width, sample.space.resolution, int(sample.macs.size), int(fit.size),
                      float(fit.mean()), float(p10), float(p50), float(p90), int(fit[-1]), tuple(int(m) for m in fit))


MIN_FIT = 0.01  # a space's mean is a mean of 10 networks or more (of 1000), not of one lucky network


def choose(samples: Sequence[Sample], budgets: Budgets, *, strategy: str = "layer", weights: str = "int8",
           min_fit: float = MIN_FIT, seconds: float = 0.0) -> Stage1Result:
    """The space whose fitting networks have the largest mean MACs, among the spaces where at least
    `min_fit` of the samples fit (0: any space with one fitting network, the paper's rule; when no space
    reaches `min_fit`, the best of those with any); BudgetError when no network fits."""
    configs = tuple(stats(s, budgets) for s in samples)
    eligible = [c for c in configs if c.fits and c.fit_fraction >= min_fit]
    best = max(eligible or configs, key=_rank)
    if not best.fits:
        raise BudgetError(f"no sampled network of any space fits the budgets ({_budget_text(budgets)}): "
                          f"{_binding(samples, budgets)}")
    return Stage1Result(best, configs, strategy, weights, budgets, seconds)


def _binding(samples: Sequence[Sample], budgets: Budgets) -> str:
    """Which budget no sampled network meets, with the least any of them needs."""
    missed = []
    smallest = min(int(s.peak.min()) for s in samples)
    if budgets.sram_bytes is not None and smallest > budgets.sram_bytes:
        missed.append(f"the smallest needs {smallest:,} B of SRAM")
    if budgets.flash_bytes is not None and not any((s.flash <= budgets.flash_bytes).any() for s in samples):
        known = [int(s.flash[s.flash < _NEVER].min()) for s in samples if (s.flash < _NEVER).any()]
        missed.append(f"the lightest needs {min(known):,} B of flash" if known else
                      "none fits the flash (weights and constants alone)")
    if budgets.latency_ms is not None and all(s.latency_ms is not None for s in samples):
        fastest = min(float(s.latency_ms.min()) for s in samples)  # type: ignore[union-attr]
        if fastest > budgets.latency_ms:
            missed.append(f"the fastest takes {fastest:.3g} ms")
    return "; ".join(missed) or "each budget alone is met by some network, but none meets them all at once"


def _budget_text(b: Budgets) -> str:
    parts = [f"SRAM {b.sram_bytes:,} B" if b.sram_bytes is not None else "",
             f"flash {b.flash_bytes:,} B" if b.flash_bytes is not None else "",
             f"latency {b.latency_ms:g} ms" if b.latency_ms is not None else ""]
    return ", ".join(p for p in parts if p) or "none"


def _sample_one(args: tuple) -> Sample:
    return sample_space(*args)


def sample_spaces(spaces: Sequence[SearchSpace], samples: int = 1000, seed: int = 0, strategy: str = "layer",
                  weights: str = "int8", code: CodeModel | None = None, latency: LatencyModel | None = None,
                  within: Budgets | None = None, jobs: int = 1,
                  progress: Callable[[int], None] | None = None) -> list[Sample]:
    """sample_space for every space, on `jobs` processes; `progress(done)` after each space."""
    work = [(sp, samples, seed, strategy, weights, code, latency, within) for sp in spaces]
    out: list[Sample] = []
    if jobs <= 1:
        for args in work:
            out.append(_sample_one(args))
            if progress:
                progress(len(out))
        return out
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for sample in pool.map(_sample_one, work, chunksize=max(1, len(work) // (8 * jobs))):
            out.append(sample)
            if progress:
                progress(len(out))
    return out


def optimize_space(budgets: Budgets, *, channels: int = 3, classes: int = 1000, signal: bool = False,
                   widths: Iterable[float] = WIDTHS, resolutions: Iterable[int] = RESOLUTIONS,
                   samples: int = 1000, seed: int = 0, strategy: str = "layer", weights: str = "int8",
                   code: CodeModel | None = None, latency: LatencyModel | None = None, min_fit: float = MIN_FIT,
                   jobs: int = 1, progress: Callable[[int], None] | None = None) -> Stage1Result:
    """Stage 1 over the grid of (W, R) spaces for one task; see the module docstring."""
    start = time.perf_counter()
    spaces = [SearchSpace(w, r, channels=channels, classes=classes, signal=signal)
              for w in widths for r in resolutions]
    drawn = sample_spaces(spaces, samples, seed, strategy, weights, code, latency, Budgets.covering([budgets]), jobs,
                          progress)
    return choose(drawn, budgets, strategy=strategy, weights=weights, min_fit=min_fit,
                  seconds=time.perf_counter() - start)
