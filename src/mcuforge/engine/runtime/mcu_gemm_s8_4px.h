/* mcuforge runtime: four pixels at a time against one filter, on Arm cores with the DSP extension; the
 * inner loop of mcu_conv_s8_1x1 when the depth is a multiple of 4 and four pixels' columns fit.
 *
 * mcu_gemm_s8.h blocks two pixels against two filters, which unpacks every weight word (SXTB16) once per
 * pair of pixels. Here a weight word is unpacked once per four pixels, and the four pixels' int16 values
 * are interleaved by groups of four (group g of pixel p at g * 16 + p * 4 values, each group as (x0, x2),
 * (x1, x3)), so one pointer walks all four columns with literal offsets: per four depth values one LDR and
 * two SXTB16 for the weights, four LDRD and eight SMLAD. The depth loop runs MCU_4PX_UNROLL groups per
 * iteration where speed is optimized, the column's pointer in a register so that every load of it is an
 * LDRD with a small offset (measured on MLPerf VWW, Cortex-M7: 8 % fewer instructions for the whole model
 * than two groups per iteration). Same products, same bits as every other path. */
#ifndef MCU_GEMM_S8_4PX_H
#define MCU_GEMM_S8_4PX_H

#include "mcu_gemm_s8.h"

#if MCU_GEMM_DSP

#define MCU_4PX_GROUP 16 /* values of one depth group of four pixels */
#ifndef MCU_4PX_UNROLL
#define MCU_4PX_UNROLL 8 /* depth groups per iteration of the inner loop */
#endif

/* Four int8 values (one word) as one group of a pixel in the interleaved column, at dst: (x0, x2), (x1, x3),
 * doubled when the layer sums doubled products (mcu_requant_twice). */
MCU_SPECIALIZE void mcu_pack_group_4px(uint32_t v, const mcu_requant_params *r, mcu_col_t *dst) {
    int16x2_t even = __sxtb16(v), odd = mcu_sxtb16_odd(v);
    if (mcu_requant_twice(r)) {
        even = __sadd16(even, even);
        odd = __sadd16(odd, odd);
    }
    memcpy(dst, &even, sizeof even);
    memcpy(dst + 2, &odd, sizeof odd);
}

/* Pixel p's `depth` int8 values (depth % 4 == 0) into the interleaved column, doubled when the layer sums
 * doubled products (mcu_requant_twice). */
MCU_SPECIALIZE void mcu_pack_4px(const int8_t *x, int32_t depth, int32_t p, const mcu_requant_params *r,
                                 mcu_col_t *column) {
    int32_t k;
    mcu_col_t *dst = column + 4 * p;
    for (k = 0; k < depth; k += 4, dst += MCU_4PX_GROUP) mcu_pack_group_4px(mcu_load_u32(x + k), r, dst);
}

/* One depth group of the four pixels at col against four weights as lane pairs (w0, w2), (w1, w3): into
 * the sums s0 .. s3 of the enclosing function. */
#define MCU_SMLAD_4PX(col, w_even, w_odd)                                                            \
    do {                                                                                             \
        int16x2_t x_even, x_odd;                                                                     \
        mcu_load_lanes((col), &x_even, &x_odd);                                                      \
        s0 = __smlad(x_even, w_even, __smlad(x_odd, w_odd, s0));                                     \
        mcu_load_lanes((col) + 4, &x_even, &x_odd);                                                  \
        s1 = __smlad(x_even, w_even, __smlad(x_odd, w_odd, s1));                                     \
        mcu_load_lanes((col) + 8, &x_even, &x_odd);                                                  \
        s2 = __smlad(x_even, w_even, __smlad(x_odd, w_odd, s2));                                     \
        mcu_load_lanes((col) + 12, &x_even, &x_odd);                                                 \
        s3 = __smlad(x_even, w_even, __smlad(x_odd, w_odd, s3));                                     \
    } while (0)

/* One depth group: the filter's four weights against the four pixels. */
#define MCU_DOT_4PX_STEP(col, w)                                                                     \
    do {                                                                                             \
        const uint32_t w4 = mcu_load_u32(w);                                                         \
        const int16x2_t w_even = __sxtb16(w4), w_odd = mcu_sxtb16_odd(w4);                           \
        MCU_SMLAD_4PX(col, w_even, w_odd);                                                           \
    } while (0)

/* The four pixels' outputs of every filter: y + p * out_c + o gets pixel p's output channel o. */
MCU_SPECIALIZE void mcu_gemm_4px(const mcu_col_t *column, const int8_t *weights, int32_t depth, int32_t out_c,
                                 const mcu_requant_params *r, int8_t *y) {
    const int32_t groups = depth / 4;
    int32_t o, g;
    for (o = 0; o < out_c; ++o) {
        const int8_t *w = weights + o * depth;
        const mcu_col_t *col = column;
        const int32_t start = mcu_requant_start(r, o);
        int32_t s0 = start, s1 = start, s2 = start, s3 = start;
        MCU_OPAQUE(col); /* a register base: LDRD reaches only +-1020 bytes from it */
        for (g = 0; g + MCU_4PX_UNROLL <= groups; g += MCU_4PX_UNROLL) {
            int32_t u;
            MCU_UNROLL
            for (u = 0; u < MCU_4PX_UNROLL; ++u, w += 4, col += MCU_4PX_GROUP) MCU_DOT_4PX_STEP(col, w);
        }
        MCU_UNROLL
        for (; g < groups; ++g, w += 4, col += MCU_4PX_GROUP) MCU_DOT_4PX_STEP(col, w);
        y[o] = mcu_requant_sum(r, s0, o);
        y[out_c + o] = mcu_requant_sum(r, s1, o);
        y[2 * out_c + o] = mcu_requant_sum(r, s2, o);
        y[3 * out_c + o] = mcu_requant_sum(r, s3, o);
    }
}

#endif /* MCU_GEMM_DSP */

#endif /* MCU_GEMM_S8_4PX_H */
