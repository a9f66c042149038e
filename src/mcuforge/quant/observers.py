"""Range observers: each watches one activation tensor, batch by batch, and proposes its real range.

- `MinMaxObserver`: the smallest and largest value seen.
- `MovingAverageMinMaxObserver`: an exponential moving average of each batch's min and max (PyTorch's
  MovingAverageMinMaxObserver: the first batch sets them, then x += c * (batch_x - x)).
- `PercentileObserver`: the (100 - p) and p percentiles (p = 99.99 by default), read off a histogram.
- `MseObserver`: the clipping range that minimises the expected int8 quantization error (rounding noise
  inside the range plus clipping error outside it), searched over a histogram.

The two histogram observers keep a fixed number of bins whose range grows when a batch falls outside it:
the bin width is multiplied by a power of two and old bins are merged exactly into new ones, so no value
is ever stored. Values may be numpy arrays or torch tensors (torch does the counting then; torch is not
imported here). Every range includes 0, so that 0.0 has an exact int8 code.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np

Range = tuple[float, float]
INT8_LEVELS = 255  # steps between -128 and 127


def _is_torch(values: Any) -> bool:
    return type(values).__module__.startswith("torch")


def _extremes(values: Any) -> Range | None:
    """(min, max) of a numpy array or torch tensor; None when it is empty. NaN or infinity: ValueError."""
    if _is_torch(values):
        if values.numel() == 0:
            return None
        lo, hi = (float(v) for v in values.detach().aminmax())
    else:
        values = np.asarray(values)
        if values.size == 0:
            return None
        lo, hi = float(values.min()), float(values.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"values include NaN or infinity (min {lo}, max {hi})")
    return lo, hi


def _histogram(values: Any, lo: float, hi: float, bins: int) -> np.ndarray:
    """Counts (float64) of `values` in `bins` equal bins over [lo, hi]."""
    if _is_torch(values):
        counts = values.detach().float().histc(bins=bins, min=lo, max=hi)
        return counts.double().cpu().numpy()
    counts, _ = np.histogram(np.asarray(values, np.float32), bins=bins, range=(lo, hi))
    return counts.astype(np.float64)


def with_zero(lo: float, hi: float) -> Range:
    return min(float(lo), 0.0), max(float(hi), 0.0)


class Observer(ABC):
    """Watches one tensor: `update` with each batch of its values, then `range` gives (lo, hi), lo <= 0 <= hi."""

    @abstractmethod
    def update(self, values: Any) -> None: ...

    @abstractmethod
    def range(self) -> Range: ...


class MinMaxObserver(Observer):
    def __init__(self) -> None:
        self.lo = math.inf
        self.hi = -math.inf

    def update(self, values: Any) -> None:
        extremes = _extremes(values)
        if extremes is not None:
            self.include(*extremes)

    def include(self, lo: float, hi: float) -> None:
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)

    def range(self) -> Range:
        if self.lo > self.hi:  # nothing seen
            return 0.0, 0.0
        return with_zero(self.lo, self.hi)


class MovingAverageMinMaxObserver(Observer):
    def __init__(self, averaging_constant: float = 0.01) -> None:
        if not 0.0 < averaging_constant <= 1.0:
            raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant}")
        self.averaging_constant = averaging_constant
        self.lo: float | None = None
        self.hi: float | None = None

    def update(self, values: Any) -> None:
        extremes = _extremes(values)
        if extremes is None:
            return
        if self.lo is None or self.hi is None:
            self.lo, self.hi = extremes
            return
        c = self.averaging_constant
        self.lo += c * (extremes[0] - self.lo)
        self.hi += c * (extremes[1] - self.hi)

    def range(self) -> Range:
        if self.lo is None or self.hi is None:
            return 0.0, 0.0
        return with_zero(self.lo, self.hi)


class HistogramObserver(Observer):
    """A histogram of `bins` equal bins over [lo, lo + bins * width] that grows to cover every batch."""

    def __init__(self, bins: int = 2048) -> None:
        if bins < 2:
            raise ValueError(f"a histogram needs at least 2 bins, got {bins}")
        self.bins = bins
        self.counts = np.zeros(bins, np.float64)
        self.lo = 0.0
        self.width = 0.0  # 0 until the first batch
        self.seen = MinMaxObserver()  # the exact range seen: estimates are clipped to it

    @property
    def hi(self) -> float:
        return self.lo + self.bins * self.width

    @property
    def edges(self) -> np.ndarray:
        return self.lo + self.width * np.arange(self.bins + 1, dtype=np.float64)

    def update(self, values: Any) -> None:
        extremes = _extremes(values)
        if extremes is None:
            return
        self.seen.include(*extremes)
        self._cover(*with_zero(*extremes))
        self.counts += _histogram(values, self.lo, self.hi, self.bins)

    def clipped(self, lo: float, hi: float) -> Range:
        """(lo, hi) limited to the range of the values seen (0 included)."""
        seen_lo, seen_hi = self.seen.range()
        return with_zero(max(lo, seen_lo), min(hi, seen_hi))

    def _cover(self, lo: float, hi: float) -> None:
        """Grows the histogram (if needed) so that it covers [lo, hi]."""
        if self.width == 0.0:
            self.lo, self.width = lo, max(hi - lo, 1e-12) / self.bins
            return
        need_left = max(math.ceil((self.lo - lo) / self.width), 0)
        need_right = max(math.ceil((hi - self.hi) / self.width), 0)
        if need_left == 0 and need_right == 0:
            return
        factor = 1 << max(math.ceil(math.log2((self.bins + need_left + need_right) / self.bins)), 0)
        slack = self.bins * factor - self.bins - need_left - need_right
        if need_left and need_right:  # share the spare bins in proportion to the growth on each side
            left = need_left + slack * need_left // (need_left + need_right)
        else:
            left = need_left + (slack if need_left else 0)
        self._regrid(left, factor)

    def _regrid(self, left: int, factor: int) -> None:
        """New bins `factor` times wider, starting `left` old bins before the current start."""
        new_index = (np.arange(self.bins, dtype=np.int64) + left) // factor
        self.counts = np.bincount(new_index, weights=self.counts, minlength=self.bins)[: self.bins]
        self.lo -= left * self.width
        self.width *= factor

    def quantile(self, q: float) -> float:
        """The value below which a fraction q of the counts lie (linear inside a bin)."""
        total = self.counts.sum()
        cumulative = np.cumsum(self.counts)
        target = q * total
        i = int(min(np.searchsorted(cumulative, target, side="left"), self.bins - 1))
        before = cumulative[i] - self.counts[i]
        inside = (target - before) / self.counts[i] if self.counts[i] > 0 else 0.0
        return self.lo + self.width * (i + float(np.clip(inside, 0.0, 1.0)))

    @property
    def empty(self) -> bool:
        return self.width == 0.0 or not self.counts.any()


class PercentileObserver(HistogramObserver):
    """(lo, hi) = the (100 - p)th and pth percentiles of everything seen."""

    def __init__(self, percentile: float = 99.99, bins: int = 2048) -> None:
        super().__init__(bins)
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile

    def range(self) -> Range:
        if self.empty:
            return 0.0, 0.0
        q = self.percentile / 100.0
        return self.clipped(self.quantile(1.0 - q), self.quantile(q))


class MseObserver(HistogramObserver):
    """The clipping range [a, b] (a <= 0 <= b, both on bin edges) minimising the expected squared error of
    int8 quantization: counts inside times step^2 / 12 (uniform rounding noise, step = (b - a) / 255),
    plus the squared distance to the range of every value outside it (bin centres stand for values)."""

    def __init__(self, bins: int = 2048, candidates: int = 512) -> None:
        super().__init__(bins)
        self.candidates = candidates

    def _candidate_edges(self, first: int, last: int) -> np.ndarray:
        """At most `candidates` edge indices from first to last, both included."""
        count = min(last - first + 1, self.candidates)
        return np.unique(np.linspace(first, last, count).round().astype(np.int64))

    def range(self) -> Range:
        if self.empty:
            return 0.0, 0.0
        edges = self.edges
        centres = edges[:-1] + self.width / 2
        zero = int(np.searchsorted(edges, 0.0, side="right"))  # edges[:zero] <= 0 < edges[zero:]
        left = self._candidate_edges(0, max(zero - 1, 0))
        right = self._candidate_edges(min(zero, self.bins), self.bins)
        errors = self._errors(edges, centres, left, right)
        i, j = np.unravel_index(int(np.argmin(errors)), errors.shape)
        return self.clipped(edges[left[i]], edges[right[j]])

    def _errors(self, edges: np.ndarray, centres: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Expected squared error for every (left[i], right[j]) pair of edge indices, [len(left), len(right)]."""
        n = self.counts
        p0, p1, p2 = (np.concatenate([[0.0], np.cumsum(n * centres ** k)]) for k in range(3))
        a, b = edges[left], edges[right]
        below = p2[left] - 2 * a * p1[left] + a * a * p0[left]  # values left of a, clipped to a
        above = (p2[-1] - p2[right]) - 2 * b * (p1[-1] - p1[right]) + b * b * (p0[-1] - p0[right])
        inside = p0[right][None, :] - p0[left][:, None]
        step = (b[None, :] - a[:, None]) / INT8_LEVELS
        return below[:, None] + above[None, :] + inside * step * step / 12.0


OBSERVERS: dict[str, Callable[[], Observer]] = {
    "minmax": MinMaxObserver,
    "ema": MovingAverageMinMaxObserver,
    "percentile": PercentileObserver,
    "mse": MseObserver,
}


def make_observer(name: str) -> Observer:
    """A fresh observer by name: 'minmax', 'ema', 'percentile' or 'mse'."""
    factory = OBSERVERS.get(name)
    if factory is None:
        raise ValueError(f"unknown observer {name!r}: choose one of {', '.join(OBSERVERS)}")
    return factory()
