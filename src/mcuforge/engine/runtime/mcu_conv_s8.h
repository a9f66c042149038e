/* mcuforge runtime: int8 2-D convolution (CONV_2D), TFLite Micro semantics.
 * Activations NHWC int8 (asymmetric), weights [O, KH, KW, I] int8 symmetric per output channel,
 * bias int32 per output channel (or NULL). Grouped convolution when in_c is a multiple of filter_in_c.
 * Taps outside the input are skipped (equivalent to padding with the input zero point).
 * Plain direct loops: the generated code passes literal shapes so the compiler specialises them.
 * mcu_conv_s8_w: the same with weights in any format (mcu_weights.h), decoded as they are read. */
#ifndef MCU_CONV_S8_H
#define MCU_CONV_S8_H

#include "mcu_specialize.h"
#include "mcu_weights.h"

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t filter_in_c; /* input channels per filter: in_c / groups */
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_top, pad_left;
} mcu_conv_shape;

typedef struct {
    int32_t input_offset;  /* minus the input zero point */
    int32_t output_offset; /* the output zero point */
    int32_t act_min, act_max;
} mcu_conv_quant;

MCU_SPECIALIZE void mcu_conv_s8_w(const mcu_conv_shape *s, const mcu_conv_quant *q, const int8_t *input,
                              const mcu_weights *weights, const int32_t *bias, const int32_t *multiplier,
                              const int32_t *shift, int8_t *output) {
    const int32_t groups = s->in_c / s->filter_in_c;
    const int32_t out_c_per_group = s->out_c / groups;
    const int32_t filter_size = s->k_h * s->k_w * s->filter_in_c;
    int32_t b, oy, ox, oc, ky, kx, ic;
    for (b = 0; b < s->batches; ++b) {
        for (oy = 0; oy < s->out_h; ++oy) {
            const int32_t y0 = oy * s->stride_h - s->pad_top;
            for (ox = 0; ox < s->out_w; ++ox) {
                const int32_t x0 = ox * s->stride_w - s->pad_left;
                int8_t *out = output + ((b * s->out_h + oy) * s->out_w + ox) * s->out_c;
                for (oc = 0; oc < s->out_c; ++oc) {
                    const int32_t first_in_c = (oc / out_c_per_group) * s->filter_in_c;
                    const int32_t filter = oc * filter_size;
                    int32_t acc = 0;
                    for (ky = 0; ky < s->k_h; ++ky) {
                        const int32_t iy = y0 + ky * s->dil_h;
                        if (iy < 0 || iy >= s->in_h) continue;
                        for (kx = 0; kx < s->k_w; ++kx) {
                            const int32_t ix = x0 + kx * s->dil_w;
                            const int8_t *in;
                            int32_t w;
                            if (ix < 0 || ix >= s->in_w) continue;
                            in = input + ((b * s->in_h + iy) * s->in_w + ix) * s->in_c + first_in_c;
                            w = filter + (ky * s->k_w + kx) * s->filter_in_c;
                            for (ic = 0; ic < s->filter_in_c; ++ic) {
                                acc += mcu_weight(weights, w + ic) * ((int32_t)in[ic] + q->input_offset);
                            }
                        }
                    }
                    if (bias) acc += bias[oc];
                    acc = mcu_requantize(acc, multiplier[oc], shift[oc]) + q->output_offset;
                    out[oc] = (int8_t)mcu_clamp_i32(acc, q->act_min, q->act_max);
                }
            }
        }
    }
}

MCU_INLINE void mcu_conv_s8(const mcu_conv_shape *s, const mcu_conv_quant *q, const int8_t *input,
                            const int8_t *weights, const int32_t *bias, const int32_t *multiplier,
                            const int32_t *shift, int8_t *output) {
    const mcu_weights w = {.data = weights, .format = MCU_W_INT8};
    mcu_conv_s8_w(s, q, input, &w, bias, multiplier, shift, output);
}

#endif /* MCU_CONV_S8_H */
