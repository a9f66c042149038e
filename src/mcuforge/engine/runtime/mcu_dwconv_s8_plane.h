/* mcuforge runtime: int8 depthwise convolution one channel plane at a time, for Arm cores with the DSP
 * extension (channel multiplier 1, no dilation).
 *
 * NHWC puts the taps of one channel C bytes apart, so SMLAD, which multiplies two 16-bit pairs, cannot
 * pair them there. This kernel first copies channel c of the input into a plane of int16 values, padded
 * with the input zero point on every side a window reaches (the bias has the input offset folded in, so a
 * padded tap adds (zp + offset) * w = 0). Two neighbouring taps of a window row are then one 32-bit load,
 * and one SMLAD multiplies them with the pair of weights held in a register: a 3x3 window is three SMLAD
 * and three more for the odd last taps, whose pair partner weight is 0 (the plane has a spare column for
 * that read). Each plane is read for four output pixels per step.
 *
 * The output of channel c goes to its place p * C + c, which held input channel c only, already copied:
 * the kernel works in place as well. The plane (mcu_dw_plane_bytes) is the op's scratch from the planner.
 * Same results as mcu_dwconv_s8. */
#ifndef MCU_DWCONV_S8_PLANE_H
#define MCU_DWCONV_S8_PLANE_H

#include "mcu_dwconv_s8_rows.h"

#define MCU_DW_PLANE_MAX_K 7 /* the largest kernel height and width of this kernel */

/* Plane columns: the padded input row the windows of an output row slide over, plus one spare column for
 * the pair read of an odd last tap, rounded up to even. */
MCU_SPECIALIZE int32_t mcu_dw_plane_cols(const mcu_dwconv_shape *s) {
    const int32_t span = (s->out_w - 1) * s->stride_w + s->k_w + 1;
    return span + span % 2;
}

MCU_SPECIALIZE int32_t mcu_dw_plane_rows(const mcu_dwconv_shape *s) {
    return (s->out_h - 1) * s->stride_h + s->k_h;
}

#if MCU_GEMM_DSP

MCU_SPECIALIZE int32_t mcu_load_s16x2(const int16_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Channel c of one batch's input into the plane: plane row r, column j holds input (r - pad_top,
 * j - pad_left), pad_value outside the input. */
MCU_SPECIALIZE void mcu_dw_plane_fill(const mcu_dwconv_shape *s, int8_t pad_value, const int8_t *input,
                                      int32_t c, int16_t *plane) {
    const int32_t cols = mcu_dw_plane_cols(s), rows = mcu_dw_plane_rows(s);
    const int32_t first = mcu_min_i32(s->pad_left, cols);
    const int32_t inside = mcu_max_i32(0, mcu_min_i32(s->in_w, cols - first));
    int32_t r, j;
    for (r = 0; r < rows; ++r) {
        const int32_t iy = r - s->pad_top;
        int16_t *dst = plane + r * cols;
        if (iy < 0 || iy >= s->in_h) {
            for (j = 0; j < cols; ++j) dst[j] = pad_value;
            continue;
        }
        {
            const int8_t *src = input + iy * s->in_w * s->in_c + c;
            for (j = 0; j < first; ++j) dst[j] = pad_value;
            dst += first;
            MCU_UNROLL
            for (j = 0; j < inside; ++j) dst[j] = src[j * s->in_c];
            for (j = first + inside; j < cols; ++j) plane[r * cols + j] = pad_value;
        }
    }
}

/* Channel c's weights as 16-bit pairs: pairs[ky][i] = (w[ky][2i], w[ky][2i + 1]), 0 past the last tap;
 * doubled when the layer sums doubled products (mcu_requant_twice). */
MCU_SPECIALIZE void mcu_dw_weight_pairs(const mcu_dwconv_shape *s, const mcu_requant_params *r,
                                        const int8_t *weights, int32_t c,
                                        int32_t pairs[MCU_DW_PLANE_MAX_K][(MCU_DW_PLANE_MAX_K + 1) / 2]) {
    const int32_t scale = 1 + mcu_requant_twice(r);
    int32_t ky, kx;
    MCU_UNROLL
    for (ky = 0; ky < s->k_h; ++ky) {
        MCU_UNROLL
        for (kx = 0; kx < s->k_w; kx += 2) {
            const int8_t *w = weights + (ky * s->k_w + kx) * s->in_c + c;
            const int32_t low = scale * w[0], high = kx + 1 < s->k_w ? scale * w[s->in_c] : 0;
            pairs[ky][kx / 2] = (int32_t)(((uint32_t)(uint16_t)low) | ((uint32_t)high << 16));
        }
    }
}

/* `n` (1 to 4, a literal) neighbouring outputs of one output row of channel c: their windows start at
 * plane value `at`, stride_w apart. Each weight pair multiplies n plane pairs: output k's pair i is at
 * at + k * stride_w + 2i, so with stride 1 neighbouring outputs share loads (six distinct pairs per 3x3
 * window row for four outputs). */
MCU_SPECIALIZE void mcu_dw_plane_outputs(const mcu_dwconv_shape *s, const mcu_requant_params *r, const int16_t *at,
                                         int32_t cols, const int32_t pairs[MCU_DW_PLANE_MAX_K][(MCU_DW_PLANE_MAX_K + 1) / 2],
                                         int32_t n, int32_t c, int8_t *y) {
    int32_t acc[4], ky, i, k;
    MCU_UNROLL
    for (k = 0; k < n; ++k) acc[k] = mcu_requant_start(r, c);
    MCU_UNROLL
    for (ky = 0; ky < s->k_h; ++ky) {
        MCU_UNROLL
        for (i = 0; i < (s->k_w + 1) / 2; ++i) {
            MCU_UNROLL
            for (k = 0; k < n; ++k) {
                acc[k] = __smlad(mcu_load_s16x2(at + ky * cols + k * s->stride_w + 2 * i), pairs[ky][i], acc[k]);
            }
        }
    }
    MCU_UNROLL
    for (k = 0; k < n; ++k) y[k * s->in_c] = mcu_requant_sum(r, acc[k], c);
}

/* Channel c of one batch: every output pixel, from the plane, four at a time along each output row. */
MCU_SPECIALIZE void mcu_dw_plane_channel(const mcu_dwconv_shape *s, const mcu_requant_params *r,
                                         const int16_t *plane, const int8_t *weights, int32_t c, int8_t *out) {
    const int32_t cols = mcu_dw_plane_cols(s);
    int32_t pairs[MCU_DW_PLANE_MAX_K][(MCU_DW_PLANE_MAX_K + 1) / 2];
    int32_t oy, ox;
    mcu_dw_weight_pairs(s, r, weights, c, pairs);
    for (oy = 0; oy < s->out_h; ++oy) {
        const int16_t *row = plane + oy * s->stride_h * cols;
        int8_t *y = out + oy * s->out_w * s->in_c + c;
        MCU_OPAQUE(row);
        for (ox = 0; ox + 4 <= s->out_w; ox += 4, row += 4 * s->stride_w, y += 4 * s->in_c) {
            mcu_dw_plane_outputs(s, r, row, cols, pairs, 4, c, y);
        }
        if (s->out_w % 4) mcu_dw_plane_outputs(s, r, row, cols, pairs, s->out_w % 4, c, y); /* the last 1 to 3 */
    }
}

/* `output` may equal `input` (in place). The biases in `r` are bias + input_offset * (sum of the
 * channel's taps); pad_value: the input zero point; `plane`: mcu_dw_plane_bytes(s) bytes, 4-byte aligned. */
MCU_SPECIALIZE void mcu_dwconv_s8_plane(const mcu_dwconv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                        const int8_t *input, const int8_t *weights, int8_t *output,
                                        int16_t *plane) {
    int32_t b, c;
    for (c = 0; c < s->in_c; ++c) {
        for (b = 0; b < s->batches; ++b) {
            mcu_dw_plane_fill(s, pad_value, input + b * s->in_h * s->in_w * s->in_c, c, plane);
            mcu_dw_plane_channel(s, r, plane, weights, c, output + b * s->out_h * s->out_w * s->in_c);
        }
    }
}

#endif /* MCU_GEMM_DSP */

/* The fast depthwise kernel of this build: the plane kernel on Arm cores with the DSP extension when the
 * planner's scratch holds a plane (`plane` = 1), else row by row (mcu_dwconv_s8_rows.h): in place
 * (output == input) over a ring of ring_rows rows in the scratch, or into the output (ring_rows = 0). */
MCU_SPECIALIZE void mcu_dwconv_s8_fast(const mcu_dwconv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                       const int8_t *input, const int8_t *weights, int8_t *output, void *scratch,
                                       int32_t ring_rows, int32_t plane) {
#if MCU_GEMM_DSP
    if (plane) {
        mcu_dwconv_s8_plane(s, r, pad_value, input, weights, output, (int16_t *)scratch);
        return;
    }
#else
    (void)plane;
#endif
    if (ring_rows > 0) {
        mcu_dwconv_s8_inplace_rows(s, r, pad_value, output, weights, (int8_t *)scratch, ring_rows);
    } else {
        mcu_dwconv_s8_rows(s, r, pad_value, input, weights, output);
    }
}

#endif /* MCU_DWCONV_S8_PLANE_H */
