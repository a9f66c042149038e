"""The constant tables of the fixed-point front-end, computed once per config (numpy and the C use the same).

- window: periodic Hann of the window length, Q31 (int32, 1.0 saturates to 2^31 - 1);
- bit reversal of the M = fft_size/2 point complex FFT;
- FFT twiddles: cos and sin of 2*pi*k/M for k < M/2, Q30 (int32);
- split twiddles: cos and sin of 2*pi*k/fft_size for the bins the filters use, Q30 (int32);
- mel filters: HTK-mel triangles in Hz, Q15 weights (uint16, 1.0 = 32768), stored sparse: each filter's first
  bin, its number of bins and its weights back to back;
- log table: log2(1 + i/64) for i = 0..64, Q15 (uint16), read with linear interpolation.

Scaling (fixed.py, docs/audio.md): each windowed frame is normalised to an L1 norm below 2^30, so no value
of its FFT reaches 2^31 (int32 data, int64 products with the Q30 twiddles) and the power |X|^2 is below 2^62
(uint64, exact).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: config imports this module to validate a config
    from .config import FrontendConfig

Q15 = 1 << 15
Q30 = 1 << 30
Q31 = 1 << 31
LOG_TABLE_BITS = 6  # 64 intervals: interpolation error below 5e-5 in log2, a tenth of an output step
FRAC_BITS = 10  # the output codes: log2 of the mel energy in Q10
LOG_FLOOR = -20  # log2 of the energy floor added before the log (2^-20 for samples in [-1, 1))
WEIGHT_BITS = 15  # mel weights Q15
WINDOWED_BITS = 46  # x * w: Q15 samples times the Q31 window


def hz_to_mel(hz):
    """HTK mel scale: 2595 * log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_weights_float(config: FrontendConfig) -> np.ndarray:
    """(mels, fft_size/2 + 1) float64 triangles: filter m rises from edge m to edge m+1 and falls to edge m+2,
    edges equally spaced on the mel scale from low_hz to high_hz, linear in Hz between them, peak 1."""
    edges = mel_to_hz(np.linspace(hz_to_mel(config.low_hz), hz_to_mel(config.top_hz), config.mels + 2))
    freqs = np.arange(config.fft_size // 2 + 1) * (config.sample_rate / config.fft_size)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None, :] - left) / (centre - left)
    fall = (right - freqs[None, :]) / (right - centre)
    return np.maximum(0.0, np.minimum(rise, fall))


def mel_weights_q15(config: FrontendConfig) -> np.ndarray:
    return np.round(mel_weights_float(config) * Q15).astype(np.int64)


def empty_filters(config: FrontendConfig) -> list[int]:
    """Indices of the filters with no non-zero Q15 weight (a config with any is refused)."""
    return [int(m) for m in np.flatnonzero(mel_weights_q15(config).max(axis=1) == 0)]


def hann(length: int) -> np.ndarray:
    """Periodic Hann window (as TensorFlow's hann_window): 0.5 - 0.5 cos(2 pi n / length)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)


def window_q31(length: int) -> np.ndarray:
    return np.minimum(np.round(hann(length) * Q31), Q31 - 1).astype(np.int64)


def bit_reversal(m: int) -> np.ndarray:
    bits = m.bit_length() - 1
    return np.array([int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(m)], dtype=np.int64)


def _cos_sin_q30(k: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    angle = 2 * np.pi * k / period
    return np.round(np.cos(angle) * Q30).astype(np.int64), np.round(np.sin(angle) * Q30).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Tables:
    """Everything the integer front-end reads, as int64 numpy arrays (the C stores them narrower)."""

    window: np.ndarray  # (window,) Q31
    bitrev: np.ndarray  # (M,)
    fft_cos: np.ndarray  # (M/2,) Q30: cos(2 pi k / M)
    fft_sin: np.ndarray  # (M/2,) Q30: sin(2 pi k / M)
    first_bin: int  # the lowest bin any filter uses
    split_cos: np.ndarray  # (bins,) Q30: cos(2 pi k / fft_size), k = first_bin ..
    split_sin: np.ndarray
    mel_start: np.ndarray  # (mels,) first bin of each filter
    mel_count: np.ndarray  # (mels,) bins of each filter
    mel_weights: np.ndarray  # (sum of counts,) Q15, filter after filter
    log2_table: np.ndarray  # (65,) Q15: log2(1 + i / 64)

    @property
    def bins(self) -> int:
        """FFT bins the filters read: first_bin .. first_bin + bins - 1."""
        return len(self.split_cos)


@lru_cache(maxsize=32)
def tables(config: FrontendConfig) -> Tables:
    m = config.fft_size // 2
    weights = mel_weights_q15(config)
    starts, counts, flat = [], [], []
    for row in weights:
        nz = np.flatnonzero(row)
        starts.append(int(nz[0]))
        counts.append(int(nz[-1] - nz[0] + 1))
        flat.append(row[nz[0]:nz[-1] + 1])
    first = min(starts)
    last = max(s + c - 1 for s, c in zip(starts, counts))
    fft_cos, fft_sin = _cos_sin_q30(np.arange(m // 2), m)
    split_cos, split_sin = _cos_sin_q30(np.arange(first, last + 1), config.fft_size)
    log2_table = np.round(np.log2(1 + np.arange((1 << LOG_TABLE_BITS) + 1) / (1 << LOG_TABLE_BITS)) * Q15)
    out = Tables(window=window_q31(config.window_samples), bitrev=bit_reversal(m), fft_cos=fft_cos,
                 fft_sin=fft_sin, first_bin=first, split_cos=split_cos, split_sin=split_sin,
                 mel_start=np.array(starts, dtype=np.int64), mel_count=np.array(counts, dtype=np.int64),
                 mel_weights=np.concatenate(flat).astype(np.int64), log2_table=log2_table.astype(np.int64))
    for value in vars(out).values():  # shared by every caller through the cache: read-only
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return out
