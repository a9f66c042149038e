/* mcuforge runtime: RESIZE_BILINEAR, int8 (TFLite Micro's ResizeBilinearInteger, double rounding).
 * Positions in 10 fractional bits; each output is its four raw neighbours weighted per axis by
 * (1024 - d) and d, summed with 20 fractional bits (|sum| < 2^30: int32 suffices) and rounded half away
 * from zero. Not in place (an output row reads two input rows). */
#ifndef MCU_RESIZE_BILINEAR_S8_H
#define MCU_RESIZE_BILINEAR_S8_H

#include "mcu_common.h"

typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;
    int32_t scale_h, scale_w; /* 1024 * input / output, rounded (align corners: of the sides minus one) */
    int32_t half_pixel;
} mcu_resize_bilinear_params;

/* Position of output index i (10 fractional bits) and its two input neighbours; C's division truncates
 * toward zero, as TFLM's does. */
MCU_INLINE void mcu_resize_position(int32_t i, int32_t scale, int32_t half_pixel, int32_t size, int32_t *pos,
                                    int32_t *lo, int32_t *hi) {
    const int32_t p = i * scale + (half_pixel ? scale / 2 - (1 << 9) : 0);
    *pos = p;
    *lo = mcu_max_i32(p / (1 << 10), 0);
    *hi = mcu_min_i32((p + (1 << 10) - 1) / (1 << 10), size - 1);
}

MCU_INLINE void mcu_resize_bilinear_s8(const mcu_resize_bilinear_params *p, const int8_t *input, int8_t *output) {
    int32_t b, y, x, c;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *image = input + b * p->in_h * p->in_w * p->channels;
        for (y = 0; y < p->out_h; ++y) {
            int32_t py, y0, y1, dy;
            mcu_resize_position(y, p->scale_h, p->half_pixel, p->in_h, &py, &y0, &y1);
            dy = py - (y0 << 10);
            for (x = 0; x < p->out_w; ++x) {
                int32_t px, x0, x1, dx;
                const int8_t *a, *bl, *ar, *br;
                mcu_resize_position(x, p->scale_w, p->half_pixel, p->in_w, &px, &x0, &x1);
                dx = px - (x0 << 10);
                a = image + (y0 * p->in_w + x0) * p->channels;
                bl = image + (y1 * p->in_w + x0) * p->channels;
                ar = image + (y0 * p->in_w + x1) * p->channels;
                br = image + (y1 * p->in_w + x1) * p->channels;
                for (c = 0; c < p->channels; ++c) {
                    const int32_t sum = a[c] * (1024 - dy) * (1024 - dx) + bl[c] * dy * (1024 - dx)
                                        + ar[c] * (1024 - dy) * dx + br[c] * dy * dx;
                    *output++ = (int8_t)((sum + (sum > 0 ? (1 << 19) : -(1 << 19))) / (1 << 20));
                }
            }
        }
    }
}

#endif /* MCU_RESIZE_BILINEAR_S8_H */
