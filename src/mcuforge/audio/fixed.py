"""The fixed-point log-mel front-end in numpy: integers only, the statement of what the generated C computes
bit for bit (docs/audio.md gives the definition with its bounds).

Per frame of `window` int16 samples x (F = fft_size, M = F/2):

1. window:     p[n] = x[n] * hann_q31[n]                               (int64, Q46 of full scale)
2. normalise:  r = max(bitlength(sum |p|) - 30, 0); xn = (p + 2^r / 2) >> r: block floating point on the
               frame's L1 norm, which bounds every value of its FFT: sum |xn| < 2^30 + window, so the FFT
               fits int32 with no scaling at any stage, and quiet frames keep all their bits (r comes back
               in step 7)
3. FFT:        the F real points as M complex ones z[j] = xn[2j] + i xn[2j+1], bit-reversed, radix-2
               decimation in time, int32 data, Q30 twiddles; each rotated part rounded once:
               (a*c + b*s + 2^29) >> 30
4. split:      X[k] = (Z[k] + conj Z[M-k]) / 2 - i W^k (Z[k] - conj Z[M-k]) / 2, one rounding per part:
               (A * 2^30 + c*Bi - s*Br + 2^30) >> 31
5. power:      P[k] = Xr^2 + Xi^2, exact (< 2^61), in two 32-bit halves P = hi * 2^32 + lo
6. mel:        E[m] = 2^32 * sum_k hi[k] w[m,k] + sum_k lo[k] w[m,k]     (w: Q15; two uint64 sums, E < 2^96)
7. log:        v = E + 2^(87 - 2r)   (the floor 2^-20 in E's units: E = mel * 2^(107 - 2r));
               code = round((log2 v - (107 - 2r)) * 2^10): log2 from the bit length of v and a 64-interval
               table of log2(1 + f) with linear interpolation on the next 16 bits.

A code c stands for log2(mel + 2^-20) = c / 1024, mel being the mel energy of the samples scaled to [-1, 1);
`to_float` gives ln(mel + 2^-20) (natural log, as TensorFlow's log-mel recipes use).
"""
from __future__ import annotations

import numpy as np

from .config import FrontendConfig
from .tables import (
    FRAC_BITS,
    LOG_FLOOR,
    LOG_TABLE_BITS,
    WEIGHT_BITS,
    WINDOWED_BITS,
    Tables,
    tables,
)

CHUNK_FRAMES = 4096  # frames per vectorised block (arrays of 4096 x fft_size int64)
LOG_BIAS = 64  # added to the integer part of the log before the final shift, so that it is never negative
NORM_BITS = 30  # a frame's L1 norm after normalisation is below 2^NORM_BITS (plus the rounding)
ENERGY_UNITS = 2 * WINDOWED_BITS + WEIGHT_BITS  # E = mel * 2^(ENERGY_UNITS - 2r)

__all__ = ["bit_length", "features", "frame_features", "to_float"]


def bit_length(v: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values (0 for 0), exact over the whole int64 range."""
    v = np.asarray(v, dtype=np.int64)
    n = np.zeros(v.shape, dtype=np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        big = v >= (1 << step)
        n += big * step
        v = np.where(big, v >> step, v)
    return n + (v > 0)


def check_samples(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    if x.dtype != np.int16:
        raise ValueError(f"audio samples must be int16 (got {x.dtype}); scale real-valued audio in [-1, 1) with "
                         "np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)")
    if x.ndim not in (1, 2):
        raise ValueError(f"audio must be one clip (samples,) or a batch (clips, samples), got shape {list(x.shape)}")
    return x


def frames_of(clips: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """(clips, samples) -> (clips, frames, window) view: whole windows, one every stride."""
    count = config.frames(clips.shape[1])
    windows = np.lib.stride_tricks.sliding_window_view(clips, config.window_samples, axis=1)
    return windows[:, ::config.stride_samples][:, :count]


def _fft(re: np.ndarray, im: np.ndarray, t: Tables) -> tuple[np.ndarray, np.ndarray]:
    """Radix-2 DIT stages over rows already in bit-reversed order (step 3)."""
    f, m = re.shape
    h = 1
    while h < m:
        step = m // (2 * h)
        c, s = t.fft_cos[::step][:h], t.fft_sin[::step][:h]
        re4, im4 = re.reshape(f, step, 2, h), im.reshape(f, step, 2, h)
        ar, br, ai, bi = re4[:, :, 0], re4[:, :, 1], im4[:, :, 0], im4[:, :, 1]
        tr = (br * c + bi * s + (1 << 29)) >> 30
        ti = (bi * c - br * s + (1 << 29)) >> 30
        re = np.stack([ar + tr, ar - tr], axis=2).reshape(f, m)
        im = np.stack([ai + ti, ai - ti], axis=2).reshape(f, m)
        h *= 2
    return re, im


def _power(re: np.ndarray, im: np.ndarray, t: Tables, fft_size: int) -> np.ndarray:
    """P[k] for the bins the filters read, from the half-size complex FFT (steps 4 and 5)."""
    m = fft_size // 2
    k = t.first_bin + np.arange(t.bins)
    kk, km = k % m, (m - k) % m
    ar, ai = re[:, kk] + re[:, km], im[:, kk] - im[:, km]
    br, bi = re[:, kk] - re[:, km], im[:, kk] + im[:, km]
    c, s = t.split_cos, t.split_sin
    xr = ((ar << 30) + c * bi - s * br + (1 << 30)) >> 31
    xi = ((ai << 30) - c * br - s * bi + (1 << 30)) >> 31
    return xr * xr + xi * xi


def _mel(power: np.ndarray, t: Tables, mels: int) -> tuple[np.ndarray, np.ndarray]:
    """Step 6: (high, low) with E = high * 2^32 + low, low < 2^32 (the carry of the low sum moved up)."""
    lo, hi = power & 0xFFFFFFFF, power >> 32
    sum_lo = np.empty((len(power), mels), dtype=np.int64)
    sum_hi = np.empty((len(power), mels), dtype=np.int64)
    pos = 0
    for m, (start, count) in enumerate(zip(t.mel_start.tolist(), t.mel_count.tolist())):
        first, w = start - t.first_bin, t.mel_weights[pos:pos + count]
        sum_lo[:, m] = lo[:, first:first + count] @ w
        sum_hi[:, m] = hi[:, first:first + count] @ w
        pos += count
    return sum_hi + (sum_lo >> 32), sum_lo & 0xFFFFFFFF


def _log2_q10(high: np.ndarray, low: np.ndarray, units: np.ndarray, t: Tables) -> np.ndarray:
    """round((log2(high * 2^32 + low) - units) * 2^10) as the C computes it (step 7); value >= 1."""
    b_hi, b_lo = bit_length(high), bit_length(low)
    e = np.where(high > 0, 31 + b_hi, b_lo - 1)  # floor(log2 v)
    top = np.where(b_hi > 32, high >> np.maximum(b_hi - 32, 0),
                   (high << np.clip(32 - b_hi, 0, 32)) | (low >> np.minimum(b_hi, 32)))
    u = np.where(high > 0, top, low << np.maximum(32 - b_lo, 0))  # v's top 32 bits, leading one at bit 31
    idx = (u >> (31 - LOG_TABLE_BITS)) & ((1 << LOG_TABLE_BITS) - 1)
    r = (u >> (15 - LOG_TABLE_BITS)) & 0xFFFF
    base = t.log2_table[idx]
    frac = base + (((t.log2_table[idx + 1] - base) * r + (1 << 15)) >> 16)
    shift = 15 - FRAC_BITS
    return ((((e - units + LOG_BIAS) << 15) + frac + (1 << (shift - 1))) >> shift) - (LOG_BIAS << FRAC_BITS)


def frame_features(frames: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """(F, window) int16 frames -> (F, mels) int16 codes."""
    t = tables(config)
    p = frames.astype(np.int64) * t.window
    r = np.maximum(bit_length(np.abs(p).sum(axis=1)) - NORM_BITS, 0)[:, None]
    buf = np.zeros((len(frames), config.fft_size), dtype=np.int64)
    buf[:, :config.window_samples] = (p + ((np.int64(1) << r) >> 1)) >> r
    re, im = _fft(buf[:, 0::2][:, t.bitrev], buf[:, 1::2][:, t.bitrev], t)
    del buf
    high, low = _mel(_power(re, im, t, config.fft_size), t, config.mels)
    floor = ENERGY_UNITS + LOG_FLOOR - 2 * r  # 29..87 (r <= 29): into the low or the high word
    low = low + (np.int64(1) << (floor & 31)) * (floor < 32)
    high = high + (np.int64(1) << np.maximum(floor - 32, 0)) * (floor >= 32) + (low >> 32)
    codes = _log2_q10(high, low & 0xFFFFFFFF, ENERGY_UNITS - 2 * r, t)
    return codes.astype(np.int16)


def features(samples: np.ndarray, config: FrontendConfig | None = None) -> np.ndarray:
    """Log-mel features of raw int16 audio: (samples,) -> (frames, mels) int16, or (clips, samples) ->
    (clips, frames, mels). Codes are log2(mel energy + 2^-20) in Q10 (see `to_float`); integer arithmetic
    only, bit for bit what the C of `emit_frontend_c` computes."""
    config = FrontendConfig() if config is None else config
    x = check_samples(samples)
    clips = x[None] if x.ndim == 1 else x
    count = config.frames(clips.shape[1])
    out = np.empty((len(clips), count, config.mels), dtype=np.int16)
    if count and len(clips):
        windows = frames_of(clips, config)
        per = max(1, CHUNK_FRAMES // count)
        for i in range(0, len(clips), per):
            block = windows[i:i + per].reshape(-1, config.window_samples)
            out[i:i + per] = frame_features(block, config).reshape(-1, count, config.mels)
    return out[0] if x.ndim == 1 else out


def to_float(codes: np.ndarray, dtype=np.float32) -> np.ndarray:
    """The real values the codes stand for: ln(mel + 2^-20), mel from samples scaled to [-1, 1)."""
    return (np.asarray(codes, dtype=np.float64) * (np.log(2.0) / (1 << FRAC_BITS))).astype(dtype)
