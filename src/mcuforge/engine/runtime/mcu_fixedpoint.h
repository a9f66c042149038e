/* mcuforge runtime: gemmlowp-style fixed-point math (exp, 1/(1+x), logistic, tanh, log), as TFLite
 * Micro's softmax, logistic and tanh kernels compute it. The numpy twin is mcuforge/quant/fixedpoint.py.
 *
 * A value is an int32 raw with `integer_bits` bits left of the binary point:
 * real = raw / 2^(31 - integer_bits). Functions taking integer_bits expect a literal (the compiler folds
 * the branches). Portable C99, no float, no libm, no signed overflow and no left shift of a negative
 * value for inputs in the documented ranges. */
#ifndef MCU_FIXEDPOINT_H
#define MCU_FIXEDPOINT_H

#include "mcu_common.h"

/* Raw Q0.31 constants. */
#define MCU_FP_EXP_MINUS_ONE_EIGHTH 1895147668 /* exp(-1/8) */
#define MCU_FP_ONE_THIRD 715827883
#define MCU_FP_48_OVER_17_Q2 1515870810        /* 48/17 in Q2.29 */
#define MCU_FP_NEG_32_OVER_17_Q2 (-1010580540) /* -32/17 in Q2.29 */
#define MCU_FP_LOG_2 1488522236
#define MCU_FP_SQRT_SQRT_HALF 1805811301
#define MCU_FP_SQRT_HALF 1518500250
#define MCU_FP_ONE_QUARTER 536870912
#define MCU_FP_ALPHA_N 117049297
#define MCU_FP_ALPHA_D 127690142
#define MCU_FP_ALPHA_I 1057819769
#define MCU_FP_ALPHA_F 638450708

/* x * 2^exponent: saturating left shift (exponent > 0, up to 31) or rounding right shift (exponent < 0). */
MCU_INLINE int32_t mcu_fp_mul_pot(int32_t x, int32_t exponent) {
    int32_t threshold;
    if (exponent == 0) {
        return x;
    }
    if (exponent < 0) {
        return mcu_rounding_divide_by_pot(x, -exponent);
    }
    threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((int64_t)x * ((int64_t)1 << exponent));
}

/* (a + b) / 2, rounded half away from zero. */
MCU_INLINE int32_t mcu_fp_rounding_half_sum(int32_t a, int32_t b) {
    const int64_t sum = (int64_t)a + (int64_t)b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

MCU_INLINE int32_t mcu_fp_saturating_add(int32_t a, int32_t b) {
    const int64_t sum = (int64_t)a + (int64_t)b;
    return sum > INT32_MAX ? INT32_MAX : (sum < INT32_MIN ? INT32_MIN : (int32_t)sum);
}

MCU_INLINE int32_t mcu_fp_saturating_sub(int32_t a, int32_t b) {
    const int64_t diff = (int64_t)a - (int64_t)b;
    return diff > INT32_MAX ? INT32_MAX : (diff < INT32_MIN ? INT32_MIN : (int32_t)diff);
}

/* Leading zero bits of a 32-bit word (32 for 0). */
MCU_INLINE int32_t mcu_fp_clz32(uint32_t x) {
    int32_t n = 0;
    if (x == 0u) return 32;
    if ((x & 0xFFFF0000u) == 0u) { n += 16; x <<= 16; }
    if ((x & 0xFF000000u) == 0u) { n += 8; x <<= 8; }
    if ((x & 0xF0000000u) == 0u) { n += 4; x <<= 4; }
    if ((x & 0xC0000000u) == 0u) { n += 2; x <<= 2; }
    if ((x & 0x80000000u) == 0u) { n += 1; }
    return n;
}

/* exp(a) for a Q0.31 value a in [-1/4, 0): Taylor expansion around -1/8. */
MCU_INLINE int32_t mcu_fp_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
    const int32_t x = a + ((int32_t)1 << 28);
    const int32_t x2 = mcu_srdhm(x, x);
    const int32_t x3 = mcu_srdhm(x2, x);
    const int32_t x4 = mcu_srdhm(x2, x2);
    const int32_t x4_over_4 = mcu_rounding_divide_by_pot(x4, 2);
    const int32_t poly = mcu_rounding_divide_by_pot(mcu_srdhm(x4_over_4 + x3, MCU_FP_ONE_THIRD) + x2, 1);
    return MCU_FP_EXP_MINUS_ONE_EIGHTH + mcu_srdhm(MCU_FP_EXP_MINUS_ONE_EIGHTH, x + poly);
}

/* One step of exp's barrel shifter: multiply by exp(-2^exponent) when that bit of the remainder is set. */
MCU_INLINE int32_t mcu_fp_exp_barrel(int32_t result, uint32_t remainder, int32_t integer_bits,
                                     int32_t exponent, int32_t multiplier) {
    if (integer_bits > exponent && ((remainder >> (31 - integer_bits + exponent)) & 1u) != 0u) {
        return mcu_srdhm(result, multiplier);
    }
    return result;
}

/* exp(a) as Q0.31 for a Q<integer_bits> value a <= 0 (integer_bits 1..30). */
MCU_INLINE int32_t mcu_fp_exp_on_negative_values(int32_t a, int32_t integer_bits) {
    const int32_t quarter = (int32_t)1 << (31 - integer_bits - 2);
    const int32_t a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter;
    const uint32_t remainder = (uint32_t)a_mod_quarter_minus_quarter - (uint32_t)a;
    int32_t result = mcu_fp_exp_on_interval_between_negative_one_quarter_and_0_excl(
        mcu_fp_mul_pot(a_mod_quarter_minus_quarter, integer_bits));
    if (a == 0) {
        return INT32_MAX;
    }
    result = mcu_fp_exp_barrel(result, remainder, integer_bits, -2, 1672461947);
    result = mcu_fp_exp_barrel(result, remainder, integer_bits, -1, 1302514674);
    result = mcu_fp_exp_barrel(result, remainder, integer_bits, 0, 790015084);
    result = mcu_fp_exp_barrel(result, remainder, integer_bits, 1, 290630308);
    result = mcu_fp_exp_barrel(result, remainder, integer_bits, 2, 39332535);
    result = mcu_fp_exp_barrel(result, remainder, integer_bits, 3, 720401);
    result = mcu_fp_exp_barrel(result, remainder, integer_bits, 4, 242);
    if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) {
        result = 0; /* below -32 */
    }
    return result;
}

/* 1 / half_denominator in Q2.29: three Newton-Raphson steps from 48/17 - 32/17 * d. */
MCU_INLINE int32_t mcu_fp_newton_reciprocal_q2(int32_t half_denominator) {
    int32_t x = MCU_FP_48_OVER_17_Q2 + mcu_srdhm(half_denominator, MCU_FP_NEG_32_OVER_17_Q2);
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = ((int32_t)1 << 29) - mcu_srdhm(half_denominator, x);
        x = x + mcu_fp_mul_pot(mcu_srdhm(x, one_minus), 2);
    }
    return x;
}

/* 1 / (1 + a) as Q0.31 for a Q0.31 value a in [0, 1). */
MCU_INLINE int32_t mcu_fp_one_over_one_plus_x_for_x_in_0_1(int32_t a) {
    return mcu_fp_mul_pot(mcu_fp_newton_reciprocal_q2(mcu_fp_rounding_half_sum(a, INT32_MAX)), 1);
}

/* (1 - a) / (1 + a) as Q0.31 for a Q0.31 value a in [0, 1). */
MCU_INLINE int32_t mcu_fp_one_minus_x_over_one_plus_x_for_x_in_0_1(int32_t a) {
    const int32_t x = mcu_fp_newton_reciprocal_q2(mcu_fp_rounding_half_sum(a, INT32_MAX));
    return mcu_fp_mul_pot(x - ((int32_t)1 << 29), 2);
}

/* 1 / (1 + exp(-a)) as Q0.31 for a Q<integer_bits> value a (a != INT32_MIN). */
MCU_INLINE int32_t mcu_fp_logistic(int32_t a, int32_t integer_bits) {
    int32_t if_positive;
    if (a == 0) {
        return (int32_t)1 << 30;
    }
    if_positive = mcu_fp_one_over_one_plus_x_for_x_in_0_1(
        mcu_fp_exp_on_negative_values(a > 0 ? -a : a, integer_bits));
    return a > 0 ? if_positive : INT32_MAX - if_positive;
}

/* tanh(a) as Q0.31 for a Q<integer_bits> value a (a != INT32_MIN). */
MCU_INLINE int32_t mcu_fp_tanh(int32_t a, int32_t integer_bits) {
    int32_t t;
    if (a == 0) {
        return 0;
    }
    /* exp(-2|a|): the raw -|a| read with one more integer bit */
    t = mcu_fp_one_minus_x_over_one_plus_x_for_x_in_0_1(
        mcu_fp_exp_on_negative_values(a < 0 ? a : -a, integer_bits + 1));
    return a < 0 ? -t : t;
}

/* log(x) as Q<output_integer_bits> for a Q<input_integer_bits> value x >= 1 (TFLite's common.h). */
MCU_INLINE int32_t mcu_fp_log_x_for_x_greater_than_or_equal_to_1(int32_t x, int32_t input_integer_bits,
                                                                int32_t output_integer_bits) {
    const int32_t accum_bits = output_integer_bits + 1;
    const int32_t shifted_quarter = mcu_fp_mul_pot(MCU_FP_ONE_QUARTER, -accum_bits);
    const int32_t z_a_headroom_plus_1 = mcu_fp_clz32((uint32_t)x);
    const int32_t r_a_tmp = mcu_fp_mul_pot(x, z_a_headroom_plus_1 - 1);
    const int32_t r_a_raw = mcu_fp_mul_pot(mcu_srdhm(r_a_tmp, MCU_FP_SQRT_HALF), 1);
    const int32_t z_a_pow_2_adj = mcu_fp_saturating_add(
        mcu_fp_mul_pot(input_integer_bits - z_a_headroom_plus_1, 31 - accum_bits), shifted_quarter);
    const int32_t z_b = mcu_srdhm(x, MCU_FP_SQRT_HALF);
    const int32_t z_b_headroom = mcu_fp_clz32((uint32_t)z_b) - 1;
    const int32_t r_b_raw = mcu_fp_mul_pot(x, z_b_headroom);
    const int32_t z_b_pow_2_adj = mcu_fp_saturating_sub(
        mcu_fp_mul_pot(input_integer_bits - z_b_headroom, 31 - accum_bits), shifted_quarter);
    const int32_t r = mcu_min_i32(r_a_raw, r_b_raw);
    const int32_t z_pow_2_adj = mcu_max_i32(z_a_pow_2_adj, z_b_pow_2_adj);
    const int32_t p = mcu_fp_rounding_half_sum(r, MCU_FP_SQRT_SQRT_HALF);
    const int32_t q = 2 * (r - MCU_FP_SQRT_SQRT_HALF);
    const int32_t common_sq = mcu_srdhm(q, q);
    const int32_t num = mcu_srdhm(q, r) + mcu_srdhm(mcu_srdhm(q, common_sq), MCU_FP_ALPHA_N);
    const int32_t denom_minus_one = mcu_srdhm(p, MCU_FP_ALPHA_I + q + mcu_srdhm(MCU_FP_ALPHA_D, common_sq))
                                    + mcu_srdhm(MCU_FP_ALPHA_F, q);
    const int32_t recip_denom = mcu_fp_one_over_one_plus_x_for_x_in_0_1(denom_minus_one);
    const int32_t num_scaled = mcu_fp_mul_pot(num, -accum_bits);
    return mcu_fp_mul_pot(mcu_srdhm(z_pow_2_adj, MCU_FP_LOG_2) + mcu_srdhm(num_scaled, recip_denom),
                          accum_bits - output_integer_bits);
}

/* TFLite's GetReciprocal: 1/x scaled into Q0.31 for a positive Q<integer_bits> x; the result must be
 * shifted right by *bits_over_unit more to be the true reciprocal. */
MCU_INLINE int32_t mcu_fp_reciprocal(uint32_t x, int32_t integer_bits, int32_t *bits_over_unit) {
    const int32_t headroom_plus_one = mcu_fp_clz32(x);
    const uint32_t shifted = headroom_plus_one >= 32 ? 0u : (x << headroom_plus_one);
    *bits_over_unit = integer_bits - headroom_plus_one;
    return mcu_fp_one_over_one_plus_x_for_x_in_0_1((int32_t)(shifted - 0x80000000u));
}

/* y[i] = table[x[i] + 128]: any int8 -> int8 function precomputed at compile time.
 * Loops forward reading x[i] before writing y[i], so y may alias x. */
MCU_INLINE void mcu_lut_s8(const int8_t *x, int8_t *y, int32_t size, const int8_t *table) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        y[i] = table[(int32_t)x[i] + 128];
    }
}

#endif /* MCU_FIXEDPOINT_H */
