"""Integer requantization arithmetic, exactly as TFLite Micro's reference kernels compute it.

All array functions are vectorised over numpy int64 arrays holding int32 values. The C twins of these
functions live in mcuforge/engine/runtime/mcu_common.h and must give the same bits.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ModelError

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
MAX_LEFT_SHIFT = 31  # a larger factor saturates every non-zero value, and the C shifts would overflow


class ScaleError(ModelError):
    """A model's quantization scales give a factor the integer arithmetic cannot represent; the engine's
    passes re-raise it with the layer that needs the factor."""


def tfl_round(x: float) -> int:
    """std::round: halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """A real multiplier as (int32 fixed-point multiplier in [2^30, 2^31), shift); shift > 0 is a left shift.

    As TFLite builds it with double rounding (the pip tflite-micro build): shifts above 30 are kept, up to
    31; a factor of 2^31 or more (or not finite) raises ScaleError."""
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real):
        raise ScaleError(f"a requantization factor of {real} from the quantization scales; the model is corrupt")
    q, shift = math.frexp(real)
    q_fixed = tfl_round(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if shift > MAX_LEFT_SHIFT:
        raise ScaleError(f"a requantization factor of {real:.3g} (over 2^{MAX_LEFT_SHIFT}) from the quantization "
                         "scales, which saturates every value; the scales are corrupt")
    return int(q_fixed), int(shift)


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, np.float64).ravel()]
    return (np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64))


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierSmallerThanOneExp: shift returned <= 0."""
    assert 0.0 < real < 1.0, real
    m, shift = quantize_multiplier(real)
    assert shift <= 0
    return m, shift


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b  # fits in int64 for int32 operands
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    # C integer division truncates toward zero
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray | int,
                                     shift: np.ndarray | int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding): int32 x times multiplier * 2^shift."""
    x = np.asarray(x, np.int64)
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = np.clip(x * (np.int64(1) << left), INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def activation_range(activation: str, scale: float, zero_point: int,
                     qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """The clamp a fused activation puts on a quantized output (TFLite's CalculateActivationRangeQuantized)."""
    s = np.float32(scale)

    def q(f: float) -> int:
        return zero_point + tfl_round(float(np.float32(f) / s))

    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, q(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise ValueError(f"unknown activation {activation!r}")


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement wrap of int64 values to `bits` bits (what a C cast to a narrower type does)."""
    half = np.int64(1) << (bits - 1)
    return ((np.asarray(x, np.int64) + half) & ((half << 1) - 1)) - half


def multiply_by_quantized_multiplier_wrapping(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLM's MultiplyByQuantizedMultiplier as compiled: the left shift wraps in int32."""
    left, right = max(shift, 0), max(-shift, 0)
    shifted = wrap(np.asarray(x, np.int64) << left, 32)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)
