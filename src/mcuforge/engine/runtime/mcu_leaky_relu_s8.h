/* mcuforge runtime: LEAKY_RELU, int8, TFLite Micro semantics (operators/leaky_relu.py says how). Safe in
 * place: element i is read before it is written. */
#ifndef MCU_LEAKY_RELU_S8_H
#define MCU_LEAKY_RELU_S8_H

#include "mcu_common.h"

/* LEAKY_RELU: x - input_zp >= 0 is rescaled by the identity multiplier, below by the alpha multiplier
 * (its magnitude; alpha_negative flips the product's sign), then offset and clamped to int8. */
typedef struct {
    int32_t input_zero_point, output_zero_point;
    int32_t identity_multiplier, identity_shift;
    int32_t alpha_multiplier, alpha_shift, alpha_negative;
} mcu_leaky_relu_params;

MCU_INLINE void mcu_leaky_relu_s8(const mcu_leaky_relu_params *p, int32_t size, const int8_t *input,
                                  int8_t *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        const int32_t x = input[i] - p->input_zero_point;
        int32_t out;
        if (x >= 0) {
            out = mcu_requantize_wrap(x, p->identity_multiplier, p->identity_shift);
        } else {
            out = mcu_requantize_wrap(x, p->alpha_multiplier, p->alpha_shift);
            if (p->alpha_negative) out = -out;
        }
        output[i] = (int8_t)mcu_clamp_i32(out + p->output_zero_point, -128, 127);
    }
}

#endif /* MCU_LEAKY_RELU_S8_H */
