/* mcuforge runtime: int8 MUL with broadcasting and a fused activation, TFLite Micro semantics.
 * out = clamp(output_offset + (a + input1_offset) * (b + input2_offset) * M * 2^shift, act_min, act_max).
 * Safe in place: the output may lie over an input of its own shape. */
#ifndef MCU_MUL_S8_H
#define MCU_MUL_S8_H

#include "mcu_common.h"

typedef struct {
    int32_t input1_offset, input2_offset; /* minus the input zero points */
    int32_t output_offset;                /* the output zero point */
    int32_t multiplier, shift;
    int32_t act_min, act_max;
} mcu_mul_params;

#ifndef MCU_BROADCAST_NEXT_DEFINED
#define MCU_BROADCAST_NEXT_DEFINED
/* Broadcasting over an output of shape dims[0..5] (outermost first): a_strides / b_strides hold each
 * input's element stride per output dimension, 0 where that input is broadcast. The kernels loop over the
 * innermost dimension themselves and call this to step the five outer indices (idx, zeroed first) and the
 * two input offsets; it returns 0 after the last row. (Kept identical in every header that uses it.) */
MCU_INLINE int mcu_broadcast_next(int32_t idx[5], const int32_t *dims, const int32_t *a_strides,
                                  const int32_t *b_strides, int32_t *a_off, int32_t *b_off) {
    int k;
    for (k = 4; k >= 0; --k) {
        *a_off += a_strides[k];
        *b_off += b_strides[k];
        if (++idx[k] < dims[k]) return 1;
        *a_off -= a_strides[k] * dims[k];
        *b_off -= b_strides[k] * dims[k];
        idx[k] = 0;
    }
    return 0;
}
#endif /* MCU_BROADCAST_NEXT_DEFINED */

#ifndef MCU_REQUANTIZE_WRAP_DEFINED
#define MCU_REQUANTIZE_WRAP_DEFINED
/* TFLM's MultiplyByQuantizedMultiplier as it is compiled: x * 2^shift (shift > 0) wraps in int32 where
 * mcu_requantize saturates. They differ only for absurd scale ratios; this one is TFLM's behaviour.
 * (Kept identical in every header that uses it.) */
MCU_INLINE int32_t mcu_requantize_wrap(int32_t x, int32_t multiplier, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const uint32_t bits = (uint32_t)x << left;
    const int32_t shifted = bits > 0x7FFFFFFFu ? -(int32_t)(~bits) - 1 : (int32_t)bits;
    return mcu_rounding_divide_by_pot(mcu_srdhm(shifted, multiplier), right);
}
#endif /* MCU_REQUANTIZE_WRAP_DEFINED */

MCU_INLINE int8_t mcu_mul_s8_one(const mcu_mul_params *p, int32_t a, int32_t b) {
    const int32_t product = (a + p->input1_offset) * (b + p->input2_offset);
    const int32_t out = mcu_requantize_wrap(product, p->multiplier, p->shift) + p->output_offset;
    return (int8_t)mcu_clamp_i32(out, p->act_min, p->act_max);
}

/* Both inputs and the output have `size` elements. */
MCU_INLINE void mcu_mul_s8(const mcu_mul_params *p, int32_t size, const int8_t *a, const int8_t *b,
                           int8_t *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = mcu_mul_s8_one(p, a[i], b[i]);
    }
}

/* Output shape dims[6]; the inputs are read at the given per-dimension strides (0 = broadcast). */
MCU_INLINE void mcu_mul_s8_broadcast(const mcu_mul_params *p, const int32_t *dims, const int32_t *a_strides,
                                     const int32_t *b_strides, const int8_t *a, const int8_t *b,
                                     int8_t *output) {
    int32_t idx[5] = {0, 0, 0, 0, 0};
    int32_t a_off = 0, b_off = 0, i;
    do {
        for (i = 0; i < dims[5]; ++i) {
            *output++ = mcu_mul_s8_one(p, a[a_off + i * a_strides[5]], b[b_off + i * b_strides[5]]);
        }
    } while (mcu_broadcast_next(idx, dims, a_strides, b_strides, &a_off, &b_off));
}

#endif /* MCU_MUL_S8_H */
