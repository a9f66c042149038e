"""gemmlowp-style fixed-point arithmetic, as TFLite Micro's softmax, logistic and tanh kernels compute it.

A fixed-point value is an int32 `raw` with `integer_bits` bits left of the binary point (Q<ib>.<31-ib>):
real = raw / 2^(31 - integer_bits). Every array function here is vectorised over numpy int64 arrays
holding int32 values; `integer_bits` arguments are Python ints (compile-time template parameters in
TFLM). The C twin is mcuforge/engine/runtime/mcu_fixedpoint.h and must give the same bits.

The compile-time half (what TFLM's Prepare computes, in double precision) is at the end:
`softmax_scaling`, `log_softmax_scaling`, `nonlinearity_scaling`, `input_radius`.
"""
from __future__ import annotations

import math

import numpy as np

from .intmath import (quantize_multiplier, INT32_MAX, INT32_MIN, ScaleError, rounding_divide_by_pot,
                      saturating_rounding_doubling_high_mul, tfl_round)

Array = np.ndarray

srdhm = saturating_rounding_doubling_high_mul

# Raw Q0.31 constants (the values TFLM's CHECKED_FIXEDPOINT_CONSTANTs resolve to).
EXP_MINUS_ONE_EIGHTH = 1895147668  # exp(-1/8)
ONE_THIRD = 715827883
# exp(-2^k) for k = -2 .. 4, the barrel shifter of exp_on_negative_values
EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
              (3, 720401), (4, 242))
FORTY_EIGHT_OVER_17_Q2 = 1515870810  # 48/17 in Q2.29
NEG_THIRTY_TWO_OVER_17_Q2 = -1010580540  # -32/17 in Q2.29
LOG_2 = 1488522236
SQRT_SQRT_HALF = 1805811301
SQRT_HALF = 1518500250
ONE_QUARTER = 536870912
ALPHA_N = 117049297
ALPHA_D = 127690142
ALPHA_I = 1057819769
ALPHA_F = 638450708


def _i64(x: Array | int) -> Array:
    return np.asarray(x, np.int64)


# ----------------------------------------------------------------------------- primitives


def one(integer_bits: int) -> int:
    """The raw value of 1.0 (saturated to INT32_MAX in Q0.31)."""
    return INT32_MAX if integer_bits == 0 else 1 << (31 - integer_bits)


def constant_pot(integer_bits: int, exponent: int) -> int:
    """The raw value of 2^exponent."""
    return 1 << (31 - integer_bits + exponent)


def saturating_rounding_multiply_by_pot(x: Array, exponent: int) -> Array:
    """x * 2^exponent: a saturating left shift (exponent > 0) or a rounding right shift (exponent < 0)."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    shifted = np.clip(x * (1 << exponent), INT32_MIN, INT32_MAX)
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, shifted))


def saturating_rounding_multiply_by_pot_param(x: Array, exponent: Array) -> Array:
    """TFLite's SaturatingRoundingMultiplyByPOTParam: a saturating left shift by a run-time exponent >= 0."""
    x = _i64(x)
    exponent = np.broadcast_to(_i64(exponent), np.broadcast(x, exponent).shape)
    e = np.clip(exponent, 0, 31)
    threshold = (np.int64(1) << (31 - e)) - 1
    shifted = np.clip(x * (np.int64(1) << e), INT32_MIN, INT32_MAX)
    sat = np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, shifted))
    return np.where(exponent == 0, x, sat)


def rescale(x: Array, src_integer_bits: int, dst_integer_bits: int) -> Array:
    return saturating_rounding_multiply_by_pot(x, src_integer_bits - dst_integer_bits)


def rounding_half_sum(a: Array, b: Array | int) -> Array:
    """(a + b) / 2 rounded half away from zero."""
    total = _i64(a) + _i64(b)
    biased = total + np.where(total >= 0, 1, -1)
    return np.where(biased >= 0, biased // 2, -((-biased) // 2))


def saturate32(x: Array) -> Array:
    return np.clip(_i64(x), INT32_MIN, INT32_MAX)


def count_leading_zeros32(x: Array) -> Array:
    """Leading zero bits of x read as uint32 (32 for 0). x must be in [0, 2^32)."""
    x = _i64(x)
    _, bits = np.frexp(x.astype(np.float64))  # exact: x < 2^53; bits = bit length
    return np.where(x == 0, 32, 32 - bits.astype(np.int64))


# ----------------------------------------------------------------------------- exp, 1/(1+x), logistic, tanh


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: Array) -> Array:
    """exp(a) for a Q0.31 value a in [-1/4, 0): a 4th-order Taylor expansion around -1/8."""
    x = _i64(a) + constant_pot(0, -3)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(srdhm(x4_over_4 + x3, ONE_THIRD) + x2, -1)
    return EXP_MINUS_ONE_EIGHTH + srdhm(EXP_MINUS_ONE_EIGHTH, x + poly)


def exp_on_negative_values(a: Array, integer_bits: int) -> Array:
    """exp(a) as Q0.31 for a Q<integer_bits> value a <= 0."""
    a = _i64(a)
    fractional_bits = 31 - integer_bits
    quarter = constant_pot(integer_bits, -2)
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_quarter, integer_bits, 0))
    remainder = a_mod_quarter_minus_quarter - a
    for exponent, multiplier in EXP_BARREL:
        if integer_bits > exponent:
            bit = (remainder >> (fractional_bits + exponent)) & 1
            result = np.where(bit != 0, srdhm(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))  # -32.0
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, one(0), result)


def _newton_reciprocal_q2(half_denominator: Array) -> Array:
    """1 / half_denominator in Q2.29 (3 Newton-Raphson steps from the 48/17 - 32/17 d estimate)."""
    x = FORTY_EIGHT_OVER_17_Q2 + srdhm(half_denominator, NEG_THIRTY_TWO_OVER_17_Q2)
    for _ in range(3):
        one_minus = one(2) - srdhm(half_denominator, x)
        x = x + rescale(srdhm(x, one_minus), 4, 2)
    return x


def one_over_one_plus_x_for_x_in_0_1(a: Array) -> Array:
    """1 / (1 + a) as Q0.31 for a Q0.31 value a in [0, 1)."""
    half_denominator = rounding_half_sum(a, one(0))
    x = _newton_reciprocal_q2(half_denominator)
    return rescale(x, 1, 0)  # x / 2 read as Q1, then to Q0


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: Array) -> Array:
    """(1 - a) / (1 + a) as Q0.31 for a Q0.31 value a in [0, 1)."""
    half_denominator = rounding_half_sum(a, one(0))
    x = _newton_reciprocal_q2(half_denominator)
    return rescale(x - one(2), 2, 0)


def logistic(a: Array, integer_bits: int) -> Array:
    """1 / (1 + exp(-a)) as Q0.31 for any Q<integer_bits> value a."""
    a = _i64(a)
    positive = a > 0
    abs_a = np.where(positive, a, -a)
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-abs_a, integer_bits))
    if_negative = one(0) - if_positive
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def tanh(a: Array, integer_bits: int) -> Array:
    """tanh(a) as Q0.31 for any Q<integer_bits> value a."""
    a = _i64(a)
    negative = a < 0
    n = np.where(negative, a, -a)  # -|a|
    # exp(-2|a|): the same raw value read with one more integer bit
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, -t, t))


# ----------------------------------------------------------------------------- log, reciprocal


def log_x_for_x_greater_than_or_equal_to_1(x: Array, input_integer_bits: int,
                                           output_integer_bits: int) -> Array:
    """log(x) as Q<output_integer_bits> for a Q<input_integer_bits> value x >= 1 (TFLite's common.h)."""
    accum_bits = output_integer_bits + 1
    shifted_quarter = rescale(np.int64(ONE_QUARTER), 0, accum_bits)
    z_a = _i64(x)
    z_a_headroom_plus_1 = count_leading_zeros32(z_a)
    r_a_tmp = saturating_rounding_multiply_by_pot_param(z_a, z_a_headroom_plus_1 - 1)
    r_a_raw = saturating_rounding_multiply_by_pot_param(srdhm(r_a_tmp, SQRT_HALF), 1)
    z_a_pow_2_adj = saturate32(saturating_rounding_multiply_by_pot_param(
        input_integer_bits - z_a_headroom_plus_1, 31 - accum_bits) + shifted_quarter)
    z_b = srdhm(z_a, SQRT_HALF)
    z_b_headroom = count_leading_zeros32(z_b) - 1
    r_b_raw = saturating_rounding_multiply_by_pot_param(z_a, z_b_headroom)
    z_b_pow_2_adj = saturate32(saturating_rounding_multiply_by_pot_param(
        input_integer_bits - z_b_headroom, 31 - accum_bits) - shifted_quarter)
    r = np.minimum(r_a_raw, r_b_raw)
    z_pow_2_adj = np.maximum(z_a_pow_2_adj, z_b_pow_2_adj)

    p = rounding_half_sum(r, SQRT_SQRT_HALF)
    q = r - SQRT_SQRT_HALF
    q = q + q
    common_sq = srdhm(q, q)
    num = srdhm(q, r) + srdhm(srdhm(q, common_sq), ALPHA_N)
    denom_minus_one = srdhm(p, ALPHA_I + q + srdhm(ALPHA_D, common_sq)) + srdhm(ALPHA_F, q)
    recip_denom = one_over_one_plus_x_for_x_in_0_1(denom_minus_one)
    num_scaled = rescale(num, 0, accum_bits)
    total = srdhm(z_pow_2_adj, LOG_2) + srdhm(num_scaled, recip_denom)
    return rescale(total, accum_bits, output_integer_bits)


def reciprocal(x: Array, integer_bits: int) -> tuple[Array, Array]:
    """TFLite's GetReciprocal: (1/x scaled into Q0.31, num_bits_over_unit) for a positive Q<integer_bits> x."""
    x = _i64(x)
    headroom_plus_one = count_leading_zeros32(x)
    num_bits_over_unit = integer_bits - headroom_plus_one
    shifted_sum_minus_one = (x << headroom_plus_one) - (1 << 31)
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


# ----------------------------------------------------------------------------- compile-time scaling


def input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLite's CalculateInputRadius: the largest |input| whose rescaled value stays in range."""
    top = float((1 << input_integer_bits) - 1) * float(1 << (total_signed_bits - input_integer_bits))
    return int(math.floor(top / math.ldexp(1.0, input_left_shift)))


def softmax_scaling(beta: float, input_scale: float, integer_bits: int = 5) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius: (multiplier, left_shift, diff_min)."""
    real = min(float(beta) * float(input_scale) * float(1 << (31 - integer_bits)), float((1 << 31) - 1))
    if not real > 1.0:
        raise ScaleError(f"softmax: beta * input_scale = {float(beta) * float(input_scale):g} is too small "
                         "(TFLM needs beta * input_scale * 2^26 > 1)")
    multiplier, left_shift = quantize_multiplier(real)
    return multiplier, left_shift, -input_radius(integer_bits, left_shift)


def log_softmax_scaling(input_scale: float, integer_bits: int = 5) -> tuple[int, int, int, int, int]:
    """PreprocessLogSoftmaxScalingExp (beta 1): (multiplier, left_shift, reverse_multiplier,
    reverse_shift (<= 0, a right shift), diff_min)."""
    multiplier, left_shift, diff_min = softmax_scaling(1.0, input_scale, integer_bits)
    reverse_real = float(1 << (31 - left_shift)) / float(multiplier)
    if not 0.0 < reverse_real < 1.0:
        raise ScaleError(f"log_softmax: input scale {input_scale:g} out of range")
    reverse_multiplier, reverse_shift = quantize_multiplier(reverse_real)
    return multiplier, left_shift, reverse_multiplier, reverse_shift, diff_min


NONLINEARITY_MAX_LEFT_SHIFT = 48  # int8 differences times 2^48 stay exact in int64 (the C uses a lookup table)


def nonlinearity_scaling(input_scale: float, integer_bits: int = 4) -> tuple[int, int, int]:
    """LOGISTIC / TANH Prepare for int8: (multiplier, left_shift, input_range_radius).

    The input scale (a float32) times 2^(31 - integer_bits), split by frexp; the multiplier is rounded
    without the 2^31 renormalisation (exact for float32 scales: their mantissa has 24 bits)."""
    real = float(np.float32(input_scale)) * float(1 << (31 - integer_bits))
    q, left_shift = math.frexp(real)
    multiplier = tfl_round(q * (1 << 31))
    if multiplier >= 1 << 31 or not 0 <= left_shift <= NONLINEARITY_MAX_LEFT_SHIFT:
        raise ScaleError(f"input scale {input_scale:g} out of range for a fixed-point nonlinearity")
    return int(multiplier), int(left_shift), input_radius(integer_bits, left_shift)
