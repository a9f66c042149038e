/* mcuforge runtime: int8 CONCATENATION, one call per input.
 * The output is `outer` rows of `out_row` elements; this input fills `in_row` elements of each row,
 * starting at `output` (the caller adds the input's offset along the axis). With q == NULL the rows are
 * copied as raw bytes (TFLite Micro's behaviour). Otherwise each value is requantized to the output's
 * parameters if q->rescale (as QUANTIZE int8 -> int8 does) and clamped to the fused activation's range.
 * Output must not alias the input. */
#ifndef MCU_CONCAT_S8_H
#define MCU_CONCAT_S8_H

#include "mcu_common.h"

typedef struct {
    int32_t rescale;               /* 0: values keep their quantization, only the clamp applies */
    int32_t input_zp, multiplier, shift, output_zp;
    int32_t act_min, act_max;
} mcu_concat_quant;

MCU_INLINE void mcu_concat_s8(const int8_t *input, int32_t outer, int32_t in_row, int32_t out_row,
                              const mcu_concat_quant *q, int8_t *output) {
    int32_t o, i;
    for (o = 0; o < outer; ++o) {
        const int8_t *src = input + o * in_row;
        int8_t *dst = output + o * out_row;
        if (q == 0) {
            memcpy(dst, src, (size_t)in_row);
            continue;
        }
        for (i = 0; i < in_row; ++i) {
            int32_t v = src[i];
            if (q->rescale) {
                v = mcu_requantize(v - q->input_zp, q->multiplier, q->shift) + q->output_zp;
            }
            dst[i] = (int8_t)mcu_clamp_i32(v, q->act_min, q->act_max);
        }
    }
}

#endif /* MCU_CONCAT_S8_H */
