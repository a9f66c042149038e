/* mcuforge runtime: LOGISTIC, int8 -> int8 (output scale 1/256, zero point -128), TFLite Micro semantics.
 * The numpy twin is table() in mcuforge/operators/logistic_tanh.py.
 *
 * x - input_zero_point is rescaled into Q4.27 (multiplier, left_shift), put through the fixed-point
 * logistic and rounded to 8 bits; inputs at or beyond +-input_range_radius saturate. Elementwise and
 * forward, so the output may alias the input. (The emitter may use mcu_lut_s8 with a precomputed table
 * instead: same bits.) */
#ifndef MCU_LOGISTIC_S8_H
#define MCU_LOGISTIC_S8_H

#include "mcu_fixedpoint.h"

typedef struct {
    int32_t input_zero_point;
    int32_t multiplier;  /* Q31, of input_scale * 2^27 */
    int32_t left_shift;  /* >= 0 */
    int32_t input_range_radius;
} mcu_logistic_quant;

MCU_INLINE int8_t mcu_logistic_s8_one(int32_t x, const mcu_logistic_quant *q) {
    const int32_t input = x - q->input_zero_point;
    int32_t out;
    if (input <= -q->input_range_radius) return -128;
    if (input >= q->input_range_radius) return 127;
    out = mcu_fp_logistic(mcu_requantize(input, q->multiplier, q->left_shift), 4);
    return (int8_t)mcu_clamp_i32(mcu_rounding_divide_by_pot(out, 23) - 128, -128, 127);
}

MCU_INLINE void mcu_logistic_s8(const int8_t *input, int8_t *output, int32_t size,
                                const mcu_logistic_quant *q) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = mcu_logistic_s8_one(input[i], q);
    }
}

#endif /* MCU_LOGISTIC_S8_H */
