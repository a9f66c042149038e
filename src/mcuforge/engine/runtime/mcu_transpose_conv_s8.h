/* mcuforge runtime: TRANSPOSE_CONV, int8, per-channel requantization (TFLite Micro's integer transpose
 * convolution). TFLM scatters every input pixel into an int32 buffer of the output's size; this kernel
 * gathers instead: each output sums the taps whose input pixel lands on it, (oy + pad - ky) divisible by
 * the stride, which are the same products (exact int32 sums, in another order). No scratch. */
#ifndef MCU_TRANSPOSE_CONV_S8_H
#define MCU_TRANSPOSE_CONV_S8_H

#include "mcu_common.h"

typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w;
    int32_t stride_h, stride_w, pad_h, pad_w;
    int32_t input_offset, output_offset; /* minus the input's zero point; the output's zero point */
} mcu_transpose_conv_params;

MCU_INLINE void mcu_transpose_conv_s8(const mcu_transpose_conv_params *p, const int8_t *input,
                                      const int8_t *weights, const int32_t *bias, const int32_t *multipliers,
                                      const int32_t *shifts, int8_t *output) {
    int32_t b, oy, ox, oc, ky, kx, c;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            for (ox = 0; ox < p->out_w; ++ox) {
                for (oc = 0; oc < p->out_c; ++oc) {
                    int32_t acc = bias ? bias[oc] : 0;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t ty = oy + p->pad_h - ky;
                        int32_t iy;
                        if (ty < 0 || ty % p->stride_h) continue;
                        iy = ty / p->stride_h;
                        if (iy >= p->in_h) continue;
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int32_t tx = ox + p->pad_w - kx;
                            const int8_t *x, *w;
                            int32_t ix;
                            if (tx < 0 || tx % p->stride_w) continue;
                            ix = tx / p->stride_w;
                            if (ix >= p->in_w) continue;
                            x = input + ((b * p->in_h + iy) * p->in_w + ix) * p->in_c;
                            w = weights + ((oc * p->k_h + ky) * p->k_w + kx) * p->in_c;
                            for (c = 0; c < p->in_c; ++c) acc += (x[c] + p->input_offset) * w[c];
                        }
                    }
                    acc = mcu_requantize_wrap(acc, multipliers[oc], shifts[oc]) + p->output_offset;
                    *output++ = (int8_t)mcu_clamp_i32(acc, -128, 127);
                }
            }
        }
    }
}

#endif /* MCU_TRANSPOSE_CONV_S8_H */
