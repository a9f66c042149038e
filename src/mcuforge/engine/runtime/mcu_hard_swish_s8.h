/* mcuforge runtime: HARD_SWISH, int8, TFLite Micro semantics (operators/hard_swish.py says how). */
#ifndef MCU_HARD_SWISH_S8_H
#define MCU_HARD_SWISH_S8_H

#include "mcu_common.h"

/* HARD_SWISH: TFLM's 16-bit fixed-point algorithm. Multipliers are Q15 (int16 range); output_exponent
 * is <= 0. All intermediate values stay in int16's range, as in TFLM. */
typedef struct {
    int32_t input_zero_point, output_zero_point;
    int32_t output_multiplier, output_exponent;
    int32_t reluish_multiplier, reluish_exponent;
} mcu_hard_swish_params;

/* gemmlowp's rounding doubling high multiply of two int16 values. */
MCU_INLINE int32_t mcu_srdhm_i16(int32_t a, int32_t b) {
    int32_t ab;
    if (a == -32768 && b == -32768) return 32767;
    ab = a * b;
    return (ab + (ab >= 0 ? ((int32_t)1 << 14) : (1 - ((int32_t)1 << 14)))) / ((int32_t)1 << 15);
}

/* The same without rounding (truncates toward zero, as TFLM's SaturatingDoublingHighMul). */
MCU_INLINE int32_t mcu_sdhm_i16(int32_t a, int32_t b) {
    if (a == -32768 && b == -32768) return 32767;
    return (a * b) / ((int32_t)1 << 15);
}

MCU_INLINE int32_t mcu_saturating_left_shift_i16(int32_t x, int32_t amount) {
    const int64_t shifted = (int64_t)x * ((int64_t)1 << amount);
    return shifted > 32767 ? 32767 : (shifted < -32768 ? -32768 : (int32_t)shifted);
}

/* gemmlowp's RoundingDivideByPOT on int16: the mask 2^exponent - 1 is truncated to 16 bits (all ones
 * from exponent 16 on), which changes the rounding for large exponents; TFLM inherits that. */
MCU_INLINE int32_t mcu_rounding_divide_by_pot_i16(int32_t x, int32_t exponent) {
    int32_t mask = (int32_t)((((int64_t)1 << exponent) - 1) & 0xFFFF);
    int32_t remainder, threshold;
    if (mask > 32767) mask -= 65536;
    remainder = x & mask;
    threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

MCU_INLINE int8_t mcu_hard_swish_s8_one(const mcu_hard_swish_params *p, int32_t x) {
    const int32_t hires = (x - p->input_zero_point) * 128;
    const int32_t preshift_output = mcu_srdhm_i16(hires, p->output_multiplier);
    int32_t reluish = hires;
    int32_t out;
    if (p->reluish_exponent > 0) {
        reluish = mcu_saturating_left_shift_i16(reluish, p->reluish_exponent - 1);
    }
    reluish = mcu_srdhm_i16(reluish, p->reluish_multiplier);
    if (p->reluish_exponent > 0) {
        reluish = mcu_saturating_left_shift_i16(reluish, 1);
    } else if (p->reluish_exponent < 0) {
        reluish = mcu_rounding_divide_by_pot_i16(reluish, -p->reluish_exponent);
    }
    reluish = (reluish + 32768) >> 1; /* [-1, 1] -> [0, 1] */
    out = mcu_rounding_divide_by_pot_i16(mcu_sdhm_i16(reluish, preshift_output), -p->output_exponent);
    return (int8_t)mcu_clamp_i32(out + p->output_zero_point, -128, 127);
}

MCU_INLINE void mcu_hard_swish_s8(const mcu_hard_swish_params *p, int32_t size, const int8_t *input,
                                  int8_t *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = mcu_hard_swish_s8_one(p, input[i]);
    }
}

#endif /* MCU_HARD_SWISH_S8_H */
