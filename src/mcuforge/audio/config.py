"""`FrontendConfig`: what the audio front-end computes (window, hop, FFT size, mel band), checked once.

Every value is validated in `__post_init__` with a one-line ValueError that says what to change, so a
config that exists can always be computed in numpy and in the generated C without overflow (the bounds
are derived in docs/audio.md and in `tables.py`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MAX_FFT_SIZE = 4096  # keeps every product of the fixed-point FFT inside int64 (docs/audio.md)
MIN_FFT_SIZE = 16
MAX_MELS = 256


def _positive_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"FrontendConfig: {name}={value!r} must be a positive finite number")
    return float(value)


@dataclass(frozen=True)
class FrontendConfig:
    """Log-mel front-end for raw int16 audio.

    sample_rate: Hz of the int16 input. window_ms / stride_ms: analysis window and hop; both must be a
    whole number of samples. fft_size: power of two >= the window (zero padded at the end). mels: number
    of triangular filters, HTK mel scale, from low_hz to high_hz (default: sample_rate / 2).

    One second at 16 kHz with the defaults gives 49 frames x 40 mels.
    """

    sample_rate: int = 16000
    window_ms: float = 30.0
    stride_ms: float = 20.0
    fft_size: int = 512
    mels: int = 40
    low_hz: float = 20.0
    high_hz: float | None = 4000.0

    def __post_init__(self) -> None:
        sr = self.sample_rate
        if isinstance(sr, bool) or not isinstance(sr, int) or not 1000 <= sr <= 192000:
            raise ValueError(f"FrontendConfig: sample_rate={sr!r} must be an integer number of Hz in 1000..192000")
        for name in ("window_ms", "stride_ms"):
            ms = _positive_number(name, getattr(self, name))
            samples = ms * sr / 1000.0
            if abs(samples - round(samples)) > 1e-9 or round(samples) < 1:
                raise ValueError(f"FrontendConfig: {name}={ms:g} is {samples:g} samples at {sr} Hz; choose a "
                                 "value that is a whole number of samples")
        n = self.fft_size
        if isinstance(n, bool) or not isinstance(n, int) or n < MIN_FFT_SIZE or n > MAX_FFT_SIZE or n & (n - 1):
            raise ValueError(f"FrontendConfig: fft_size={n!r} must be a power of two in "
                             f"{MIN_FFT_SIZE}..{MAX_FFT_SIZE}")
        if self.window_samples > n:
            raise ValueError(f"FrontendConfig: the window of {self.window_samples} samples ({self.window_ms:g} ms) "
                             f"does not fit fft_size={n}; use fft_size >= {1 << (self.window_samples - 1).bit_length()}"
                             " or a shorter window_ms")
        m = self.mels
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= MAX_MELS:
            raise ValueError(f"FrontendConfig: mels={m!r} must be an integer in 1..{MAX_MELS}")
        low = self.low_hz
        if isinstance(low, bool) or not isinstance(low, (int, float)) or not math.isfinite(low) or low < 0:
            raise ValueError(f"FrontendConfig: low_hz={low!r} must be a finite number >= 0")
        high = self.top_hz
        if isinstance(high, bool) or not isinstance(high, (int, float)) or not math.isfinite(high):
            raise ValueError(f"FrontendConfig: high_hz={self.high_hz!r} must be a finite number of Hz, or None for "
                             "sample_rate/2")
        if not low < high <= sr / 2:
            raise ValueError(f"FrontendConfig: high_hz={self.high_hz!r} must lie above low_hz={low:g} and at most "
                             f"sample_rate/2 = {sr / 2:g}")
        from .tables import empty_filters  # the filters depend on every value above

        empty = empty_filters(self)
        if empty:
            raise ValueError(f"FrontendConfig: mel filter {empty[0]} (of {m}) covers no FFT bin: {n}-point bins are "
                             f"{sr / n:g} Hz apart; use fewer mels, a higher low_hz or a larger fft_size")

    @property
    def top_hz(self) -> float:
        """The upper edge of the mel band (high_hz, or sample_rate / 2 when high_hz is None)."""
        return self.sample_rate / 2 if self.high_hz is None else self.high_hz

    @property
    def window_samples(self) -> int:
        return round(self.window_ms * self.sample_rate / 1000.0)

    @property
    def stride_samples(self) -> int:
        return round(self.stride_ms * self.sample_rate / 1000.0)

    def frames(self, samples: int) -> int:
        """Frames in a clip of `samples` samples: windows that fit whole, one every stride (0 if none fits)."""
        if samples < self.window_samples:
            return 0
        return 1 + (samples - self.window_samples) // self.stride_samples

    def shape(self, samples: int) -> tuple[int, int]:
        """Shape of the features of one clip: (frames, mels)."""
        return (self.frames(samples), self.mels)
