/* mcuforge runtime: int8 MAXIMUM and MINIMUM with broadcasting, TFLite Micro semantics: raw int8 values
 * are compared (both inputs and the output share one quantization). Safe in place. */
#ifndef MCU_MINMAX_S8_H
#define MCU_MINMAX_S8_H

#include "mcu_common.h"
#include "mcu_broadcast.h"

MCU_INLINE int8_t mcu_minmax_s8_one(int32_t take_max, int8_t a, int8_t b) {
    return take_max ? (a > b ? a : b) : (a < b ? a : b);
}

/* take_max: 1 for MAXIMUM, 0 for MINIMUM; both inputs and the output have `size` elements. */
MCU_INLINE void mcu_minmax_s8(int32_t take_max, int32_t size, const int8_t *a, const int8_t *b,
                              int8_t *output) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = mcu_minmax_s8_one(take_max, a[i], b[i]);
    }
}

/* Output shape dims[6]; the inputs are read at the given per-dimension strides (0 = broadcast). */
MCU_INLINE void mcu_minmax_s8_broadcast(int32_t take_max, const int32_t *dims, const int32_t *a_strides,
                                        const int32_t *b_strides, const int8_t *a, const int8_t *b,
                                        int8_t *output) {
    int32_t idx[5] = {0, 0, 0, 0, 0};
    int32_t a_off = 0, b_off = 0, i;
    do {
        for (i = 0; i < dims[5]; ++i) {
            *output++ = mcu_minmax_s8_one(take_max, a[a_off + i * a_strides[5]], b[b_off + i * b_strides[5]]);
        }
    } while (mcu_broadcast_next(idx, dims, a_strides, b_strides, &a_off, &b_off));
}

#endif /* MCU_MINMAX_S8_H */
