/* mcuforge runtime: int8 RELU, TFLite Micro semantics.
 * All loop forward reading element i before writing element i, so the output may lie over the input. */
#ifndef MCU_ACTIVATION_S8_H
#define MCU_ACTIVATION_S8_H

#include "mcu_common.h"

/* RELU requantizes: out = clamp(output_zp + (x - input_zp) * M * 2^shift, act_min, act_max), where
 * act_min is the output zero point (real 0). */
typedef struct {
    int32_t input_zero_point, output_zero_point;
    int32_t multiplier, shift;
    int32_t act_min, act_max;
} mcu_relu_params;

MCU_INLINE void mcu_relu_s8(const mcu_relu_params *p, int32_t size, const int8_t *input, int8_t *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        const int32_t out = mcu_requantize_wrap(input[i] - p->input_zero_point, p->multiplier, p->shift);
        output[i] = (int8_t)mcu_clamp_i32(out + p->output_zero_point, p->act_min, p->act_max);
    }
}

#endif /* MCU_ACTIVATION_S8_H */
