/* mcuforge runtime: int8 reductions over any axes (MEAN, REDUCE_MAX), TFLite Micro semantics.
 * The emitter describes the reduction as loops: up to 4 kept ("outer") dimensions, in output order, and
 * up to 4 reduced ("inner") dimensions, each a count and an input stride in elements (unused ones have
 * count 1). Output values are written in order. Output must not alias the input.
 * MEAN: clamp(requantize(sum - in_zp * count, multiplier, shift) + out_zp), where the multiplier already
 * includes 1 / count (TFLM's QuantizedMeanOrSum). REDUCE_MAX: the largest raw value. */
#ifndef MCU_REDUCE_S8_H
#define MCU_REDUCE_S8_H

#include "mcu_common.h"

typedef struct {
    int32_t outer[4], outer_stride[4];
    int32_t inner[4], inner_stride[4];
} mcu_reduce_loops;

MCU_INLINE int32_t mcu_reduce_sum_s8(const mcu_reduce_loops *l, const int8_t *base) {
    int32_t i0, i1, i2, i3, acc = 0;
    for (i0 = 0; i0 < l->inner[0]; ++i0) {
        for (i1 = 0; i1 < l->inner[1]; ++i1) {
            for (i2 = 0; i2 < l->inner[2]; ++i2) {
                const int8_t *row = base + i0 * l->inner_stride[0] + i1 * l->inner_stride[1] +
                                    i2 * l->inner_stride[2];
                for (i3 = 0; i3 < l->inner[3]; ++i3) {
                    acc += row[i3 * l->inner_stride[3]];
                }
            }
        }
    }
    return acc;
}

MCU_INLINE int32_t mcu_reduce_max_value_s8(const mcu_reduce_loops *l, const int8_t *base) {
    int32_t i0, i1, i2, i3, best = -128;
    for (i0 = 0; i0 < l->inner[0]; ++i0) {
        for (i1 = 0; i1 < l->inner[1]; ++i1) {
            for (i2 = 0; i2 < l->inner[2]; ++i2) {
                const int8_t *row = base + i0 * l->inner_stride[0] + i1 * l->inner_stride[1] +
                                    i2 * l->inner_stride[2];
                for (i3 = 0; i3 < l->inner[3]; ++i3) {
                    best = mcu_max_i32(best, row[i3 * l->inner_stride[3]]);
                }
            }
        }
    }
    return best;
}

typedef struct {
    int32_t input_zp_times_count; /* subtracted from each sum */
    int32_t multiplier, shift;    /* Q31 multiplier including 1 / count; shift > 0 is a left shift */
    int32_t output_zp;
} mcu_mean_quant;

MCU_INLINE void mcu_mean_s8(const mcu_reduce_loops *l, const mcu_mean_quant *q, const int8_t *input,
                            int8_t *output) {
    int32_t o0, o1, o2, o3;
    for (o0 = 0; o0 < l->outer[0]; ++o0) {
        for (o1 = 0; o1 < l->outer[1]; ++o1) {
            for (o2 = 0; o2 < l->outer[2]; ++o2) {
                for (o3 = 0; o3 < l->outer[3]; ++o3) {
                    const int8_t *base = input + o0 * l->outer_stride[0] + o1 * l->outer_stride[1] +
                                         o2 * l->outer_stride[2] + o3 * l->outer_stride[3];
                    const int32_t sum = mcu_reduce_sum_s8(l, base) - q->input_zp_times_count;
                    const int32_t acc = mcu_requantize(sum, q->multiplier, q->shift) + q->output_zp;
                    *output++ = (int8_t)mcu_clamp_i32(acc, -128, 127);
                }
            }
        }
    }
}

MCU_INLINE void mcu_reduce_max_s8(const mcu_reduce_loops *l, const int8_t *input, int8_t *output) {
    int32_t o0, o1, o2, o3;
    for (o0 = 0; o0 < l->outer[0]; ++o0) {
        for (o1 = 0; o1 < l->outer[1]; ++o1) {
            for (o2 = 0; o2 < l->outer[2]; ++o2) {
                for (o3 = 0; o3 < l->outer[3]; ++o3) {
                    const int8_t *base = input + o0 * l->outer_stride[0] + o1 * l->outer_stride[1] +
                                         o2 * l->outer_stride[2] + o3 * l->outer_stride[3];
                    *output++ = (int8_t)mcu_reduce_max_value_s8(l, base);
                }
            }
        }
    }
}

#endif /* MCU_REDUCE_S8_H */
