"""The float64 log-mel of the same definition as the fixed-point front-end, without any rounding: the
yardstick for its error. Samples scaled to [-1, 1), periodic Hann window, rfft zero padded to fft_size,
power spectrum, HTK-mel triangles, ln(mel + 2^-20)."""
from __future__ import annotations

import numpy as np

from .config import FrontendConfig
from .fixed import check_samples, frames_of
from .tables import LOG_FLOOR, hann, mel_weights_float


def log_mel_float(samples: np.ndarray, config: FrontendConfig | None = None) -> np.ndarray:
    """(samples,) -> (frames, mels) or (clips, samples) -> (clips, frames, mels), float64 natural log."""
    config = FrontendConfig() if config is None else config
    x = check_samples(samples)
    clips = x[None] if x.ndim == 1 else x
    window, weights = hann(config.window_samples), mel_weights_float(config)
    out = np.empty((len(clips), config.frames(clips.shape[1]), config.mels))
    if out.size:
        for i, frames in enumerate(frames_of(clips, config)):
            spectrum = np.fft.rfft(frames / 32768.0 * window, n=config.fft_size)
            out[i] = np.log((spectrum.real ** 2 + spectrum.imag ** 2) @ weights.T + 2.0 ** LOG_FLOOR)
    return out[0] if x.ndim == 1 else out
