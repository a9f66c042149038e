/* mcuforge runtime: int8 MUL with broadcasting and a fused activation, TFLite Micro semantics.
 * out = clamp(output_offset + (a + input1_offset) * (b + input2_offset) * M * 2^shift, act_min, act_max).
 * Safe in place: the output may lie over an input of its own shape. */
#ifndef MCU_MUL_S8_H
#define MCU_MUL_S8_H

#include "mcu_common.h"
#include "mcu_broadcast.h"

typedef struct {
    int32_t input1_offset, input2_offset; /* minus the input zero points */
    int32_t output_offset;                /* the output zero point */
    int32_t multiplier, shift;
    int32_t act_min, act_max;
} mcu_mul_params;

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
