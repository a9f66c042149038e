/* mcuforge runtime: integer requantization shared by every kernel.
 * Semantics are TFLite Micro's reference kernels (gemmlowp-style double rounding);
 * the numpy twin is mcuforge/quant/intmath.py. Portable C99, no float. */
#ifndef MCU_COMMON_H
#define MCU_COMMON_H

#include "mcu_build.h" /* first: it may set how the functions below are compiled */
#include <stdint.h>
#include <string.h>

#ifndef MCU_INLINE
#define MCU_INLINE static inline
#endif

MCU_INLINE int32_t mcu_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
MCU_INLINE int32_t mcu_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
MCU_INLINE int32_t mcu_clamp_i32(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* (a * b * 2) >> 32 with rounding, saturating the single overflow case. */
MCU_INLINE int32_t mcu_srdhm(int32_t a, int32_t b) {
    int64_t ab;
    int64_t nudge;
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero. */
MCU_INLINE int32_t mcu_rounding_divide_by_pot(int32_t x, int32_t exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^shift, multiplier a Q31 fixed-point value; shift > 0 shifts left. */
MCU_INLINE int32_t mcu_requantize(int32_t x, int32_t multiplier, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    int64_t shifted = (int64_t)x * ((int64_t)1 << left);
    if (shifted > INT32_MAX) shifted = INT32_MAX;
    if (shifted < INT32_MIN) shifted = INT32_MIN;
    return mcu_rounding_divide_by_pot(mcu_srdhm((int32_t)shifted, multiplier), right);
}

/* TFLM's MultiplyByQuantizedMultiplier as it is compiled: x * 2^shift (shift > 0) wraps in int32 where
 * mcu_requantize saturates. They differ only for absurd scale ratios; this one is TFLM's behaviour. */
MCU_INLINE int32_t mcu_requantize_wrap(int32_t x, int32_t multiplier, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const uint32_t bits = (uint32_t)x << left;
    const int32_t shifted = bits > 0x7FFFFFFFu ? -(int32_t)(~bits) - 1 : (int32_t)bits;
    return mcu_rounding_divide_by_pot(mcu_srdhm(shifted, multiplier), right);
}

#endif /* MCU_COMMON_H */
