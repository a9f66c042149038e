/* mcuforge runtime: int8 depthwise convolution (DEPTHWISE_CONV_2D), TFLite Micro semantics.
 * Activations NHWC int8 (asymmetric), weights [1, KH, KW, C * multiplier] int8 symmetric per output
 * channel, bias int32 per output channel (or NULL). Output channel c * multiplier + m reads input channel c.
 * Taps outside the input are skipped (equivalent to padding with the input zero point).
 *
 * mcu_dwconv_s8_inplace: the same operator (multiplier 1) with the output over the input's
 * bytes. Channel c is computed into an N * out_h * out_w scratch, reading only input channel c, then copied to
 * the output positions p * C + c, which held only input channel c: no later channel reads them.
 * mcu_dwconv_s8_w, mcu_dwconv_s8_inplace_w: the same with weights in any format (mcu_weights.h), inlined
 * where the build optimizes (MCU_SPECIALIZE) so that every call decodes only its own format (measured on a
 * 1-D NAS network, Cortex-M7: the int8 wrappers took 6 % more instructions when the compiler kept one copy
 * for every format). */
#ifndef MCU_DWCONV_S8_H
#define MCU_DWCONV_S8_H

#include "mcu_specialize.h"
#include "mcu_weights.h"

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t multiplier; /* output channels per input channel */
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_top, pad_left;
} mcu_dwconv_shape;

typedef struct {
    int32_t input_offset;  /* minus the input zero point */
    int32_t output_offset; /* the output zero point */
    int32_t act_min, act_max;
} mcu_dwconv_quant;

/* One output value: output channel oc (reading input channel ic) at (b, oy, ox). */
MCU_SPECIALIZE int8_t mcu_dwconv_s8_point(const mcu_dwconv_shape *s, const mcu_dwconv_quant *q,
                                      const int8_t *input, const mcu_weights *weights, const int32_t *bias,
                                      const int32_t *multiplier, const int32_t *shift, int32_t b,
                                      int32_t oy, int32_t ox, int32_t ic, int32_t oc) {
    const int32_t out_c = s->in_c * s->multiplier;
    const int32_t y0 = oy * s->stride_h - s->pad_top;
    const int32_t x0 = ox * s->stride_w - s->pad_left;
    int32_t acc = 0;
    int32_t ky, kx;
    for (ky = 0; ky < s->k_h; ++ky) {
        const int32_t iy = y0 + ky * s->dil_h;
        if (iy < 0 || iy >= s->in_h) continue;
        for (kx = 0; kx < s->k_w; ++kx) {
            const int32_t ix = x0 + kx * s->dil_w;
            int32_t x;
            if (ix < 0 || ix >= s->in_w) continue;
            x = (int32_t)input[((b * s->in_h + iy) * s->in_w + ix) * s->in_c + ic];
            acc += mcu_weight(weights, (ky * s->k_w + kx) * out_c + oc) * (x + q->input_offset);
        }
    }
    if (bias) acc += bias[oc];
    acc = mcu_requantize(acc, multiplier[oc], shift[oc]) + q->output_offset;
    return (int8_t)mcu_clamp_i32(acc, q->act_min, q->act_max);
}

MCU_SPECIALIZE void mcu_dwconv_s8_w(const mcu_dwconv_shape *s, const mcu_dwconv_quant *q, const int8_t *input,
                                const mcu_weights *weights, const int32_t *bias, const int32_t *multiplier,
                                const int32_t *shift, int8_t *output) {
    const int32_t out_c = s->in_c * s->multiplier;
    int32_t b, oy, ox, ic, m;
    for (b = 0; b < s->batches; ++b) {
        for (oy = 0; oy < s->out_h; ++oy) {
            for (ox = 0; ox < s->out_w; ++ox) {
                int8_t *out = output + ((b * s->out_h + oy) * s->out_w + ox) * out_c;
                for (ic = 0; ic < s->in_c; ++ic) {
                    for (m = 0; m < s->multiplier; ++m) {
                        const int32_t oc = ic * s->multiplier + m;
                        out[oc] = mcu_dwconv_s8_point(s, q, input, weights, bias, multiplier, shift, b, oy,
                                                      ox, ic, oc);
                    }
                }
            }
        }
    }
}

/* In place: `data` holds the input [N, in_h, in_w, C] on entry and the output [N, out_h, out_w, C] on
 * return; `scratch` has N * out_h * out_w bytes. Requires multiplier == 1. */
MCU_SPECIALIZE void mcu_dwconv_s8_inplace_w(const mcu_dwconv_shape *s, const mcu_dwconv_quant *q, int8_t *data,
                                        const mcu_weights *weights, const int32_t *bias, const int32_t *multiplier,
                                        const int32_t *shift, int8_t *scratch) {
    const int32_t positions = s->batches * s->out_h * s->out_w;
    int32_t c, b, oy, ox, p;
    for (c = 0; c < s->in_c; ++c) {
        int8_t *column = scratch;
        for (b = 0; b < s->batches; ++b) {
            for (oy = 0; oy < s->out_h; ++oy) {
                for (ox = 0; ox < s->out_w; ++ox) {
                    *column++ = mcu_dwconv_s8_point(s, q, data, weights, bias, multiplier, shift, b, oy, ox, c, c);
                }
            }
        }
        for (p = 0; p < positions; ++p) {
            data[p * s->in_c + c] = scratch[p];
        }
    }
}

MCU_INLINE void mcu_dwconv_s8(const mcu_dwconv_shape *s, const mcu_dwconv_quant *q, const int8_t *input,
                              const int8_t *weights, const int32_t *bias, const int32_t *multiplier,
                              const int32_t *shift, int8_t *output) {
    const mcu_weights w = {.data = weights, .format = MCU_W_INT8};
    mcu_dwconv_s8_w(s, q, input, &w, bias, multiplier, shift, output);
}

MCU_INLINE void mcu_dwconv_s8_inplace(const mcu_dwconv_shape *s, const mcu_dwconv_quant *q, int8_t *data,
                                      const int8_t *weights, const int32_t *bias, const int32_t *multiplier,
                                      const int32_t *shift, int8_t *scratch) {
    const mcu_weights w = {.data = weights, .format = MCU_W_INT8};
    mcu_dwconv_s8_inplace_w(s, q, data, &w, bias, multiplier, shift, scratch);
}

#endif /* MCU_DWCONV_S8_H */
