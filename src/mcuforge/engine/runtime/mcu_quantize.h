/* mcuforge runtime: QUANTIZE (float32 -> int8, int8 -> int8) and DEQUANTIZE (int8 -> float32), TFLite
 * Micro semantics. The only float code in the runtime: these ops' own edges are float. No libm. */
#ifndef MCU_QUANTIZE_H
#define MCU_QUANTIZE_H

#include "mcu_common.h"

/* float32 -> int8: roundf(x / scale) + zero_point, clamped (TFLM AffineQuantize: a float32 division and
 * rounding half away from zero). |x / scale| beyond 256 is clamped before the integer conversion (NaN
 * counts as -256), so no value is undefined behaviour. Safe in place: the output may start at the
 * input's address (byte i is written after float i, which covers bytes 4i..4i+3, was read). */
MCU_INLINE void mcu_quantize_f32_s8(float scale, int32_t zero_point, int32_t size, const float *input,
                                    int8_t *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        float v = input[i] / scale;
        int32_t q;
        if (v > 256.0f) v = 256.0f;
        if (!(v > -256.0f)) v = -256.0f;
        q = (int32_t)v;  /* truncates toward zero */
        v -= (float)q;   /* the fraction, exact */
        if (v >= 0.5f) {
            ++q;
        } else if (v <= -0.5f) {
            --q;
        }
        output[i] = (int8_t)mcu_clamp_i32(q + zero_point, -128, 127);
    }
}

/* int8 -> int8: clamp(output_zp + (x - input_zp) * M * 2^shift) (TFLM Requantize). Safe in place. */
typedef struct {
    int32_t input_zero_point, output_zero_point;
    int32_t multiplier, shift;
} mcu_requantize_params;

MCU_INLINE void mcu_requantize_s8(const mcu_requantize_params *p, int32_t size, const int8_t *input,
                                  int8_t *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        const int32_t out = mcu_requantize_wrap(input[i] - p->input_zero_point, p->multiplier, p->shift);
        output[i] = (int8_t)mcu_clamp_i32(out + p->output_zero_point, -128, 127);
    }
}

/* int8 -> float32: scale * (q - zero_point). TFLM computes it in double and rounds to float; the double
 * product of a float and an integer of magnitude <= 255 is exact, so the single float multiply, correctly
 * rounded, gives the same bits. Not in place (the output is wider). */
MCU_INLINE void mcu_dequantize_s8_f32(float scale, int32_t zero_point, int32_t size, const int8_t *input,
                                      float *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = scale * (float)(input[i] - zero_point);
    }
}

#endif /* MCU_QUANTIZE_H */
