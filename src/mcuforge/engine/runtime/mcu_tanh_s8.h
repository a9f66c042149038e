/* mcuforge runtime: TANH, int8 -> int8 (the result is always scale 1/128, zero point 0, whatever the
 * output tensor says: TFLite Micro ignores it). The numpy twin is table() in
 * mcuforge/operators/logistic_tanh.py.
 *
 * x - input_zero_point is rescaled into Q4.27, put through the fixed-point tanh and rounded to 8 bits;
 * inputs at or beyond +-input_range_radius saturate. Elementwise and forward: the output may alias the
 * input. (The emitter may use mcu_lut_s8 with a precomputed table instead: same bits.) */
#ifndef MCU_TANH_S8_H
#define MCU_TANH_S8_H

#include "mcu_fixedpoint.h"

typedef struct {
    int32_t input_zero_point;
    int32_t multiplier;  /* Q31, of input_scale * 2^27 */
    int32_t left_shift;  /* >= 0 */
    int32_t input_range_radius;
} mcu_tanh_quant;

MCU_INLINE int8_t mcu_tanh_s8_one(int32_t x, const mcu_tanh_quant *q) {
    const int32_t input = x - q->input_zero_point;
    int32_t out;
    if (input <= -q->input_range_radius) return -128;
    if (input >= q->input_range_radius) return 127;
    out = mcu_fp_tanh(mcu_requantize(input, q->multiplier, q->left_shift), 4);
    return (int8_t)mcu_clamp_i32(mcu_rounding_divide_by_pot(out, 24), -128, 127);
}

MCU_INLINE void mcu_tanh_s8(const int8_t *input, int8_t *output, int32_t size, const mcu_tanh_quant *q) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = mcu_tanh_s8_one(input[i], q);
    }
}

#endif /* MCU_TANH_S8_H */
