/* mcuforge runtime: int8 2-D convolution (CONV_2D, one group) through im2col: the windows of two output
 * pixels are copied into a column of 2 * K_h * K_w * C_in values (mcu_pack_s8's layout), taps
 * outside the input filled with the input zero point, then multiplied with every filter as a GEMM
 * (mcu_gemm_s8.h) whose bias has the input offset folded in: a padded tap contributes
 * (zp + offset) * w = 0, as in mcu_conv_s8. A window row whose k_w * C_in values are not whole groups of
 * four (a first layer's 3 channels) has its last values moved behind every row's groups
 * (mcu_im2col_index; the codegen orders the filters alike), so that on Arm cores with the DSP extension a
 * window inside the input is packed four pixels at a time with whole-word loads straight from the input
 * rows (mcu_pack_window_4px).
 *
 * The column lives in the op's scratch when the planner gave it one (4 * (depth + 1) + 4 bytes, enough
 * for int16 values; more for four pixels at a time); otherwise (scratch == NULL) in the not yet written
 * end of the output, and the last pixels, whose outputs reach it, are computed tap by tap without a
 * column. Same results as mcu_conv_s8.
 * mcu_conv_s8_im2col_w4, _w2, _lut: int4 and ternary weights (or pow2 and codebook codes into a table), the
 * filter rows in the column's order padded to `stride` (a multiple of 8, of 16 for 2-bit fields) in the wb
 * layout (mcu_gemm_s4.h), decoded in registers; four pixels at a time where `quads` (scratch
 * of 9 * stride + 4 bytes, as for int8), else the column of two pixels in `scratch` (4 * stride + 4 bytes)
 * or, without it, at the end of the output as above.
 * mcu_conv_s8_im2col_sparse: sparse weights (mcu_sparse_s8.h), the filter rows encoded in the column's order
 * and padded to `stride` with zeros, which cost nothing; each window's int8 values gathered
 * (mcu_im2col_bytes), four windows side by side on Arm cores with the DSP extension. */
#ifndef MCU_CONV_S8_IM2COL_H
#define MCU_CONV_S8_IM2COL_H

#include "mcu_conv_s8.h"
#include "mcu_conv_s8_1x1.h"

/* `count` copies of the padding value (the same in every column layout). */
MCU_SPECIALIZE void mcu_fill_col(mcu_col_t *column, int8_t value, int32_t count) {
    int32_t i;
    for (i = 0; i < count; ++i) column[i] = value;
}

/* Input row iy of a window starting at column x0: *row gets the row (NULL outside the input); returns 1
 * when the window's k_w * in_c values of that row are all inside and contiguous from *row + x0 * in_c. */
MCU_SPECIALIZE int32_t mcu_window_row_inside(const mcu_conv_shape *s, const int8_t *input, int32_t b, int32_t iy,
                                             int32_t x0, const int8_t **row) {
    const int32_t inside_row = iy >= 0 && iy < s->in_h;
    *row = inside_row ? input + ((b * s->in_h + iy) * s->in_w) * s->in_c : (const int8_t *)0;
    return inside_row && s->dil_w == 1 && x0 >= 0 && x0 + s->k_w <= s->in_w;
}

/* The column's value order (the codegen orders the filter rows alike): each window row's k_w * in_c values
 * go as whole groups of four to row * row_groups * 4, and the rest of each row (row_rest values, fewer than
 * four) after every row's groups, at k_h * row_groups * 4 + row * row_rest, then zeros up to the padded
 * depth. Windows inside the input then load as whole words straight from the input rows
 * (mcu_pack_window_4px) even where a row's width is not a multiple of 4 (a first layer with 3 channels);
 * where it is, this is the filter's own order. */
MCU_SPECIALIZE int32_t mcu_im2col_row_groups(const mcu_conv_shape *s) { return s->k_w * s->in_c / 4; }
MCU_SPECIALIZE int32_t mcu_im2col_row_rest(const mcu_conv_shape *s) { return s->k_w * s->in_c % 4; }

/* Where value j of window row ky goes in the column. */
MCU_SPECIALIZE int32_t mcu_im2col_index(const mcu_conv_shape *s, int32_t ky, int32_t j) {
    const int32_t whole = 4 * mcu_im2col_row_groups(s), rest = mcu_im2col_row_rest(s);
    return j < whole ? ky * whole + j : s->k_h * whole + ky * rest + (j - whole);
}

/* n values of window row ky from its value j on, read from src (pad_value where src is NULL), into their
 * places in the column of int8 values `bytes`. */
MCU_SPECIALIZE void mcu_im2col_put(const mcu_conv_shape *s, int8_t *bytes, int32_t ky, int32_t j,
                                   const int8_t *src, int8_t pad_value, int32_t n) {
    const int32_t whole = 4 * mcu_im2col_row_groups(s);
    const int32_t head = j < whole ? mcu_min_i32(n, whole - j) : 0; /* the values that go to the row's groups */
    if (head > 0) {
        if (src) memcpy(bytes + mcu_im2col_index(s, ky, j), src, (size_t)head);
        else memset(bytes + mcu_im2col_index(s, ky, j), pad_value, (size_t)head);
    }
    if (n > head) {
        if (src) memcpy(bytes + mcu_im2col_index(s, ky, j + head), src + head, (size_t)(n - head));
        else memset(bytes + mcu_im2col_index(s, ky, j + head), pad_value, (size_t)(n - head));
    }
}

/* The window of output pixel (b, oy, ox) as int8 values in the column's order (mcu_im2col_index), taps
 * outside the input reading pad_value, then zeros up to `values` (the padded depth). */
MCU_SPECIALIZE void mcu_im2col_bytes(const mcu_conv_shape *s, int8_t pad_value, const int8_t *input, int32_t b,
                                     int32_t oy, int32_t ox, int32_t values, int8_t *bytes) {
    const int32_t y0 = oy * s->stride_h - s->pad_top;
    const int32_t x0 = ox * s->stride_w - s->pad_left;
    const int32_t row_values = s->k_w * s->in_c;
    int32_t ky, kx, k;
    for (ky = 0; ky < s->k_h; ++ky) {
        const int8_t *in_row;
        if (mcu_window_row_inside(s, input, b, y0 + ky * s->dil_h, x0, &in_row)) {
            mcu_im2col_put(s, bytes, ky, 0, in_row + x0 * s->in_c, pad_value, row_values);
            continue;
        }
        for (kx = 0; kx < s->k_w; ++kx) {
            const int32_t ix = x0 + kx * s->dil_w;
            const int32_t inside = in_row && ix >= 0 && ix < s->in_w;
            mcu_im2col_put(s, bytes, ky, kx * s->in_c, inside ? in_row + ix * s->in_c : (const int8_t *)0,
                           pad_value, s->in_c);
        }
    }
    for (k = s->k_h * row_values; k < values; ++k) bytes[k] = 0;
}

/* The window of output pixel (b, oy, ox), k_h * k_w * in_c values in the column's order, then zeros up to
 * `values`, into `column`. The DSP layout groups values by four, so there segments are packed directly
 * only when in_c is a multiple of 4; otherwise the window is gathered as int8 at the start of the column
 * (mcu_im2col_bytes; the portable path's column is int8 anyway) and widened in place from the end. */
MCU_SPECIALIZE void mcu_im2col_s8(const mcu_conv_shape *s, int8_t pad_value, const int8_t *input, int32_t b,
                                  int32_t oy, int32_t ox, int32_t values, mcu_col_t *column) {
    const int32_t y0 = oy * s->stride_h - s->pad_top;
    const int32_t x0 = ox * s->stride_w - s->pad_left;
    const int32_t row_values = s->k_w * s->in_c;
    const int32_t gather = MCU_GEMM_DSP ? s->in_c % 4 != 0 : mcu_im2col_row_rest(s) != 0;
    int32_t ky, kx, k = 0;
    if (gather) {
        mcu_im2col_bytes(s, pad_value, input, b, oy, ox, values, (int8_t *)(void *)column);
    } else { /* the column's order is the filter's: row_rest is 0 */
        for (ky = 0; ky < s->k_h; ++ky) {
            const int8_t *in_row;
            if (mcu_window_row_inside(s, input, b, y0 + ky * s->dil_h, x0, &in_row)) {
                mcu_pack_s8(in_row + x0 * s->in_c, row_values, column + k);
                k += row_values;
                continue;
            }
            for (kx = 0; kx < s->k_w; ++kx, k += s->in_c) {
                const int32_t ix = x0 + kx * s->dil_w;
                if (!in_row || ix < 0 || ix >= s->in_w) mcu_fill_col(column + k, pad_value, s->in_c);
                else mcu_pack_s8(in_row + ix * s->in_c, s->in_c, column + k);
            }
        }
        mcu_fill_col(column + k, 0, values - k);
    }
#if MCU_GEMM_DSP
    if (gather) { /* widen in place from the end: value k moves to bytes 2k, 2k + 1, never below k */
        const int8_t *bytes = (const int8_t *)(const void *)column;
        const int32_t groups = values - values % 4;
        int32_t i;
        for (i = values - 1; i >= groups; --i) column[i] = bytes[i];
        for (i = groups - 4; i >= 0; i -= 4) {
            const uint32_t v = mcu_load_u32(bytes + i);
            const int16x2_t even = __sxtb16(v), odd = mcu_sxtb16_odd(v);
            memcpy(column + i, &even, sizeof even);
            memcpy(column + i + 2, &odd, sizeof odd);
        }
    }
#endif
}

#if MCU_GEMM_DSP
/* Pixel p's window into mcu_gemm_4px's interleaved column, for a window inside the input (dil_w = 1) whose
 * first value is at `at`: each row's groups of four as one word each, then the rows' remaining values
 * gathered into words (mcu_im2col_index's order) and zeros up to the padded depth. */
MCU_SPECIALIZE void mcu_pack_window_4px(const mcu_conv_shape *s, const mcu_requant_params *r, const int8_t *at,
                                        int32_t p, mcu_col_t *column) {
    const int32_t groups = mcu_im2col_row_groups(s), rest = mcu_im2col_row_rest(s);
    const int32_t per = rest > 0 ? rest : 1; /* rest, never a divisor of 0 (the loop below then does not run) */
    const int32_t row_step = s->dil_h * s->in_w * s->in_c;
    mcu_col_t *dst = column + 4 * p;
    uint32_t word = 0;
    int32_t ky, g, i;
    MCU_UNROLL
    for (ky = 0; ky < s->k_h; ++ky) {
        MCU_UNROLL
        for (g = 0; g < groups; ++g, dst += MCU_4PX_GROUP) {
            mcu_pack_group_4px(mcu_load_u32(at + ky * row_step + 4 * g), r, dst);
        }
    }
    MCU_UNROLL
    for (i = 0; i < s->k_h * rest; ++i) { /* value i: row i / rest, that row's value 4 * groups + i % rest */
        word |= (uint32_t)(uint8_t)at[(i / per) * row_step + 4 * groups + i % per] << (8 * (i % 4));
        if (i % 4 == 3 || i == s->k_h * rest - 1) {
            mcu_pack_group_4px(word, r, dst);
            dst += MCU_4PX_GROUP;
            word = 0;
        }
    }
}

/* The windows of output pixels p .. p + 3 into mcu_gemm_4px's interleaved column `quad` (stride values of
 * each); `window`: stride bytes, where a window that reaches outside the input is gathered first. */
MCU_SPECIALIZE void mcu_im2col_4px(const mcu_conv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                   const int8_t *input, int32_t stride, int32_t p, mcu_col_t *quad, int8_t *window) {
    const int32_t plane = s->out_h * s->out_w;
    int32_t k;
    for (k = 0; k < 4; ++k) {
        const int32_t q = p + k, b = q / plane, oy = (q % plane) / s->out_w, ox = q % s->out_w;
        const int32_t y0 = oy * s->stride_h - s->pad_top, x0 = ox * s->stride_w - s->pad_left;
        if (s->dil_w == 1 && y0 >= 0 && y0 + (s->k_h - 1) * s->dil_h < s->in_h && x0 >= 0
            && x0 + s->k_w <= s->in_w) { /* the whole window inside: whole words from the input rows */
            mcu_pack_window_4px(s, r, input + ((b * s->in_h + y0) * s->in_w + x0) * s->in_c, k, quad);
        } else {
            mcu_im2col_bytes(s, pad_value, input, b, oy, ox, stride, window);
            mcu_pack_4px(window, stride, k, r, quad);
        }
    }
}
#endif

/* Output pixel (b, oy, ox) without a column: tap by tap, a padded tap reading pad_value. Filter rows are
 * `stride` values apart, in the column's order. */
MCU_SPECIALIZE void mcu_conv_s8_pixel_direct(const mcu_conv_shape *s, const mcu_requant_params *r,
                                             int8_t pad_value, const int8_t *input, const int8_t *weights,
                                             int32_t stride, int32_t b, int32_t oy, int32_t ox, int8_t *out) {
    const int32_t y0 = oy * s->stride_h - s->pad_top;
    const int32_t x0 = ox * s->stride_w - s->pad_left;
    int32_t oc, ky, kx, ic;
    for (oc = 0; oc < s->out_c; ++oc) {
        const int8_t *w = weights + oc * stride;
        int32_t acc = 0;
        for (ky = 0; ky < s->k_h; ++ky) {
            const int32_t iy = y0 + ky * s->dil_h;
            for (kx = 0; kx < s->k_w; ++kx) {
                const int32_t ix = x0 + kx * s->dil_w;
                const int32_t outside = iy < 0 || iy >= s->in_h || ix < 0 || ix >= s->in_w;
                const int8_t *in = outside ? input : input + ((b * s->in_h + iy) * s->in_w + ix) * s->in_c;
                for (ic = 0; ic < s->in_c; ++ic) {
                    acc += (outside ? pad_value : in[ic]) * w[mcu_im2col_index(s, ky, kx * s->in_c + ic)];
                }
            }
        }
        out[oc] = mcu_requant_s8(r, acc, oc);
    }
}

/* The same with wb rows of `bits`-bit weights (mcu_gemm_s4.h), walking the column's order: value i of a
 * filter row is value j of window row ky (mcu_im2col_index's inverse), and the values past the window are
 * the zero padding. */
MCU_SPECIALIZE void mcu_conv_s8_pixel_direct_wb(const mcu_conv_shape *s, const mcu_requant_params *r,
                                                int8_t pad_value, const int8_t *input, const uint8_t *weights,
                                                int32_t stride, int32_t bits, const int8_t *table, int32_t b,
                                                int32_t oy, int32_t ox, int8_t *out) {
    const int32_t whole = 4 * mcu_im2col_row_groups(s), rest = mcu_im2col_row_rest(s);
    const int32_t depth = s->k_h * s->k_w * s->in_c;
    int32_t oc, i;
    for (oc = 0; oc < s->out_c; ++oc) {
        const uint8_t *row = weights + oc * mcu_wb_row_bytes(stride, bits);
        int32_t acc = 0;
        for (i = 0; i < depth; ++i) {
            const int32_t tail = i >= s->k_h * whole; /* past every row's groups: the rows' rests */
            const int32_t ky = tail ? (i - s->k_h * whole) / rest : i / whole;
            const int32_t j = tail ? whole + (i - s->k_h * whole) % rest : i % whole;
            const int32_t iy = oy * s->stride_h - s->pad_top + ky * s->dil_h;
            const int32_t ix = ox * s->stride_w - s->pad_left + (j / s->in_c) * s->dil_w;
            const int32_t inside = iy >= 0 && iy < s->in_h && ix >= 0 && ix < s->in_w;
            const int32_t x = inside ? input[((b * s->in_h + iy) * s->in_w + ix) * s->in_c + j % s->in_c] : pad_value;
            acc += x * mcu_wb_at(row, i, bits, table);
        }
        out[oc] = mcu_requant_s8(r, acc, oc);
    }
}

/* Filter rows of `stride` values: the window's depth k_h * k_w * in_c rounded up to a multiple of 4, the
 * extra weights 0 (the codegen pads them), so that every dot product runs in whole groups of four. The
 * biases in `r` must be bias + input_offset * (sum of the filter's weights); pad_value = -input_offset.
 * `quads` (the planner's larger scratch, 9 * stride + 4 bytes): on Arm cores with the DSP extension, four
 * pixels' windows at a time, widened into mcu_gemm_4px's interleaved column (mcu_gemm_3px measured slower
 * here: GCC spills its sums amid the window gathering); the other pixels two at a
 * time (scratch of 4 * (stride + 1) + 4 bytes, or the unwritten end of the output when scratch is NULL). */
MCU_SPECIALIZE void mcu_conv_s8_im2col(const mcu_conv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                       const int8_t *input, const int8_t *weights, int32_t stride,
                                       int8_t *output, int8_t *scratch, int32_t quads) {
    const int32_t plane = s->out_h * s->out_w;
    const int32_t pixels = s->batches * plane;
    const int32_t out_bytes = pixels * s->out_c;
    const int8_t *column_end; /* pixels whose outputs end at or below it may use the column */
    const int32_t column_bytes = 2 * mcu_col_stride(stride) * (int32_t)sizeof(mcu_col_t);
    mcu_col_t *column = mcu_tail_column(scratch ? scratch : output, scratch ? column_bytes + 4 : out_bytes,
                                        column_bytes, &column_end);
    int32_t p = 0;
#if MCU_GEMM_DSP
    if (quads && scratch && stride % 4 == 0) {
        const int8_t *unused;
        mcu_col_t *quad = mcu_tail_column(scratch, 8 * stride + 4, 8 * stride, &unused);
        int8_t *window = (int8_t *)(void *)(quad + 4 * stride);
        for (; p + 4 <= pixels; p += 4) {
            mcu_im2col_4px(s, r, pad_value, input, stride, p, quad, window);
            mcu_gemm_4px(quad, weights, stride, s->out_c, r, output + p * s->out_c);
        }
    }
#else
    (void)quads;
#endif
    for (; p < pixels; p += 2) {
        const int32_t pair = p + 1 < pixels;
        const int32_t q = pair ? p + 1 : p;
        if (!column || (!scratch && output + (p + 1 + pair) * s->out_c > column_end)) break;
        mcu_im2col_s8(s, pad_value, input, p / plane, (p % plane) / s->out_w, p % s->out_w, stride, column);
        if (pair) mcu_im2col_s8(s, pad_value, input, q / plane, (q % plane) / s->out_w, q % s->out_w, stride,
                                column + mcu_col_stride(stride));
        mcu_gemm_col_2rows(column, weights, stride, s->out_c, r, output + p * s->out_c,
                           pair ? output + q * s->out_c : (int8_t *)0);
    }
    for (; p < pixels; ++p) {
        mcu_conv_s8_pixel_direct(s, r, pad_value, input, weights, stride, p / plane, (p % plane) / s->out_w,
                                 p % s->out_w, output + p * s->out_c);
    }
}

/* `bits`: 4 or 2, a literal (int4, ternary; with a `table`, pow2 or codebook codes); `stride` a multiple of
 * 32 / bits. */
MCU_SPECIALIZE void mcu_conv_s8_im2col_wb(const mcu_conv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                          const int8_t *input, const uint8_t *weights, const int8_t *table,
                                          int32_t stride, int32_t bits, int8_t *output, int8_t *scratch,
                                          int32_t quads) {
    const int32_t plane = s->out_h * s->out_w;
    const int32_t pixels = s->batches * plane;
    const int32_t out_bytes = pixels * s->out_c;
    const int32_t column_bytes = 2 * mcu_col_stride(stride) * (int32_t)sizeof(mcu_col_t);
    const int8_t *column_end; /* pixels whose outputs end at or below it may use the column */
    mcu_col_t *column = mcu_tail_column(scratch ? scratch : output, scratch ? column_bytes + 4 : out_bytes,
                                        column_bytes, &column_end);
    int32_t p = 0;
#if MCU_GEMM_DSP
    if (quads && scratch) { /* as mcu_conv_s8_im2col's four pixels at a time, against wb rows */
        const int8_t *unused;
        mcu_col_t *quad = mcu_tail_column(scratch, 8 * stride + 4, 8 * stride, &unused);
        int8_t *window = (int8_t *)(void *)(quad + 4 * stride);
        for (; p + 4 <= pixels; p += 4) {
            mcu_im2col_4px(s, r, pad_value, input, stride, p, quad, window);
            mcu_gemm_4px_wb(quad, weights, stride, s->out_c, bits, table, r, output + p * s->out_c);
        }
    }
#else
    (void)quads;
#endif
    for (; p < pixels; p += 2) {
        const int32_t pair = p + 1 < pixels;
        const int32_t q = pair ? p + 1 : p;
        if (!column || (!scratch && output + (p + 1 + pair) * s->out_c > column_end)) break;
        mcu_im2col_s8(s, pad_value, input, p / plane, (p % plane) / s->out_w, p % s->out_w, stride, column);
        mcu_im2col_s8(s, pad_value, input, q / plane, (q % plane) / s->out_w, q % s->out_w, stride,
                      column + mcu_col_stride(stride));
        mcu_gemm_wb((const int8_t *)0, (const int8_t *)0, column, weights, stride, s->out_c, bits, table, r,
                    output + p * s->out_c, pair ? output + q * s->out_c : (int8_t *)0);
    }
    for (; p < pixels; ++p) {
        mcu_conv_s8_pixel_direct_wb(s, r, pad_value, input, weights, stride, bits, table, p / plane,
                                    (p % plane) / s->out_w, p % s->out_w, output + p * s->out_c);
    }
}

MCU_SPECIALIZE void mcu_conv_s8_im2col_w4(const mcu_conv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                          const int8_t *input, const uint8_t *weights, int32_t stride,
                                          int8_t *output, int8_t *scratch, int32_t quads) {
    mcu_conv_s8_im2col_wb(s, r, pad_value, input, weights, (const int8_t *)0, stride, 4, output, scratch, quads);
}

MCU_SPECIALIZE void mcu_conv_s8_im2col_w2(const mcu_conv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                          const int8_t *input, const uint8_t *weights, int32_t stride,
                                          int8_t *output, int8_t *scratch, int32_t quads) {
    mcu_conv_s8_im2col_wb(s, r, pad_value, input, weights, (const int8_t *)0, stride, 2, output, scratch, quads);
}

/* Codes of `bits` bits (4 or 2, a literal) in the wb layout, each weight table[code] (pow2, codebook). */
MCU_SPECIALIZE void mcu_conv_s8_im2col_lut(const mcu_conv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                           const int8_t *input, const uint8_t *weights, const int8_t *table,
                                           int32_t bits, int32_t stride, int8_t *output, int8_t *scratch,
                                           int32_t quads) {
    mcu_conv_s8_im2col_wb(s, r, pad_value, input, weights, table, stride, bits, output, scratch, quads);
}

/* Convolution through im2col (mcu_conv_s8_im2col's shapes) with sparse weights, rows of `stride` values in
 * the column's order; `scratch`: with `quads` (a literal), 9 * stride + 4 bytes (the planner's IM2COL4
 * variant): four windows side by side (int16) and one window of int8 values, else stride bytes (IM2COL):
 * one window at a time. */
MCU_SPECIALIZE void mcu_conv_s8_im2col_sparse(const mcu_conv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                              const int8_t *input, const mcu_weights *weights, int32_t stride,
                                              int8_t *output, int8_t *scratch, int32_t quads_planned) {
    const int32_t plane = s->out_h * s->out_w;
    const int32_t pixels = s->batches * plane;
    const int8_t *unused;
    mcu_col_t *quad = quads_planned ? mcu_tail_column(scratch, 8 * stride + 4, 8 * stride, &unused) : (mcu_col_t *)0;
    int8_t *window = quads_planned ? (int8_t *)(void *)(quad + 4 * stride) : scratch;
    const int32_t quads = MCU_GEMM_DSP && quads_planned ? pixels / 4 : 0; /* four windows at a time, then one */
    int32_t i, p;
#if MCU_GEMM_DSP
    for (i = 0; i < quads; ++i) {
        int32_t k;
        for (k = 0; k < 4; ++k) {
            p = 4 * i + k;
            mcu_im2col_bytes(s, pad_value, input, p / plane, (p % plane) / s->out_w, p % s->out_w, stride, window);
            mcu_pack_side_by_side(window, stride, k, r, quad);
        }
        mcu_sparse_4px(weights, quad, stride, s->out_c, r, output + 4 * i * s->out_c);
    }
#else
    (void)i;
#endif
    for (p = 4 * quads; p < pixels; ++p) {
        mcu_im2col_bytes(s, pad_value, input, p / plane, (p % plane) / s->out_w, p % s->out_w, stride, window);
        mcu_sparse_pixel(weights, window, stride, s->out_c, r, output + p * s->out_c);
    }
}

#endif /* MCU_CONV_S8_IM2COL_H */
