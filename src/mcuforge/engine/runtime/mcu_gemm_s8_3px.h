/* mcuforge runtime: three pixels at a time against two filters, on Arm cores with the DSP extension; the
 * inner loop of mcu_conv_s8_1x1 when the depth is a multiple of 4 and the pixels' columns fit.
 *
 * mcu_gemm_s8_4px.h unpacks a weight word (SXTB16) once per four pixels: per four depth values one LDR
 * and two SXTB16, four LDRD and eight SMLAD, 15 instructions for 16 products. Here each pair of values
 * loaded from the column serves two filters: per four depth values two LDR and four SXTB16 for the two
 * filters' weights, three LDRD and twelve SMLAD, 21 instructions for 24 products. The six sums, the four
 * unpacked weight words, one pair of values and the column and weight pointers are the fourteen registers
 * a Cortex-M has; that is why three pixels and not four. The column interleaves the three pixels' int16
 * values by groups of four (group g of pixel p at g * 12 + p * 4 values, each group as (x0, x2), (x1, x3)).
 * Same products, same bits as every other path. */
#ifndef MCU_GEMM_S8_3PX_H
#define MCU_GEMM_S8_3PX_H

#include "mcu_gemm_s8_4px.h"

#if MCU_GEMM_DSP

#define MCU_3PX_GROUP 12 /* values of one depth group of three pixels */
/* The least depth that takes this kernel: below, its loop over the depth unrolls whole and GCC then spills
 * sums to the stack (measured on Cortex-M7: MLPerf VWW's pointwise layers of depth 8 to 32 ran 10 to 22 %
 * slower than with mcu_gemm_4px, those of depth 64 to 256 7 to 15 % faster). */
#define MCU_3PX_MIN_DEPTH (8 * MCU_4PX_UNROLL)

/* Pixel p's `depth` int8 values (depth % 4 == 0) into the three-pixel column. */
MCU_SPECIALIZE void mcu_pack_3px(const int8_t *x, int32_t depth, int32_t p, const mcu_requant_params *r,
                                 mcu_col_t *column) {
    int32_t k;
    mcu_col_t *dst = column + 4 * p;
    for (k = 0; k < depth; k += 4, dst += MCU_3PX_GROUP) mcu_pack_group_4px(mcu_load_u32(x + k), r, dst);
}

/* One depth group: two filters' four weights (at w0, w1) against the three pixels. */
#define MCU_DOT_3PX_STEP(col, w0, w1)                                                                \
    do {                                                                                             \
        int16x2_t x_even, x_odd;                                                                     \
        const uint32_t a4 = mcu_load_u32(w0), b4 = mcu_load_u32(w1);                                 \
        const int16x2_t a_even = __sxtb16(a4), a_odd = mcu_sxtb16_odd(a4);                           \
        const int16x2_t b_even = __sxtb16(b4), b_odd = mcu_sxtb16_odd(b4);                           \
        mcu_load_lanes((col), &x_even, &x_odd);                                                      \
        a0 = __smlad(x_even, a_even, __smlad(x_odd, a_odd, a0));                                     \
        b0 = __smlad(x_even, b_even, __smlad(x_odd, b_odd, b0));                                     \
        mcu_load_lanes((col) + 4, &x_even, &x_odd);                                                  \
        a1 = __smlad(x_even, a_even, __smlad(x_odd, a_odd, a1));                                     \
        b1 = __smlad(x_even, b_even, __smlad(x_odd, b_odd, b1));                                     \
        mcu_load_lanes((col) + 8, &x_even, &x_odd);                                                  \
        a2 = __smlad(x_even, a_even, __smlad(x_odd, a_odd, a2));                                     \
        b2 = __smlad(x_even, b_even, __smlad(x_odd, b_odd, b2));                                     \
    } while (0)

/* Filters o and o + 1 (o alone when `pair` is 0: its weights then serve both and the second sums are
 * dropped) against the three pixels of `column`; y + p * out_c + o gets pixel p's output channel o. */
MCU_SPECIALIZE void mcu_gemm_3px_filters(const mcu_col_t *column, const int8_t *weights, int32_t depth,
                                         int32_t out_c, const mcu_requant_params *r, int32_t o, int32_t pair,
                                         int8_t *y) {
    const int32_t groups = depth / 4;
    const int8_t *w = weights + o * depth;
    const mcu_col_t *col = column;
    const int32_t start_a = mcu_requant_start(r, o), start_b = mcu_requant_start(r, o + pair);
    int32_t a0 = start_a, a1 = start_a, a2 = start_a, b0 = start_b, b1 = start_b, b2 = start_b;
    int32_t g;
    MCU_OPAQUE(col); /* register bases: LDR and LDRD at small literal offsets from them */
    MCU_OPAQUE(w);
    for (g = 0; g + MCU_4PX_UNROLL <= groups; g += MCU_4PX_UNROLL) {
        int32_t u;
        MCU_UNROLL
        for (u = 0; u < MCU_4PX_UNROLL; ++u, w += 4, col += MCU_3PX_GROUP) {
            MCU_DOT_3PX_STEP(col, w, w + pair * depth);
        }
    }
    MCU_UNROLL
    for (; g < groups; ++g, w += 4, col += MCU_3PX_GROUP) MCU_DOT_3PX_STEP(col, w, w + pair * depth);
    y[o] = mcu_requant_sum(r, a0, o);
    y[out_c + o] = mcu_requant_sum(r, a1, o);
    y[2 * out_c + o] = mcu_requant_sum(r, a2, o);
    if (pair) {
        y[o + 1] = mcu_requant_sum(r, b0, o + 1);
        y[out_c + o + 1] = mcu_requant_sum(r, b1, o + 1);
        y[2 * out_c + o + 1] = mcu_requant_sum(r, b2, o + 1);
    }
}

/* The three pixels' outputs of every filter, two filters at a time. */
MCU_SPECIALIZE void mcu_gemm_3px(const mcu_col_t *column, const int8_t *weights, int32_t depth, int32_t out_c,
                                 const mcu_requant_params *r, int8_t *y) {
    int32_t o;
    for (o = 0; o + 2 <= out_c; o += 2) mcu_gemm_3px_filters(column, weights, depth, out_c, r, o, 1, y);
    if (out_c % 2) mcu_gemm_3px_filters(column, weights, depth, out_c, r, out_c - 1, 0, y);
}

#endif /* MCU_GEMM_DSP */

#endif /* MCU_GEMM_S8_3PX_H */
