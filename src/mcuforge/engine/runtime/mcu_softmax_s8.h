/* mcuforge runtime: SOFTMAX and LOG_SOFTMAX over the last axis, int8 input (TFLite Micro semantics).
 * The numpy twin is mcuforge/operators/softmax.py; constants come from it at compile time.
 *
 * Per row: diff = x - max(row); entries with diff < diff_min take no part; the others are rescaled by
 * beta * input_scale into Q5.26 (multiplier, left_shift), exp'd in fixed point and summed in Q12.19.
 * Rows are read completely before their outputs are written, entry by entry in the same order, so the
 * output may alias the input. */
#ifndef MCU_SOFTMAX_S8_H
#define MCU_SOFTMAX_S8_H

#include "mcu_fixedpoint.h"

typedef struct {
    int32_t multiplier; /* Q31, of beta * input_scale * 2^26 */
    int32_t left_shift; /* >= 0 */
    int32_t diff_min;   /* <= 0 */
} mcu_softmax_quant;

typedef struct {
    int32_t multiplier;
    int32_t left_shift;
    int32_t reverse_multiplier; /* of 2^(31 - left_shift) / multiplier */
    int32_t reverse_shift;      /* <= 0 */
    int32_t diff_min;
} mcu_log_softmax_quant;

/* diff (>= diff_min, so |diff| * 2^left_shift < 2^31) rescaled into Q5.26. */
MCU_INLINE int32_t mcu_softmax_scaled_diff(int32_t diff, int32_t multiplier, int32_t left_shift) {
    return mcu_srdhm((int32_t)((int64_t)diff * ((int64_t)1 << left_shift)), multiplier);
}

MCU_INLINE int32_t mcu_softmax_row_max(const int8_t *x, int32_t depth) {
    int32_t c;
    int32_t max_in_row = -128;
    for (c = 0; c < depth; ++c) {
        max_in_row = mcu_max_i32(max_in_row, x[c]);
    }
    return max_in_row;
}

/* Sum over the row of exp(scaled diff), in Q12.19 (wrapping, as TFLM's int32 sum does on 2's complement,
 * past 4096 entries at the maximum). */
MCU_INLINE uint32_t mcu_softmax_sum_of_exps(const int8_t *x, int32_t depth, int32_t max_in_row,
                                            int32_t multiplier, int32_t left_shift, int32_t diff_min) {
    int32_t c;
    uint32_t sum = 0u;
    for (c = 0; c < depth; ++c) {
        const int32_t diff = (int32_t)x[c] - max_in_row;
        if (diff >= diff_min) {
            const int32_t e = mcu_fp_exp_on_negative_values(
                mcu_softmax_scaled_diff(diff, multiplier, left_shift), 5);
            sum += (uint32_t)mcu_fp_mul_pot(e, -12);
        }
    }
    return sum;
}

/* Probabilities with `output_bits` bits (8 or 16), still offset by +2^(output_bits-1): one row. */
MCU_INLINE void mcu_softmax_row(const int8_t *x, int32_t depth, const mcu_softmax_quant *q, int32_t output_bits,
                                int8_t *y8, int16_t *y16) {
    const int32_t max_in_row = mcu_softmax_row_max(x, depth);
    const uint32_t sum = mcu_softmax_sum_of_exps(x, depth, max_in_row, q->multiplier, q->left_shift,
                                                 q->diff_min);
    const int32_t qmin = -((int32_t)1 << (output_bits - 1));
    const int32_t qmax = ((int32_t)1 << (output_bits - 1)) - 1;
    int32_t bits_over_unit;
    const int32_t scale = mcu_fp_reciprocal(sum, 12, &bits_over_unit);
    const int32_t exponent = bits_over_unit + 31 - output_bits;
    int32_t c;
    for (c = 0; c < depth; ++c) {
        const int32_t diff = (int32_t)x[c] - max_in_row;
        int32_t out = qmin;
        /* exponent > 31 (a row of >= 512 near-equal int8 outputs): every probability < 2^-9 rounds to 0;
         * TFLM aborts there */
        if (diff >= q->diff_min && exponent <= 31) {
            const int32_t e = mcu_fp_exp_on_negative_values(
                mcu_softmax_scaled_diff(diff, q->multiplier, q->left_shift), 5);
            out = mcu_clamp_i32(mcu_rounding_divide_by_pot(mcu_srdhm(scale, e), exponent) + qmin, qmin, qmax);
        }
        if (y8) {
            y8[c] = (int8_t)out;
        } else {
            y16[c] = (int16_t)out;
        }
    }
}

/* int8 [outer, depth] -> int8 probabilities (scale 1/256, zero point -128). */
MCU_INLINE void mcu_softmax_s8(const int8_t *input, int8_t *output, int32_t outer, int32_t depth,
                               const mcu_softmax_quant *q) {
    int32_t i;
    for (i = 0; i < outer; ++i) {
        mcu_softmax_row(input + (int64_t)i * depth, depth, q, 8, output + (int64_t)i * depth, (int16_t *)0);
    }
}

/* int8 [outer, depth] -> int16 probabilities (scale 1/65536, zero point -32768). Output must not alias. */
MCU_INLINE void mcu_softmax_s8_s16(const int8_t *input, int16_t *output, int32_t outer, int32_t depth,
                                   const mcu_softmax_quant *q) {
    int32_t i;
    for (i = 0; i < outer; ++i) {
        mcu_softmax_row(input + (int64_t)i * depth, depth, q, 16, (int8_t *)0, output + (int64_t)i * depth);
    }
}

/* int8 [outer, depth] -> int8 log-probabilities (scale 16/256, zero point 127). */
MCU_INLINE void mcu_log_softmax_s8(const int8_t *input, int8_t *output, int32_t outer, int32_t depth,
                                   const mcu_log_softmax_quant *q) {
    int32_t i, c;
    for (i = 0; i < outer; ++i) {
        const int8_t *x = input + (int64_t)i * depth;
        int8_t *y = output + (int64_t)i * depth;
        const int32_t max_in_row = mcu_softmax_row_max(x, depth);
        const uint32_t sum = mcu_softmax_sum_of_exps(x, depth, max_in_row, q->multiplier, q->left_shift,
                                                     q->diff_min);
        const int32_t log_sum = mcu_fp_log_x_for_x_greater_than_or_equal_to_1((int32_t)sum, 12, 5);
        const int32_t adjusted_diff_min = mcu_max_i32(
            q->diff_min - 1, mcu_requantize(log_sum + INT32_MIN, q->reverse_multiplier, q->reverse_shift));
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            int32_t out = -128;
            if (diff > adjusted_diff_min) {
                const int32_t scaled = mcu_softmax_scaled_diff(diff, q->multiplier, q->left_shift);
                out = mcu_clamp_i32(mcu_rounding_divide_by_pot(scaled - log_sum, 22) + 127, -128, 127);
            }
            y[c] = (int8_t)out;
        }
    }
}

#endif /* MCU_SOFTMAX_S8_H */
