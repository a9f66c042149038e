/* mcuforge runtime: int8 TRANSPOSE as a strided copy, TFLite Micro semantics (raw bytes move).
 * The output is written in order by up to 6 nested loops; loop d runs count[d] times and advances the
 * input by stride[d] elements (strides may be negative; the emitter merges loops that are contiguous in
 * the input and fills unused outer ones with count 1). STRIDED_SLICE uses the same copy from its first
 * element. Output must not alias the input. */
#ifndef MCU_TRANSPOSE_S8_H
#define MCU_TRANSPOSE_S8_H

#include "mcu_common.h"

typedef struct {
    int32_t count[6];
    int32_t stride[6]; /* input elements per step of each loop */
} mcu_copy_loops;

MCU_INLINE void mcu_strided_copy_s8(const mcu_copy_loops *l, const int8_t *input, int8_t *output) {
    int32_t i0, i1, i2, i3, i4, i5;
    for (i0 = 0; i0 < l->count[0]; ++i0) {
        for (i1 = 0; i1 < l->count[1]; ++i1) {
            for (i2 = 0; i2 < l->count[2]; ++i2) {
                for (i3 = 0; i3 < l->count[3]; ++i3) {
                    for (i4 = 0; i4 < l->count[4]; ++i4) {
                        const int8_t *src = input + (i0 * l->stride[0] + i1 * l->stride[1] + i2 * l->stride[2] +
                                                     i3 * l->stride[3] + i4 * l->stride[4]);
                        if (l->stride[5] == 1) {
                            memcpy(output, src, (size_t)l->count[5]);
                            output += l->count[5];
                        } else {
                            for (i5 = 0; i5 < l->count[5]; ++i5) {
                                *output++ = src[i5 * l->stride[5]];
                            }
                        }
                    }
                }
            }
        }
    }
}

MCU_INLINE void mcu_transpose_s8(const mcu_copy_loops *l, const int8_t *input, int8_t *output) {
    mcu_strided_copy_s8(l, input, output);
}

#endif /* MCU_TRANSPOSE_S8_H */
