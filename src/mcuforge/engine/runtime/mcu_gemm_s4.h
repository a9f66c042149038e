/* mcuforge runtime: int8 activations against int4 weights (values -8..7): mcu_gemm_w4, the inner loops of the
 * fast fully-connected, pointwise and im2col kernels for int4 weights (mcu_fc_s8_fast.h, mcu_conv_s8_1x1.h,
 * mcu_conv_s8_im2col.h). The weights stay packed in flash and are decoded in registers: nothing decoded is
 * stored.
 *
 * Weight rows in the w4 layout: each group of eight values k..k+7 of a row takes four bytes, byte j holding
 * value k+j in its low nibble and value k+4+j in its high nibble; a row takes mcu_w4_row_bytes(depth)
 * bytes, a partial last group padded with zeros (the codegen packs them so: ir/formats.py).
 * On Arm cores with the DSP extension one 32-bit load gives eight weights: masking the low nibbles into the
 * high ones ((w << 4) & 0xF0F0F0F0) gives the first four as bytes of sixteen times their value, masking the
 * high ones (w & 0xF0F0F0F0) the next four, and SXTB16 then lines them up as (w0, w2), (w1, w3) with the
 * activations (as mcu_gemm_s8.h pairs them). The sums are sixteen times the dot product, exactly, and are
 * shifted back once: |16 * x * w| <= 2^14 (2^15 from a column of doubled values, mcu_requant_twice), so a
 * depth below 2^16 cannot overflow (the codegen checks it).
 * Elsewhere each weight is decoded where it is read. Every path adds the same products: the same bits. */
#ifndef MCU_GEMM_S4_H
#define MCU_GEMM_S4_H

#include "mcu_gemm_s8_4px.h"

MCU_SPECIALIZE int32_t mcu_w4_row_bytes(int32_t depth) { return 4 * ((depth + 7) / 8); }

/* Value i of a w4 row. */
MCU_SPECIALIZE int32_t mcu_w4_at(const uint8_t *row, int32_t i) {
    const uint32_t b = row[(i >> 3) * 4 + (i & 3)];
    const int32_t nibble = (int32_t)((i & 4) ? b >> 4 : b & 0x0Fu);
    return nibble - ((nibble & 8) << 1); /* 8..15 -> -8..-1 */
}

#if MCU_GEMM_DSP

/* The four low and the four high weights of a group, each as 16 times its value in a byte. */
MCU_SPECIALIZE uint32_t mcu_w4_low(uint32_t w) { return (w << 4) & 0xF0F0F0F0u; }
MCU_SPECIALIZE uint32_t mcu_w4_high(uint32_t w) { return w & 0xF0F0F0F0u; }

/* Two pixels against two w4 rows b0, b1: the four dot products of n values. The pixels are int8 rows
 * (`column` NULL: a0, a1) or the two pixels of a column (mcu_pack_s8's layout; n a multiple of 8). */
MCU_SPECIALIZE void mcu_dot_2x2_w4(const int8_t *a0, const int8_t *a1, const mcu_col_t *column, int32_t second,
                                   const uint8_t *b0, const uint8_t *b1, int32_t n, int32_t sums[4]) {
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
    int32_t k, h;
    for (k = 0; k + 8 <= n; k += 8) {
        const uint32_t p0 = mcu_load_u32(b0 + k / 2), p1 = mcu_load_u32(b1 + k / 2);
        for (h = 0; h < 2; ++h) { /* values k..k+3 (the low nibbles), then k+4..k+7 (the high ones) */
            const uint32_t w0 = h ? mcu_w4_high(p0) : mcu_w4_low(p0), w1 = h ? mcu_w4_high(p1) : mcu_w4_low(p1);
            int16x2_t x0_even, x0_odd, x1_even, x1_odd;
            if (column) {
                mcu_load_lanes(column + k + 4 * h, &x0_even, &x0_odd);
                mcu_load_lanes(column + second + k + 4 * h, &x1_even, &x1_odd);
            } else {
                const uint32_t x0 = mcu_load_u32(a0 + k + 4 * h), x1 = mcu_load_u32(a1 + k + 4 * h);
                x0_even = __sxtb16(x0);
                x0_odd = mcu_sxtb16_odd(x0);
                x1_even = __sxtb16(x1);
                x1_odd = mcu_sxtb16_odd(x1);
            }
            MCU_SMLAD_2X2(x0_even, x0_odd, x1_even, x1_odd, w0, w1);
        }
    }
    s00 >>= 4;
    s01 >>= 4;
    s10 >>= 4;
    s11 >>= 4;
    for (; k < n; ++k) { /* int8 rows only */
        const int32_t w0 = mcu_w4_at(b0, k), w1 = mcu_w4_at(b1, k);
        s00 += a0[k] * w0;
        s01 += a0[k] * w1;
        s10 += a1[k] * w0;
        s11 += a1[k] * w1;
    }
    sums[0] = s00;
    sums[1] = s01;
    sums[2] = s10;
    sums[3] = s11;
}

#ifndef MCU_4PX_W4_UNROLL
#define MCU_4PX_W4_UNROLL 4 /* weight words (eight depth values) per iteration of the inner loop */
#endif

/* Eight depth values (one word of a w4 row at w): two groups of the four pixels at col. */
#define MCU_DOT_4PX_W4_STEP(col, w)                                                                  \
    do {                                                                                             \
        const uint32_t p = mcu_load_u32(w), low = mcu_w4_low(p), high = mcu_w4_high(p);              \
        const int16x2_t low_even = __sxtb16(low), low_odd = mcu_sxtb16_odd(low);                     \
        const int16x2_t high_even = __sxtb16(high), high_odd = mcu_sxtb16_odd(high);                 \
        MCU_SMLAD_4PX(col, low_even, low_odd);                                                       \
        MCU_SMLAD_4PX((col) + MCU_4PX_GROUP, high_even, high_odd);                                   \
    } while (0)

/* mcu_gemm_4px for w4 rows (depth a multiple of 8): four pixels of the interleaved column (mcu_pack_4px)
 * against every filter. Per eight depth values of the four pixels: one LDR, three masks and four SXTB16 for
 * the weights, eight LDRD and sixteen SMLAD (int8's path: half the weight words, twice the SXTB16). */
MCU_SPECIALIZE void mcu_gemm_4px_w4(const mcu_col_t *column, const uint8_t *weights, int32_t depth, int32_t out_c,
                                    const mcu_requant_params *r, int8_t *y) {
    const int32_t words = depth / 8, row = mcu_w4_row_bytes(depth);
    int32_t o, g;
    for (o = 0; o < out_c; ++o) {
        const uint8_t *w = weights + o * row;
        const mcu_col_t *col = column;
        const int32_t start = mcu_requant_start(r, o);
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        MCU_OPAQUE(col); /* a register base: LDRD reaches only +-1020 bytes from it */
        for (g = 0; g + MCU_4PX_W4_UNROLL <= words; g += MCU_4PX_W4_UNROLL) {
            int32_t u;
            MCU_UNROLL
            for (u = 0; u < MCU_4PX_W4_UNROLL; ++u, w += 4, col += 2 * MCU_4PX_GROUP) MCU_DOT_4PX_W4_STEP(col, w);
        }
        MCU_UNROLL
        for (; g < words; ++g, w += 4, col += 2 * MCU_4PX_GROUP) MCU_DOT_4PX_W4_STEP(col, w);
        y[o] = mcu_requant_sum(r, start + (s0 >> 4), o);
        y[out_c + o] = mcu_requant_sum(r, start + (s1 >> 4), o);
        y[2 * out_c + o] = mcu_requant_sum(r, start + (s2 >> 4), o);
        y[3 * out_c + o] = mcu_requant_sum(r, start + (s3 >> 4), o);
    }
}

#else /* portable: every weight decoded where it is read; a column holds the pixels' int8 values */

MCU_SPECIALIZE void mcu_dot_2x2_w4(const int8_t *a0, const int8_t *a1, const mcu_col_t *column, int32_t second,
                                   const uint8_t *b0, const uint8_t *b1, int32_t n, int32_t sums[4]) {
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
    int32_t k;
    if (column) {
        a0 = column;
        a1 = column + second;
    }
    for (k = 0; k < n; ++k) {
        const int32_t w0 = mcu_w4_at(b0, k), w1 = mcu_w4_at(b1, k);
        s00 += a0[k] * w0;
        s01 += a0[k] * w1;
        s10 += a1[k] * w0;
        s11 += a1[k] * w1;
    }
    sums[0] = s00;
    sums[1] = s01;
    sums[2] = s10;
    sums[3] = s11;
}

#endif /* MCU_GEMM_DSP */

/* y0[o] = requant(x0 . w_o) for every output channel o, and y1[o] = requant(x1 . w_o) unless y1 is NULL (then
 * pass x1 = x0), for w4 weight rows; the pixels as int8 rows x0, x1, or (`column` not NULL) the two pixels of
 * a column made by mcu_pack_s8, the second at column + mcu_col_stride(depth), depth then a multiple of 8. */
MCU_SPECIALIZE void mcu_gemm_w4(const int8_t *x0, const int8_t *x1, const mcu_col_t *column, const uint8_t *weights,
                                int32_t depth, int32_t out_c, const mcu_requant_params *r, int8_t *y0, int8_t *y1) {
    const int32_t row = mcu_w4_row_bytes(depth);
    int32_t o;
    int32_t sums[4];
    for (o = 0; o < out_c; o += 2) {
        const int32_t pair = o + 1 < out_c; /* else the last channel alone: its weight row twice */
        const uint8_t *w = weights + o * row;
        mcu_dot_2x2_w4(x0, x1, column, mcu_col_stride(depth), w, pair ? w + row : w, depth, sums);
        mcu_gemm_store(r, sums, o, pair, y0, y1);
    }
}

#endif /* MCU_GEMM_S4_H */
