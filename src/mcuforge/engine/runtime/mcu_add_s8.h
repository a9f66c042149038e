/* mcuforge runtime: int8 ADD and SUB with broadcasting and a fused activation, TFLite Micro semantics.
 * Each input is offset by its zero point, shifted left by left_shift (20: headroom), rescaled by its own
 * multiplier (< 1) to a common scale, the two are added (or subtracted), and the sum is rescaled to the
 * output, offset by its zero point and clamped to the activation range. Safe in place: the output may
 * lie over an input of its own shape (element i is read before it is written). */
#ifndef MCU_ADD_S8_H
#define MCU_ADD_S8_H

#include "mcu_common.h"
#include "mcu_broadcast.h"

typedef struct {
    int32_t input1_offset, input2_offset; /* minus the input zero points */
    int32_t output_offset;                /* the output zero point */
    int32_t left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift; /* shifts <= 0 */
    int32_t act_min, act_max;
    int32_t subtract; /* 0: ADD, 1: SUB */
} mcu_add_params;

MCU_INLINE int8_t mcu_add_s8_one(const mcu_add_params *p, int32_t a, int32_t b) {
    const int32_t scaled_a = mcu_requantize((a + p->input1_offset) * ((int32_t)1 << p->left_shift),
                                            p->input1_multiplier, p->input1_shift);
    const int32_t scaled_b = mcu_requantize((b + p->input2_offset) * ((int32_t)1 << p->left_shift),
                                            p->input2_multiplier, p->input2_shift);
    const int32_t raw = p->subtract ? scaled_a - scaled_b : scaled_a + scaled_b;
    const int32_t out = mcu_requantize(raw, p->output_multiplier, p->output_shift) + p->output_offset;
    return (int8_t)mcu_clamp_i32(out, p->act_min, p->act_max);
}

/* Both inputs and the output have `size` elements. */
MCU_INLINE void mcu_add_s8(const mcu_add_params *p, int32_t size, const int8_t *a, const int8_t *b,
                           int8_t *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = mcu_add_s8_one(p, a[i], b[i]);
    }
}

/* Output shape dims[6]; the inputs are read at the given per-dimension strides (0 = broadcast). */
MCU_INLINE void mcu_add_s8_broadcast(const mcu_add_params *p, const int32_t *dims, const int32_t *a_strides,
                                     const int32_t *b_strides, const int8_t *a, const int8_t *b,
                                     int8_t *output) {
    int32_t idx[5] = {0, 0, 0, 0, 0};
    int32_t a_off = 0, b_off = 0, i;
    do {
        for (i = 0; i < dims[5]; ++i) {
            *output++ = mcu_add_s8_one(p, a[a_off + i * a_strides[5]], b[b_off + i * b_strides[5]]);
        }
    } while (mcu_broadcast_next(idx, dims, a_strides, b_strides, &a_off, &b_off));
}

#endif /* MCU_ADD_S8_H */
