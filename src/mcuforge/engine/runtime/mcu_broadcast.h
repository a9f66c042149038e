/* mcuforge runtime: stepping through a broadcast of two inputs over an output (elementwise kernels). */
#ifndef MCU_BROADCAST_H
#define MCU_BROADCAST_H

#include "mcu_common.h"

/* Broadcasting over an output of shape dims[0..5] (outermost first): a_strides / b_strides hold each
 * input's element stride per output dimension, 0 where that input is broadcast. The kernels loop over the
 * innermost dimension themselves and call this to step the five outer indices (idx, zeroed first) and the
 * two input offsets; it returns 0 after the last row. */
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

#endif /* MCU_BROADCAST_H */
