/* mcuforge runtime: QUANTIZE (float32 -> int8; between int8, uint8, int16 and int32 at a model's edges) and
 * DEQUANTIZE (int8 -> float32; uint8 -> float32 for the I/O helpers), TFLite Micro semantics. The only float code in the runtime: these ops' own edges are float. No libm. */
#ifndef MCU_QUANTIZE_H
#define MCU_QUANTIZE_H

#include "mcu_specialize.h"

/* x / scale rounded half away from zero (TFLM AffineQuantize: a float32 division, then roundf), before the
 * zero point. |x / scale| beyond 256 is clamped before the integer conversion (NaN counts as -256), so no
 * value is undefined behaviour and every int8 or uint8 result clamps the same as the unclamped one.
 * MCU_SPECIALIZE: inlined even where GCC's raised -O0 would call it for every element. */
MCU_SPECIALIZE int32_t mcu_quantize_f32_round(float x, float scale) {
    float v = x / scale;
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
    return q;
}

/* float32 -> int8: round(x / scale) + zero_point, clamped. Safe in place: the output may start at the
 * input's address (byte i is written after float i, which covers bytes 4i..4i+3, was read). */
MCU_INLINE void mcu_quantize_f32_s8(float scale, int32_t zero_point, int32_t size, const float *input,
                                    int8_t *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = (int8_t)mcu_clamp_i32(mcu_quantize_f32_round(input[i], scale) + zero_point, -128, 127);
    }
}

/* float32 -> uint8 (a model's uint8 input): the same, clamped to 0..255. Safe in place. */
MCU_INLINE void mcu_quantize_f32_u8(float scale, int32_t zero_point, int32_t size, const float *input,
                                    uint8_t *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = (uint8_t)mcu_clamp_i32(mcu_quantize_f32_round(input[i], scale) + zero_point, 0, 255);
    }
}

/* Requantization: clamp(output_zp + (x - input_zp) * M * 2^shift) (TFLM Requantize). */
typedef struct {
    int32_t input_zero_point, output_zero_point;
    int32_t multiplier, shift;
} mcu_requantize_params;

MCU_SPECIALIZE int32_t mcu_requantize_one(const mcu_requantize_params *p, int32_t x) {
    return mcu_requantize_wrap(x - p->input_zero_point, p->multiplier, p->shift) + p->output_zero_point;
}

/* One requantizing copy per (input, output) type pair a QUANTIZE runs: int8 -> int8; uint8 -> int8 (a
 * model's uint8 input, as the STM32 model zoo exports them; TFLM's xor-0x80 fast path gives the same
 * bytes); int8 -> uint8; int16 -> int8 (a model's int16 input); int8 or int16 -> int16 or int32 (outputs).
 * Clamped to the output type. Safe in place when the output is no wider than the input. */
#define MCU_REQUANTIZE_DEFINE(name, in_t, out_t, lo, hi)                                              \
    MCU_INLINE void name(const mcu_requantize_params *p, int32_t size, const in_t *input, out_t *output) { \
        int32_t i;                                                                                    \
        for (i = 0; i < size; ++i) {                                                                  \
            output[i] = (out_t)mcu_clamp_i32(mcu_requantize_one(p, input[i]), (lo), (hi));            \
        }                                                                                             \
    }

MCU_REQUANTIZE_DEFINE(mcu_requantize_s8, int8_t, int8_t, -128, 127)
MCU_REQUANTIZE_DEFINE(mcu_requantize_u8_s8, uint8_t, int8_t, -128, 127)
MCU_REQUANTIZE_DEFINE(mcu_requantize_s8_u8, int8_t, uint8_t, 0, 255)
MCU_REQUANTIZE_DEFINE(mcu_requantize_s16_s8, int16_t, int8_t, -128, 127)
MCU_REQUANTIZE_DEFINE(mcu_requantize_s8_s16, int8_t, int16_t, -32768, 32767)
MCU_REQUANTIZE_DEFINE(mcu_requantize_s16_s16, int16_t, int16_t, -32768, 32767)
MCU_REQUANTIZE_DEFINE(mcu_requantize_s8_s32, int8_t, int32_t, INT32_MIN, INT32_MAX)
MCU_REQUANTIZE_DEFINE(mcu_requantize_s16_s32, int16_t, int32_t, INT32_MIN, INT32_MAX)

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

/* uint8 -> float32 (a model's uint8 output): as above, |q - zero_point| <= 255, exact. */
MCU_INLINE void mcu_dequantize_u8_f32(float scale, int32_t zero_point, int32_t size, const uint8_t *input,
                                      float *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = scale * (float)(input[i] - zero_point);
    }
}

#endif /* MCU_QUANTIZE_H */
