/* mcuforge runtime: RELU6, int8, TFLite Micro semantics (operators/relu6.py says how). Safe in place. */
#ifndef MCU_RELU6_S8_H
#define MCU_RELU6_S8_H

#include "mcu_common.h"

/* RELU6 as TFLM runs it: the raw input clamped to [lo, hi] = [input zero point, quantized 6.0], with no
 * requantization. */
MCU_INLINE void mcu_relu6_s8(int32_t lo, int32_t hi, int32_t size, const int8_t *input, int8_t *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        const int32_t x = input[i];
        output[i] = (int8_t)(x > hi ? hi : (x < lo ? lo : x));
    }
}

#endif /* MCU_RELU6_S8_H */
