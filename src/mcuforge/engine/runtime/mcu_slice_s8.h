/* mcuforge runtime: int8 STRIDED_SLICE, TFLite Micro semantics (raw bytes move).
 * A strided copy (see mcu_transpose_s8.h) starting at the input's first kept element, `begin` elements in;
 * loop strides are step * input stride and may be negative. Output must not alias the input. */
#ifndef MCU_SLICE_S8_H
#define MCU_SLICE_S8_H

#include "mcu_common.h"
#include "mcu_transpose_s8.h"

MCU_INLINE void mcu_slice_s8(const mcu_copy_loops *l, const int8_t *input, int32_t begin, int8_t *output) {
    mcu_strided_copy_s8(l, input + begin, output);
}

#endif /* MCU_SLICE_S8_H */
