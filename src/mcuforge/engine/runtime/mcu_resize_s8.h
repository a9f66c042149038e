/* mcuforge runtime: int8 RESIZE_NEAREST_NEIGHBOR, TFLite Micro semantics (raw bytes move).
 * NHWC. The source row of each output row and the source column of each output column come in const
 * tables computed at compile time with TFLM's own float32 index arithmetic, so no float runs here.
 * Output must not alias the input. */
#ifndef MCU_RESIZE_S8_H
#define MCU_RESIZE_S8_H

#include "mcu_common.h"

typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;
} mcu_resize_shape;

MCU_INLINE void mcu_resize_nearest_s8(const mcu_resize_shape *s, const int32_t *src_row,
                                      const int32_t *src_col, const int8_t *input, int8_t *output) {
    int32_t b, y, x;
    for (b = 0; b < s->batches; ++b) {
        for (y = 0; y < s->out_h; ++y) {
            const int8_t *row = input + (b * s->in_h + src_row[y]) * s->in_w * s->channels;
            for (x = 0; x < s->out_w; ++x) {
                memcpy(output, row + src_col[x] * s->channels, (size_t)s->channels);
                output += s->channels;
            }
        }
    }
}

#endif /* MCU_RESIZE_S8_H */
