/* mcuforge runtime: int8 depthwise convolution one channel plane at a time, for Arm cores with the DSP
 * extension (channel multiplier 1, no dilation).
 *
 * NHWC puts the taps of one channel C bytes apart, so SMLAD, which multiplies two 16-bit pairs, cannot
 * pair them there. This kernel first copies channel c of the input into a plane of int16 values, padded
 * with the input zero point on every side a window reaches (the bias has the input offset folded in, so a
 * padded tap adds (zp + offset) * w = 0). Two neighbouring taps of a window row are then one 32-bit load,
 * and one SMLAD multiplies them with the pair of weights held in a register: a 3x3 window is three SMLAD
 * and three more for the odd last taps, whose pair partner weight is 0 (the plane has a spare column for
 * that read). The padding is the same for every channel, so it is written once per layer; each channel
 * then copies only its input values, two per 32-bit store. Outputs go in blocks of up to 8 along a row:
 * each plane pair of a window row is loaded once for every output of the block that reads it (stride 1:
 * 10 loads for 8 outputs' 16 SMLAD per window row), the sums in registers, the weights and requantization
 * constants read from memory where they are used.
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

#define MCU_DW_PLANE_BLOCK 8 /* the most outputs of a row computed at once */
#define MCU_DW_PAIRS ((MCU_DW_PLANE_MAX_K + 1) / 2) /* weight pairs of a window row, at most */

/* Loops whose trip counts are literals up to 2 * MCU_DW_PLANE_MAX_K + 2 * MCU_DW_PLANE_BLOCK: unrolled
 * whole (their bodies test literal conditions), where the kernels are specialised (MCU_SPEED). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8 && MCU_SPEED
#define MCU_DW_UNROLL _Pragma("GCC unroll 32")
#else
#define MCU_DW_UNROLL MCU_UNROLL
#endif

MCU_SPECIALIZE int32_t mcu_load_s16x2(const int16_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* mcu_load_s16x2 where the code puts it: a volatile asm keeps the loads in the order written, which helps
 * GCC keep the sums in registers (measured on MLPerf KWS, Cortex-M7: 0.6 % fewer instructions in all). */
#if defined(__GNUC__) && MCU_GEMM_DSP
typedef int32_t __attribute__((may_alias)) mcu_s16x2_alias;
MCU_SPECIALIZE int32_t mcu_load_s16x2_here(const int16_t *p) {
    int32_t v;
    __asm__ volatile("ldr %0, %1" : "=r"(v) : "m"(*(const mcu_s16x2_alias *)(const void *)p));
    return v;
}
#else
#define mcu_load_s16x2_here mcu_load_s16x2
#endif

/* (low, high) as the two 16-bit lanes of a word: one PKHBT where the compiler has asm. */
MCU_SPECIALIZE uint32_t mcu_pack_s16x2(int32_t low, int32_t high) {
#if defined(__GNUC__) && MCU_GEMM_DSP
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(low), "r"(high));
    return r;
#else
    return (uint32_t)(uint16_t)low | ((uint32_t)high << 16);
#endif
}

/* SMLAD: acc + the products of the two 16-bit lanes of x and y; in portable C where the core has no DSP
 * extension (the plane kernel with weights in a format runs on every build, mcu_dwconv_s8_plane_w). */
#if MCU_GEMM_DSP
#define MCU_DW_SMLAD __smlad
#else
MCU_SPECIALIZE int32_t MCU_DW_SMLAD(uint32_t x, uint32_t y, int32_t acc) {
    return acc + (int32_t)(int16_t)x * (int16_t)y + (int32_t)(int16_t)(x >> 16) * (int16_t)(y >> 16);
}
#endif

/* The plane's padding, the same for every channel: plane row r, column j holds input (r - pad_top,
 * j - pad_left); every place outside the input (and the spare column) gets pad_value, once per layer. */
MCU_SPECIALIZE void mcu_dw_plane_pad(const mcu_dwconv_shape *s, int8_t pad_value, int16_t *plane) {
    const int32_t cols = mcu_dw_plane_cols(s), rows = mcu_dw_plane_rows(s);
    const int32_t first = mcu_min_i32(s->pad_left, cols);
    const int32_t inside = mcu_max_i32(0, mcu_min_i32(s->in_w, cols - first));
    int32_t r, j;
    for (r = 0; r < rows; ++r) {
        const int32_t iy = r - s->pad_top;
        int16_t *dst = plane + r * cols;
        if (iy < 0 || iy >= s->in_h) {
            for (j = 0; j < cols; ++j) dst[j] = pad_value;
        } else {
            for (j = 0; j < first; ++j) dst[j] = pad_value;
            for (j = first + inside; j < cols; ++j) dst[j] = pad_value;
        }
    }
}

/* Channel c of one batch's input into the places of the plane that hold input values, two values (one
 * 32-bit store, unaligned where pad_left is odd) at a time. */
MCU_SPECIALIZE void mcu_dw_plane_fill(const mcu_dwconv_shape *s, const int8_t *input, int32_t c, int16_t *plane) {
    const int32_t cols = mcu_dw_plane_cols(s), rows = mcu_dw_plane_rows(s);
    const int32_t first = mcu_min_i32(s->pad_left, cols);
    const int32_t inside = mcu_max_i32(0, mcu_min_i32(s->in_w, cols - first));
    const int32_t r0 = mcu_max_i32(s->pad_top, 0), r1 = mcu_min_i32(rows, s->pad_top + s->in_h);
    int32_t r, j;
    for (r = r0; r < r1; ++r) {
        const int8_t *src = input + (r - s->pad_top) * s->in_w * s->in_c + c;
        int16_t *dst = plane + r * cols + first;
        MCU_OPAQUE(src); /* one base register, the values at literal offsets from it */
        MCU_UNROLL
        for (j = 0; j + 2 <= inside; j += 2, src += 2 * s->in_c) {
            const uint32_t pair = mcu_pack_s16x2(src[0], src[s->in_c]);
            memcpy(dst + j, &pair, sizeof pair);
        }
        if (inside % 2) dst[inside - 1] = src[0];
    }
}

/* Channel c's weights as 16-bit pairs: pairs[ky * MCU_DW_PAIRS + i] = (w[ky][2i], w[ky][2i + 1]), 0 past
 * the last tap; doubled when the layer sums doubled products (mcu_requant_twice). */
MCU_SPECIALIZE void mcu_dw_weight_pairs(const mcu_dwconv_shape *s, const mcu_requant_params *r,
                                        const int8_t *weights, int32_t c, int32_t *pairs) {
    const int32_t scale = 1 + mcu_requant_twice(r);
    int32_t ky, kx;
    MCU_UNROLL
    for (ky = 0; ky < s->k_h; ++ky) {
        MCU_UNROLL
        for (kx = 0; kx < s->k_w; kx += 2) {
            const int8_t *w = weights + (ky * s->k_w + kx) * s->in_c + c;
            const int32_t low = scale * w[0], high = kx + 1 < s->k_w ? scale * w[s->in_c] : 0;
            pairs[ky * MCU_DW_PAIRS + kx / 2] = (int32_t)(((uint32_t)(uint16_t)low) | ((uint32_t)high << 16));
        }
    }
}

/* Output k of a block (stride_w apart) and weight pair i of a window row read the plane pair at position
 * k * stride_w + 2i of the row: the output that pair i meets at position j, or -1. */
MCU_SPECIALIZE int32_t mcu_dw_plane_meets(const mcu_dwconv_shape *s, int32_t n, int32_t j, int32_t i) {
    const int32_t k = j - 2 * i;
    return k >= 0 && k % s->stride_w == 0 && k / s->stride_w < n ? k / s->stride_w : -1;
}

/* `n` (1 to MCU_DW_PLANE_BLOCK, a literal) neighbouring outputs of one output row of channel c: their
 * windows start at plane value `at`, stride_w apart. Window row by window row, its weight pairs are loaded
 * from `pairs` (memory: the registers hold the n sums) and each plane pair of the row is loaded once and
 * multiplied into every output whose window holds it. */
MCU_SPECIALIZE void mcu_dw_plane_outputs(const mcu_dwconv_shape *s, const mcu_requant_params *r, const int16_t *at,
                                         int32_t cols, const int32_t *pairs, int32_t n, int32_t c, int8_t *y) {
    const int32_t np = (s->k_w + 1) / 2;
    const int32_t span = (n - 1) * s->stride_w + 2 * (np - 1) + 1; /* pair positions a row reads */
    const int32_t start = mcu_requant_start(r, c);
    int32_t acc[MCU_DW_PLANE_BLOCK], w[MCU_DW_PAIRS];
    int32_t ky, i, j, k;
    MCU_DW_UNROLL
    for (k = 0; k < n; ++k) acc[k] = start;
    MCU_DW_UNROLL
    for (ky = 0; ky < s->k_h; ++ky) {
        const int16_t *row = at + ky * cols;
        MCU_DW_UNROLL
        for (i = 0; i < np; ++i) w[i] = pairs[ky * MCU_DW_PAIRS + i];
        MCU_DW_UNROLL
        for (j = 0; j < span; ++j) {
            int32_t used = 0, x = 0;
            MCU_DW_UNROLL
            for (i = 0; i < np; ++i) used |= mcu_dw_plane_meets(s, n, j, i) >= 0;
            if (!used) continue;
            x = mcu_load_s16x2_here(row + j);
            MCU_DW_UNROLL
            for (i = 0; i < np; ++i) {
                k = mcu_dw_plane_meets(s, n, j, i);
                if (k >= 0) acc[k] = MCU_DW_SMLAD(x, w[i], acc[k]);
            }
        }
    }
    MCU_DW_UNROLL
    for (k = 0; k < n; ++k) y[k * s->in_c] = mcu_requant_sum(r, acc[k], c);
}

/* Channel c of one batch, with its weight pairs (mcu_dw_weight_pairs): every output pixel, from the plane, in
 * blocks of up to MCU_DW_PLANE_BLOCK along each output row (12 outputs as 6 + 6, not 8 + 4). */
MCU_SPECIALIZE void mcu_dw_plane_apply(const mcu_dwconv_shape *s, const mcu_requant_params *r,
                                       const int16_t *plane, const int32_t *pairs, int32_t c, int8_t *out) {
    const int32_t cols = mcu_dw_plane_cols(s);
    const int32_t blocks = (s->out_w + MCU_DW_PLANE_BLOCK - 1) / MCU_DW_PLANE_BLOCK; /* per row, evenly */
    const int32_t block = (s->out_w + blocks - 1) / blocks;
    const int32_t whole = s->out_w - s->out_w % block;
    int32_t oy, ox;
    for (oy = 0; oy < s->out_h; ++oy) {
        const int16_t *row = plane + oy * s->stride_h * cols;
        int8_t *y = out + oy * s->out_w * s->in_c + c;
        MCU_OPAQUE(row);
        for (ox = 0; ox < whole; ox += block, row += block * s->stride_w, y += block * s->in_c) {
            int32_t channel = c;
            MCU_OPAQUE(channel); /* its requantization constants read in each block: the registers hold sums */
            mcu_dw_plane_outputs(s, r, row, cols, pairs, block, channel, y);
        }
        if (whole < s->out_w) {
            int32_t channel = c;
            MCU_OPAQUE(channel);
            mcu_dw_plane_outputs(s, r, row, cols, pairs, s->out_w - whole, channel, y);
        }
    }
}

/* Channel c of one batch: its weight pairs, then every output pixel. */
MCU_SPECIALIZE void mcu_dw_plane_channel(const mcu_dwconv_shape *s, const mcu_requant_params *r,
                                         const int16_t *plane, const int8_t *weights, int32_t c, int8_t *out) {
    int32_t pairs_memory[MCU_DW_PLANE_MAX_K * MCU_DW_PAIRS];
    const int32_t *pairs = pairs_memory;
    mcu_dw_weight_pairs(s, r, weights, c, pairs_memory);
    MCU_OPAQUE(pairs); /* read from memory in each block: the registers hold the sums */
    mcu_dw_plane_apply(s, r, plane, pairs, c, out);
}

/* `output` may equal `input` (in place). The biases in `r` are bias + input_offset * (sum of the
 * channel's taps); pad_value: the input zero point; `plane`: mcu_dw_plane_bytes(s) bytes, 4-byte aligned. */
MCU_SPECIALIZE void mcu_dwconv_s8_plane(const mcu_dwconv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                        const int8_t *input, const int8_t *weights, int8_t *output,
                                        int16_t *plane) {
    int32_t b, c;
    mcu_dw_plane_pad(s, pad_value, plane);
    for (c = 0; c < s->in_c; ++c) {
        int32_t channel = c;
        MCU_OPAQUE(channel); /* no pointers derived from c live across the channel: registers for the sums */
        for (b = 0; b < s->batches; ++b) {
            mcu_dw_plane_fill(s, input + b * s->in_h * s->in_w * s->in_c, channel, plane);
            mcu_dw_plane_channel(s, r, plane, weights, channel, output + b * s->out_h * s->out_w * s->in_c);
        }
    }
}

/* mcu_dwconv_s8_plane with the weights in any format (mcu_weights.h): each channel's taps are decoded once,
 * into a few bytes on the stack, and its weight pairs made from them as from the int8 weights of a
 * one-channel layer. The loops over the plane never see the format: every format runs at int8's speed. */
MCU_SPECIALIZE void mcu_dwconv_s8_plane_w(const mcu_dwconv_shape *s, const mcu_requant_params *r, int8_t pad_value,
                                          const int8_t *input, const mcu_weights *weights, int8_t *output,
                                          int16_t *plane) {
    mcu_dwconv_shape one = *s;
    int32_t b, c, t;
    one.in_c = 1;
    mcu_dw_plane_pad(s, pad_value, plane);
    for (c = 0; c < s->in_c; ++c) {
        int8_t taps[MCU_DW_PLANE_MAX_K * MCU_DW_PLANE_MAX_K];
        int32_t pairs_memory[MCU_DW_PLANE_MAX_K * MCU_DW_PAIRS];
        const int32_t *pairs = pairs_memory;
        int32_t channel = c;
        for (t = 0; t < s->k_h * s->k_w; ++t) taps[t] = (int8_t)mcu_weight(weights, t * s->in_c + c);
        mcu_dw_weight_pairs(&one, r, taps, 0, pairs_memory);
        MCU_OPAQUE(pairs);
        MCU_OPAQUE(channel);
        for (b = 0; b < s->batches; ++b) {
            mcu_dw_plane_fill(s, input + b * s->in_h * s->in_w * s->in_c, channel, plane);
            mcu_dw_plane_apply(s, r, plane, pairs, channel, output + b * s->out_h * s->out_w * s->in_c);
        }
    }
}

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
