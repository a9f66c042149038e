/* mcuforge runtime: int8 MAXIMUM and MINIMUM with broadcasting, TFLite Micro semantics: raw int8 values
 * are compared (both inputs and the output share one quantization). Safe in place. */
#ifndef MCU_MINMAX_S8_H
#define MCU_MINMAX_S8_H

#include "mcu_common.h"

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
