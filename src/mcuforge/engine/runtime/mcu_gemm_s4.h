/* mcuforge runtime: int8 activations against low-bit weights, int4 (values -8..7, `bits` 4) or ternary
 * (-1, 0, 1 as 2-bit two's complement, `bits` 2): mcu_gemm_wb, mcu_gemm_4px_wb, the inner loops of the fast
 * fully-connected, pointwise and im2col kernels for those weights (mcu_fc_s8_fast.h, mcu_conv_s8_1x1.h,
 * mcu_conv_s8_im2col.h). The weights stay packed in flash and are decoded in registers: nothing decoded is
 * stored. `bits` is a literal in every call, so each kernel is compiled for its width.
 *
 * Weight rows in the wb layout: each group of 32 / bits values k.. of a row takes one 32-bit word, byte j
 * holding values k + j, k + 4 + j, .. in its fields of `bits` bits from the lowest (int4, the w4 layout:
 * value k + j in the low nibble, k + 4 + j in the high one); a row takes mcu_wb_row_bytes(depth, bits) bytes,
 * a partial last group padded with zeros (the codegen packs them so: ir/formats.py, pack_wb_rows).
 * On Arm cores with the DSP extension one 32-bit load gives 32 / bits weights: shifting field g of every byte
 * to the byte's top bits and masking the rest ((w << (8 - bits - g * bits)) & top) gives four of them as bytes
 * of 2^(8 - bits) times their value, and SXTB16 then lines them up as (w0, w2), (w1, w3) with the activations
 * (as mcu_gemm_s8.h pairs them). The sums are 2^(8 - bits) times the dot product, exactly, and are shifted
 * back once: |2^(8 - bits) * x * w| <= 2^15 even from a column of doubled values (mcu_requant_twice), so a
 * depth below 2^16 cannot overflow (the codegen checks it).
 * With a `table` (not NULL: pow2 and codebook weights, their fields codes into it), each group of four
 * codes is looked up into four int8 bytes instead, and the sums need no shift.
 * Elsewhere each weight is decoded where it is read. Every path adds the same products: the same bits. */
#ifndef MCU_GEMM_S4_H
#define MCU_GEMM_S4_H

#include "mcu_gemm_s8_4px.h"

/* Values per 32-bit word of a wb row. */
MCU_SPECIALIZE int32_t mcu_wb_per_word(int32_t bits) { return 32 / bits; }

MCU_SPECIALIZE int32_t mcu_wb_row_bytes(int32_t depth, int32_t bits) {
    return 4 * ((depth + mcu_wb_per_word(bits) - 1) / mcu_wb_per_word(bits));
}

/* Value i of a wb row: its field as a signed value, or (table not NULL) the table's entry for it. */
MCU_SPECIALIZE int32_t mcu_wb_at(const uint8_t *row, int32_t i, int32_t bits, const int8_t *table) {
    const int32_t per = mcu_wb_per_word(bits);
    const uint32_t b = row[(i / per) * 4 + (i & 3)];
    const int32_t field = (int32_t)((b >> (((i % per) >> 2) * bits)) & ((1u << bits) - 1u));
    if (table) return table[field];
    return field - ((field & (1 << (bits - 1))) << 1); /* the top bit is the sign */
}

/* The shift that brings the sums back: the fields sit 8 - bits bits up in their bytes, looked-up values do
 * not. */
MCU_SPECIALIZE int32_t mcu_wb_shift(int32_t bits, const int8_t *table) { return table ? 0 : 8 - bits; }

/* sums = (s00, s01, s10, s11) plus the products of values [k, n) of the int8 rows a0, a1 with the wb rows
 * b0, b1, each weight decoded where it is read. */
MCU_SPECIALIZE void mcu_dot_2x2_wb_rest(const int8_t *a0, const int8_t *a1, const uint8_t *b0, const uint8_t *b1,
                                       int32_t k, int32_t n, int32_t bits, const int8_t *table, int32_t s00,
                                       int32_t s01, int32_t s10, int32_t s11, int32_t sums[4]) {
    for (; k < n; ++k) {
        const int32_t w0 = mcu_wb_at(b0, k, bits, table), w1 = mcu_wb_at(b1, k, bits, table);
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

#if MCU_GEMM_DSP

/* Group g of word w (values 4g .. 4g + 3 of its group of 32 / bits): each as 2^(8 - bits) times its value in
 * a byte, or (table not NULL) as the table's int8 value for its code. */
MCU_SPECIALIZE uint32_t mcu_wb_group(uint32_t w, int32_t g, int32_t bits, const int8_t *table) {
    const uint32_t top = (0xFFu << (8 - bits)) & 0xFFu;
    uint32_t out = 0;
    int32_t j;
    if (!table) return (w << (8 - bits - g * bits)) & (top * 0x01010101u);
    MCU_UNROLL
    for (j = 0; j < 4; ++j) out |= (uint32_t)(uint8_t)table[(w >> (8 * j + g * bits)) & ((1u << bits) - 1u)] << (8 * j);
    return out;
}

/* Two pixels against two wb rows b0, b1: the four dot products of n values. The pixels are int8 rows
 * (`column` NULL: a0, a1) or the two pixels of a column (mcu_pack_s8's layout; n a multiple of 32 / bits). */
MCU_SPECIALIZE void mcu_dot_2x2_wb(const int8_t *a0, const int8_t *a1, const mcu_col_t *column, int32_t second,
                                   const uint8_t *b0, const uint8_t *b1, int32_t n, int32_t bits, const int8_t *table,
                                   int32_t sums[4]) {
    const int32_t per = mcu_wb_per_word(bits);
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
    int32_t k, g;
    for (k = 0; k + per <= n; k += per) {
        const uint32_t p0 = mcu_load_u32(b0 + k * bits / 8), p1 = mcu_load_u32(b1 + k * bits / 8);
        for (g = 0; g < per / 4; ++g) { /* values k + 4g .. k + 4g + 3 */
            const uint32_t w0 = mcu_wb_group(p0, g, bits, table), w1 = mcu_wb_group(p1, g, bits, table);
            int16x2_t x0_even, x0_odd, x1_even, x1_odd;
            if (column) {
                mcu_load_lanes(column + k + 4 * g, &x0_even, &x0_odd);
                mcu_load_lanes(column + second + k + 4 * g, &x1_even, &x1_odd);
            } else {
                const uint32_t x0 = mcu_load_u32(a0 + k + 4 * g), x1 = mcu_load_u32(a1 + k + 4 * g);
                x0_even = __sxtb16(x0);
                x0_odd = mcu_sxtb16_odd(x0);
                x1_even = __sxtb16(x1);
                x1_odd = mcu_sxtb16_odd(x1);
            }
            MCU_SMLAD_2X2(x0_even, x0_odd, x1_even, x1_odd, w0, w1);
        }
    }
    s00 >>= mcu_wb_shift(bits, table);
    s01 >>= mcu_wb_shift(bits, table);
    s10 >>= mcu_wb_shift(bits, table);
    s11 >>= mcu_wb_shift(bits, table);
    mcu_dot_2x2_wb_rest(a0, a1, b0, b1, k, n, bits, table, s00, s01, s10, s11, sums); /* int8 rows only */
}

#ifndef MCU_4PX_WB_UNROLL
#define MCU_4PX_WB_UNROLL 4 /* weight words per iteration of the inner loop */
#endif

/* One word of a wb row at w (32 / bits depth values): its groups against the four pixels at col. */
#define MCU_DOT_4PX_WB_STEP(col, w, bits, table)                                                     \
    do {                                                                                             \
        const uint32_t p = mcu_load_u32(w);                                                          \
        int32_t g;                                                                                   \
        MCU_UNROLL                                                                                   \
        for (g = 0; g < 8 / (bits); ++g) {                                                           \
            const uint32_t v = mcu_wb_group(p, g, bits, table);                                      \
            const int16x2_t v_even = __sxtb16(v), v_odd = mcu_sxtb16_odd(v);                        \
            MCU_SMLAD_4PX((col) + g * MCU_4PX_GROUP, v_even, v_odd);                                  \
        }                                                                                            \
    } while (0)

/* mcu_gemm_4px for wb rows (depth a multiple of 32 / bits): four pixels of the interleaved column
 * (mcu_pack_4px) against every filter. Per word of weights and four pixels: one LDR, then per group of four
 * values two masks, two SXTB16, four LDRD and eight SMLAD (int8's path: one LDR and two SXTB16 per group). */
MCU_SPECIALIZE void mcu_gemm_4px_wb(const mcu_col_t *column, const uint8_t *weights, int32_t depth, int32_t out_c,
                                    int32_t bits, const int8_t *table, const mcu_requant_params *r, int8_t *y) {
    const int32_t words = depth / mcu_wb_per_word(bits), row = mcu_wb_row_bytes(depth, bits);
    const int32_t step = (8 / bits) * MCU_4PX_GROUP; /* column values per weight word */
    int32_t o, g;
    for (o = 0; o < out_c; ++o) {
        const uint8_t *w = weights + o * row;
        const mcu_col_t *col = column;
        const int32_t start = mcu_requant_start(r, o);
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        MCU_OPAQUE(col); /* a register base: LDRD reaches only +-1020 bytes from it */
        for (g = 0; g + MCU_4PX_WB_UNROLL <= words; g += MCU_4PX_WB_UNROLL) {
            int32_t u;
            MCU_UNROLL
            for (u = 0; u < MCU_4PX_WB_UNROLL; ++u, w += 4, col += step) MCU_DOT_4PX_WB_STEP(col, w, bits, table);
        }
        MCU_UNROLL
        for (; g < words; ++g, w += 4, col += step) MCU_DOT_4PX_WB_STEP(col, w, bits, table);
        y[o] = mcu_requant_sum(r, start + (s0 >> mcu_wb_shift(bits, table)), o);
        y[out_c + o] = mcu_requant_sum(r, start + (s1 >> mcu_wb_shift(bits, table)), o);
        y[2 * out_c + o] = mcu_requant_sum(r, start + (s2 >> mcu_wb_shift(bits, table)), o);
        y[3 * out_c + o] = mcu_requant_sum(r, start + (s3 >> mcu_wb_shift(bits, table)), o);
    }
}

#else /* portable: every weight decoded where it is read; a column holds the pixels' int8 values */

MCU_SPECIALIZE void mcu_dot_2x2_wb(const int8_t *a0, const int8_t *a1, const mcu_col_t *column, int32_t second,
                                   const uint8_t *b0, const uint8_t *b1, int32_t n, int32_t bits, const int8_t *table,
                                   int32_t sums[4]) {
    if (column) {
        a0 = column;
        a1 = column + second;
    }
    mcu_dot_2x2_wb_rest(a0, a1, b0, b1, 0, n, bits, table, 0, 0, 0, 0, sums);
}

#endif /* MCU_GEMM_DSP */

/* y0[o] = requant(x0 . w_o) for every output channel o, and y1[o] = requant(x1 . w_o) unless y1 is NULL (then
 * pass x1 = x0), for wb weight rows; the pixels as int8 rows x0, x1, or (`column` not NULL) the two pixels of
 * a column made by mcu_pack_s8, the second at column + mcu_col_stride(depth), depth then a multiple of
 * 32 / bits. */
MCU_SPECIALIZE void mcu_gemm_wb(const int8_t *x0, const int8_t *x1, const mcu_col_t *column, const uint8_t *weights,
                                int32_t depth, int32_t out_c, int32_t bits, const int8_t *table,
                                const mcu_requant_params *r, int8_t *y0, int8_t *y1) {
    const int32_t row = mcu_wb_row_bytes(depth, bits);
    int32_t o;
    int32_t sums[4];
    for (o = 0; o < out_c; o += 2) {
        const int32_t pair = o + 1 < out_c; /* else the last channel alone: its weight row twice */
        const uint8_t *w = weights + o * row;
        mcu_dot_2x2_wb(x0, x1, column, mcu_col_stride(depth), w, pair ? w + row : w, depth, bits, table, sums);
        mcu_gemm_store(r, sums, o, pair, y0, y1);
    }
}

#endif /* MCU_GEMM_S4_H */
