/* mcuforge runtime: int8 depthwise convolution (DEPTHWISE_CONV_2D) row by row, vectorized over channels.
 * Every output pixel is computed in blocks of up to MCU_DW_BLOCK output channels, which NHWC keeps
 * contiguous in the input, the weights and the output. The bias has the input offset folded in at compile
 * time (bias + offset * sum of the channel's taps), so a tap outside the input reads the input zero point
 * (pad_value): (zp + offset) * w = 0, as in mcu_dwconv_s8. Pixels whose window lies inside the input take
 * a path without any test per tap; kernel size, strides and channel counts arrive as literals, so the
 * compiler unrolls the taps of 3x3, 5x5 and 7x7 windows and vectorizes the channel loop. On Arm cores with
 * the DSP extension four channels at a time: SXTB16 unpacks them and SMLABB / SMLATT accumulate.
 * Same results as mcu_dwconv_s8 (mcu_dwconv_s8.h), for channel multipliers up to MCU_DW_BLOCK.
 *
 * mcu_dwconv_s8_inplace_rows writes the output over the input: output rows go to a ring of `ring_rows`
 * rows (the op's scratch) and are copied to their place once no later output row reads the input bytes
 * they cover; the planner computes ring_rows from the geometry (operators/depthwise_conv_2d.py, dw_ring_rows). */
#ifndef MCU_DWCONV_S8_ROWS_H
#define MCU_DWCONV_S8_ROWS_H

#include "mcu_dwconv_s8.h"
#include "mcu_gemm_s8.h"

#ifndef MCU_DW_BLOCK
#define MCU_DW_BLOCK 16
#endif

#if MCU_GEMM_DSP
/* Channels c .. c + 3 of one output pixel (multiplier 1): SXTB16 unpacks four input and four weight bytes,
 * SMLABB / SMLATT multiply-accumulate each channel's pair of 16-bit lanes. rows_inside / cols_inside
 * (literals): the window lies inside the input vertically / horizontally, so no tap tests that side. */
MCU_SPECIALIZE void mcu_dwconv_s8_quad(const mcu_dwconv_shape *s, const mcu_requant_params *r, uint32_t pad4,
                                       const int8_t *input, const int8_t *weights, int32_t y0, int32_t x0,
                                       int32_t rows_inside, int32_t cols_inside, int32_t c, int8_t *out) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    const int8_t *w = weights + c;
    int32_t ky, kx;
    MCU_OPAQUE(w); /* one base register, taps at literal offsets from it */
    MCU_UNROLL
    for (ky = 0; ky < s->k_h; ++ky) {
        const int32_t iy = y0 + ky * s->dil_h;
        const int32_t row_ok = rows_inside || (iy >= 0 && iy < s->in_h);
        MCU_UNROLL
        for (kx = 0; kx < s->k_w; ++kx) {
            const int32_t ix = x0 + kx * s->dil_w;
            const int32_t tap_inside = row_ok && (cols_inside || (ix >= 0 && ix < s->in_w));
            const uint32_t xw = tap_inside ? mcu_load_u32(input + (iy * s->in_w + ix) * s->in_c + c) : pad4;
            const uint32_t ww = mcu_load_u32(w + (ky * s->k_w + kx) * s->in_c);
            const int16x2_t x_even = __sxtb16(xw), x_odd = mcu_sxtb16_odd(xw);
            const int16x2_t w_even = __sxtb16(ww), w_odd = mcu_sxtb16_odd(ww);
            a0 = __smlabb(x_even, w_even, a0);
            a2 = __smlatt(x_even, w_even, a2);
            a1 = __smlabb(x_odd, w_odd, a1);
            a3 = __smlatt(x_odd, w_odd, a3);
        }
    }
    out[c] = mcu_requant_s8(r, a0, c);
    out[c + 1] = mcu_requant_s8(r, a1, c + 1);
    out[c + 2] = mcu_requant_s8(r, a2, c + 2);
    out[c + 3] = mcu_requant_s8(r, a3, c + 3);
}

/* Channels c .. c + 3 along a whole output row, each pixel through the quad variant its window needs. */
MCU_SPECIALIZE void mcu_dwconv_s8_quad_row(const mcu_dwconv_shape *s, const mcu_requant_params *r, uint32_t pad4,
                                           const int8_t *input, const int8_t *weights, int32_t y0,
                                           int32_t rows_inside, int32_t inner_lo, int32_t inner_hi, int32_t c,
                                           int8_t *out_row) {
    int32_t ox;
    for (ox = 0; ox < s->out_w; ++ox) {
        const int32_t x0 = ox * s->stride_w - s->pad_left;
        int8_t *out = out_row + ox * s->in_c;
        if (ox >= inner_lo && ox < inner_hi) {
            mcu_dwconv_s8_quad(s, r, pad4, input, weights, y0, x0, rows_inside, 1, c, out);
        } else {
            mcu_dwconv_s8_quad(s, r, pad4, input, weights, y0, x0, rows_inside, 0, c, out);
        }
    }
}
#endif

/* Output channels [c0, c0 + n) of the output pixel whose window starts at input row y0, column x0 (in
 * `input`, one batch). `inside`: the whole window lies in the input (no test per tap). n and c0 are
 * multiples of the channel multiplier. */
MCU_SPECIALIZE void mcu_dwconv_s8_block(const mcu_dwconv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                        const int8_t *input, const int8_t *weights, int32_t y0, int32_t x0,
                                        int32_t inside, int32_t c0, int32_t n, int8_t *out) {
    const int32_t out_c = s->in_c * s->multiplier;
    int32_t c, ky, kx, ic, m;
    {
        int32_t acc[MCU_DW_BLOCK];
        for (c = 0; c < n; ++c) acc[c] = 0;
        MCU_UNROLL
        for (ky = 0; ky < s->k_h; ++ky) {
            const int32_t iy = y0 + ky * s->dil_h;
            MCU_UNROLL
            for (kx = 0; kx < s->k_w; ++kx) {
                const int32_t ix = x0 + kx * s->dil_w;
                const int8_t *w = weights + (ky * s->k_w + kx) * out_c + c0;
                if (inside || (iy >= 0 && iy < s->in_h && ix >= 0 && ix < s->in_w)) {
                    const int8_t *x = input + (iy * s->in_w + ix) * s->in_c + c0 / s->multiplier;
                    for (ic = 0; ic < n / s->multiplier; ++ic) {
                        for (m = 0; m < s->multiplier; ++m) {
                            acc[ic * s->multiplier + m] += x[ic] * w[ic * s->multiplier + m];
                        }
                    }
                } else {
                    for (c = 0; c < n; ++c) acc[c] += pad_value * w[c];
                }
            }
        }
        for (c = 0; c < n; ++c) out[c0 + c] = mcu_requant_s8(r, acc[c], c0 + c);
    }
}

/* Every output channel of one output pixel, in blocks. */
MCU_SPECIALIZE void mcu_dwconv_s8_pixel(const mcu_dwconv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                        const int8_t *input, const int8_t *weights, int32_t y0, int32_t x0,
                                        int32_t inside, int8_t *out) {
    const int32_t out_c = s->in_c * s->multiplier;
    const int32_t block = (MCU_DW_BLOCK / s->multiplier) * s->multiplier;
    const int32_t whole = out_c - out_c % block;
    int32_t c0;
    for (c0 = 0; c0 < whole; c0 += block) {
        mcu_dwconv_s8_block(s, r, pad_value, input, weights, y0, x0, inside, c0, block,
                            out);
    }
    if (whole < out_c) {
        mcu_dwconv_s8_block(s, r, pad_value, input, weights, y0, x0, inside, whole,
                            out_c - whole, out);
    }
}

/* Output row oy of one batch: `input` is that batch's [in_h, in_w, in_c], out_row gets out_w * out_c bytes.
 * Columns [inner_lo, inner_hi) have windows inside the input horizontally. */
MCU_SPECIALIZE void mcu_dwconv_s8_row(const mcu_dwconv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                      const int8_t *input, const int8_t *weights, int32_t oy,
                                      int8_t *out_row) {
    const int32_t out_c = s->in_c * s->multiplier;
    const int32_t y0 = oy * s->stride_h - s->pad_top;
    const int32_t row_inside = y0 >= 0 && y0 + (s->k_h - 1) * s->dil_h < s->in_h;
    const int32_t span = (s->k_w - 1) * s->dil_w; /* a window's width minus one */
    const int32_t inner_lo = mcu_min_i32((s->pad_left + s->stride_w - 1) / s->stride_w, s->out_w);
    const int32_t last = s->in_w - 1 - span + s->pad_left; /* the largest ox * stride_w inside */
    const int32_t inner_hi = mcu_max_i32(inner_lo, mcu_min_i32(last < 0 ? 0 : last / s->stride_w + 1, s->out_w));
    int32_t ox;
#if MCU_GEMM_DSP
    if (s->multiplier == 1 && out_c % 4 == 0) { /* four channels at a time along the whole row */
        const uint32_t pad4 = (uint32_t)(uint8_t)pad_value * 0x01010101u;
        int32_t c;
        for (c = 0; c < out_c; c += 4) {
            if (row_inside) {
                mcu_dwconv_s8_quad_row(s, r, pad4, input, weights, y0, 1, inner_lo, inner_hi,
                                       c, out_row);
            } else {
                mcu_dwconv_s8_quad_row(s, r, pad4, input, weights, y0, 0, inner_lo, inner_hi,
                                       c, out_row);
            }
        }
        return;
    }
#endif
    for (ox = 0; ox < s->out_w; ++ox) {
        const int32_t x0 = ox * s->stride_w - s->pad_left;
        int8_t *out = out_row + ox * out_c;
        if (row_inside && ox >= inner_lo && ox < inner_hi) {
            mcu_dwconv_s8_pixel(s, r, pad_value, input, weights, y0, x0, 1, out);
        } else {
            mcu_dwconv_s8_pixel(s, r, pad_value, input, weights, y0, x0, 0, out);
        }
    }
}

/* The biases in `r` are bias + input_offset * (sum of the channel's taps); pad_value: the input zero
 * point. */
MCU_SPECIALIZE void mcu_dwconv_s8_rows(const mcu_dwconv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                       const int8_t *input, const int8_t *weights, int8_t *output) {
    const int32_t out_c = s->in_c * s->multiplier;
    int32_t b, oy;
    for (b = 0; b < s->batches; ++b) {
        for (oy = 0; oy < s->out_h; ++oy) {
            mcu_dwconv_s8_row(s, r, pad_value, input + b * s->in_h * s->in_w * s->in_c, weights, oy,
                              output + ((b * s->out_h + oy) * s->out_w) * out_c);
        }
    }
}

/* In place (multiplier 1): `data` holds the input on entry and the output on return; `ring` has
 * ring_rows * out_w * in_c bytes. */
MCU_SPECIALIZE void mcu_dwconv_s8_inplace_rows(const mcu_dwconv_shape *s, const mcu_requant_params *r,
                                               int8_t pad_value, int8_t *data, const int8_t *weights,
                                               int8_t *ring, int32_t ring_rows) {
    const int32_t rows = s->batches * s->out_h;
    const int32_t row_bytes = s->out_w * s->in_c;
    int32_t row, done;
    for (row = 0; row < rows; ++row) {
        const int32_t b = row / s->out_h;
        mcu_dwconv_s8_row(s, r, pad_value, data + b * s->in_h * s->in_w * s->in_c, weights, row % s->out_h,
                          ring + (row % ring_rows) * row_bytes);
        done = row - ring_rows + 1; /* no row after this one reads the input under output row `done` */
        if (done >= 0) {
            memcpy(data + done * row_bytes, ring + (done % ring_rows) * row_bytes, (size_t)row_bytes);
        }
    }
    for (done = mcu_max_i32(rows - ring_rows + 1, 0); done < rows; ++done) {
        memcpy(data + done * row_bytes, ring + (done % ring_rows) * row_bytes, (size_t)row_bytes);
    }
}

#endif /* MCU_DWCONV_S8_ROWS_H */
