"""The integer weights of a layer in each trainable weight format: per-channel scales and codes, computed the
same way for quantization-aware training's fake quantization (`qat`) and for the int8 graph it converts to
(`quantize_graph.quantize_with_ranges`), so the two agree value for value.

A layer's real weights w become scale[c] * code, code an int8 value in the format's set, one scale per output
channel c (CONV_2D: axis 0; DEPTHWISE_CONV_2D: axis 3; FULLY_CONNECTED: one for the tensor in int8, per output
channel in the low-bit formats, since 16 levels or fewer for a whole matrix lose too much). The kernels then
store the codes in the format (ir/formats.py) and compute with them as int8 values:

- int8: scale = max|w_c| / 127, code = round(w / scale) in [-127, 127] (TFLite's symmetric weights).
- int4: scale = max|w_c| / 7, code = round(w / scale) in [-8, 7].
- ternary: the rule of ternary weight networks (Li and Liu, 2016): a threshold t = 0.7 mean|w_c|, code =
  sign(w) where |w| > t, else 0, and scale = the mean |w| over the codes that are not 0 (the least-squares
  scale for those codes).
- pow2: scale = max|w_c| / 64, code = the nearest of 0, +-1, +-2, .. +-64 (logarithmic weights).
- codebook:B: weight sharing. The int8 codes of the int8 rule are replaced by the nearest entry of a table of
  2^B int8 values shared by the whole tensor (`table`, from `kmeans_centers` at the start and then trained:
  qat keeps it as a parameter). For B >= 2 the table's first entry is 0, so pruned weights stay 0.

Every scale is also at least what keeps the bias inside int32 with headroom (`quantize_graph.floored_scales`)
and is rounded to float32 before the codes are taken, as the int8 graph stores it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..ir.formats import CODEBOOKS, POW2, codebook_bits
from .quantize_graph import (WEIGHT_AXIS, WEIGHT_LEVELS, bias_peaks, floored_scales, layer_weight_scales,
                             quantize_symmetric)

TRAINABLE = ("int8", "int4", "ternary", "pow2", *CODEBOOKS)  # what qat trains into
TERNARY_THRESHOLD = 0.7  # x mean |w|: TWN's approximation of the optimal threshold
_TOP = {"int4": 7, "pow2": 64}  # the code max |w_c| maps to
_LEVELS = {"int4": np.arange(-8, 8), "pow2": np.array(POW2)}


def check_format(fmt: str) -> str:
    if fmt not in TRAINABLE:
        raise UsageError(f"weight format {fmt!r} cannot be trained: choose one of {', '.join(TRAINABLE)}")
    return fmt


def weight_axis(fmt: str, kind: str) -> int | None:
    """The axis of the layer's weights that carries one scale each (None: one scale for the tensor)."""
    if fmt == "int8" or fmt in CODEBOOKS:
        return WEIGHT_AXIS[kind]
    return 3 if kind == "DEPTHWISE_CONV_2D" else 0


def nearest(x: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The index in the sorted `levels` of the level nearest each x (the lower one on a tie)."""
    return np.searchsorted((levels[1:] + levels[:-1]) / 2, x, side="left")


def kmeans_centers(values: np.ndarray, count: int, iterations: int = 50) -> np.ndarray:
    """At most `count` sorted centers of 1-D k-means over `values` (Lloyd's iterations from the quantiles)."""
    v = np.asarray(values, np.float64).reshape(-1)
    if np.unique(v).size <= count:
        return np.unique(v)
    centers = np.unique(np.quantile(v, (np.arange(count) + 0.5) / count))
    for _ in range(iterations):
        index = nearest(v, centers)
        sums, sizes = np.bincount(index, v, centers.size), np.bincount(index, minlength=centers.size)
        moved = np.where(sizes > 0, sums / np.maximum(sizes, 1), centers)
        if np.allclose(moved, centers):
            break
        centers = np.unique(moved)
    return centers


@dataclass(frozen=True)
class LayerWeights:
    """A layer's weights on its format's grid: real value = scales (along `axis`) x codes."""

    scales: np.ndarray  # float32, one per channel along axis (one when axis is None)
    codes: np.ndarray  # int8, the weights' shape (IR layout)
    axis: int | None
    index: np.ndarray | None = None  # codebook: each weight's entry in the table, the weights' shape

    def real(self) -> np.ndarray:
        """scales x codes in float64, the weights' shape."""
        return self.codes.astype(np.float64) * _along(self.scales.astype(np.float64), self.axis, self.codes.ndim)


def _along(values: np.ndarray, axis: int | None, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    if axis is not None:
        shape[axis] = -1
    return values.reshape(shape)


def _channels(real: np.ndarray, axis: int | None) -> np.ndarray:
    return np.moveaxis(real, axis, 0).reshape(real.shape[axis], -1) if axis is not None else real.reshape(1, -1)


def table_values(table: np.ndarray) -> np.ndarray:
    """A codebook's int8 entries from its trained real-valued table (in int8 steps)."""
    return np.clip(np.round(np.asarray(table, np.float64)), -WEIGHT_LEVELS, WEIGHT_LEVELS)


def quantize_layer(fmt: str, kind: str, weights: np.ndarray, bias: np.ndarray | None, input_scale: float,
                   table: np.ndarray | None = None) -> LayerWeights:
    """The layer's real `weights` (IR layout) on `fmt`'s grid (see the module docstring); `table`: a
    codebook's entries in int8 steps (rounded here)."""
    real = np.asarray(weights, np.float64)
    axis = weight_axis(fmt, kind)
    flat = _channels(real, axis)
    magnitude = np.abs(flat)
    if fmt == "ternary":
        threshold = TERNARY_THRESHOLD * magnitude.mean(axis=1, keepdims=True)
        kept = magnitude > threshold
        mean_kept = (magnitude * kept).sum(axis=1) / np.maximum(kept.sum(axis=1), 1)
        scales = floored_scales(np.where(kept.any(axis=1), mean_kept, magnitude.max(axis=1)),
                                bias_peaks(bias, axis is not None), input_scale)
        codes = np.sign(flat) * kept
        return _layer(codes, scales, real.shape, axis)
    if fmt == "int8" or fmt in CODEBOOKS:  # TFLite's int8 rule (quantize_graph), a codebook then snaps the codes
        scales = layer_weight_scales(kind, real, bias, input_scale)
        codes = quantize_symmetric(flat, scales)
        if fmt == "int8":
            return _layer(codes, scales, real.shape, axis)
        if table is None:
            raise ValueError(f"{fmt} needs its table")
        entries = table_values(table)
        order = np.argsort(entries, kind="stable")
        index = order[nearest(codes, entries[order])]
        return _layer(entries[index], scales, real.shape, axis, index)
    scales = floored_scales(magnitude.max(axis=1) / _TOP[fmt], bias_peaks(bias, axis is not None), input_scale)
    steps = flat / scales.astype(np.float64)[:, None]
    levels = _LEVELS[fmt]
    return _layer(levels[nearest(steps, levels.astype(np.float64))], scales, real.shape, axis)


def _layer(codes: np.ndarray, scales: np.ndarray, shape: tuple[int, ...], axis: int | None,
           index: np.ndarray | None = None) -> LayerWeights:
    def back(flat: np.ndarray) -> np.ndarray:
        if axis is None:
            return flat.reshape(shape)
        moved = (shape[axis], *[s for i, s in enumerate(shape) if i != axis])
        return np.moveaxis(flat.reshape(moved), 0, axis)

    return LayerWeights(scales, np.ascontiguousarray(back(codes)).astype(np.int8), axis,
                        None if index is None else np.ascontiguousarray(back(index)))


def pinned_zeros(entries: int) -> int:
    """How many leading entries of a codebook's table are a fixed 0: one for tables of 4 or more."""
    return 1 if entries >= 4 else 0


def initial_table(fmt: str, kind: str, weights: np.ndarray) -> np.ndarray:
    """A codebook's starting table, in int8 steps: k-means over the layer's int8 codes, with 0 as its first
    entry for tables of 4 or more (see the module docstring)."""
    count = 1 << codebook_bits(fmt)
    codes = quantize_layer("int8", kind, weights, None, 1.0).codes
    pinned = pinned_zeros(count)
    centers = kmeans_centers(codes[codes != 0] if pinned and (codes != 0).any() else codes, count - pinned)
    centers = np.concatenate([np.zeros(int(pinned)), centers])
    return np.concatenate([centers, np.full(count - centers.size, centers[-1])]).astype(np.float64)


__all__ = ["LayerWeights", "TRAINABLE", "check_format", "initial_table", "kmeans_centers", "nearest",
           "pinned_zeros", "quantize_layer", "table_values", "weight_axis"]
