/* mcuforge runtime: the inner loops for sparse weights (MCU_W_SPARSE, mcu_weights.h), which skip the zeros,
 * of the pointwise and im2col convolutions and the fully-connected layer (mcu_conv_s8_1x1.h,
 * mcu_conv_s8_im2col.h, mcu_fc_s8_fast.h). A filter row is walked through its bitmap words: each set bit
 * (CTZ, then cleared) is one nonzero weight, the nonzero values read in order; the rows are walked in order,
 * so each starts where the one before ended, with no rank to compute. Four pixels at a time on Arm cores
 * with the DSP extension: their int16 values side by side in a column (value k of pixel p at 4 * k + p), a
 * nonzero weight costs one 64-bit load and four 16 x 16 multiply-accumulates for the four outputs, and its
 * place in the row; else one pixel at a time from its int8 values. The biases have the input offset folded
 * in. Same products, same bits as the dense kernels. */
#ifndef MCU_SPARSE_S8_H
#define MCU_SPARSE_S8_H

#include "mcu_gemm_s8.h"
#include "mcu_weights.h"

/* The index of the lowest set bit of x (x != 0): RBIT and CLZ on Arm. */
MCU_SPECIALIZE int32_t mcu_ctz32(uint32_t x) {
#if defined(__GNUC__)
    return __builtin_ctz(x);
#else
    int32_t n = 0;
    while (!(x & 1u)) {
        x >>= 1;
        ++n;
    }
    return n;
#endif
}

/* For each nonzero weight among values [start, start + n) of `w` (a row), in order: `k`, its place in the
 * row, and `value`, then the statements that follow (variadic, so that they may hold commas). `next` (int8
 * values: a pointer) or `nibble` (int4 values: a count): where the row's first nonzero value is on entry
 * (w->table, 0 for the first row), the next row's on exit. */
#define MCU_SPARSE_ROW(w, next, nibble, start, n, k, value, ...)                                   \
    do {                                                                                         \
        const uint32_t *bitmap_ = (const uint32_t *)(w)->data;                                   \
        int32_t word_;                                                                           \
        for (word_ = (start) >> 5; word_ < ((start) + (n) + 31) >> 5; ++word_) {                 \
            const int32_t at_ = word_ * 32 - (start); /* the place of the word's bit 0 */         \
            uint32_t bits_ = bitmap_[word_];                                                     \
            if (at_ < 0) bits_ &= ~0u << -at_;                                                   \
            if (at_ + 32 > (n)) bits_ &= (1u << ((n) - at_)) - 1u;                               \
            while (bits_) {                                                                      \
                const int32_t k = at_ + mcu_ctz32(bits_);                                        \
                const int32_t value = (w)->format == MCU_W_SPARSE_INT4                           \
                                          ? mcu_nibble((const uint8_t *)(w)->table, (nibble)++)  \
                                          : *(next)++;                                           \
                bits_ &= bits_ - 1u;                                                             \
                __VA_ARGS__;                                                                     \
            }                                                                                    \
        }                                                                                        \
    } while (0)

/* Every output channel of one pixel x. */
MCU_SPECIALIZE void mcu_sparse_pixel(const mcu_weights *w, const int8_t *x, int32_t depth, int32_t out_c,
                                     const mcu_requant_params *r, int8_t *y) {
    const int8_t *next = w->table;
    int32_t nibble = 0;
    int32_t o;
    for (o = 0; o < out_c; ++o) {
        int32_t acc = 0;
        MCU_SPARSE_ROW(w, next, nibble, o * depth, depth, k, value, acc += x[k] * value);
        y[o] = mcu_requant_s8(r, acc, o);
    }
}

#if MCU_GEMM_DSP
/* Pixel p's depth int8 values into the side-by-side column, doubled when the layer sums doubled products. */
MCU_SPECIALIZE void mcu_pack_side_by_side(const int8_t *x, int32_t depth, int32_t p, const mcu_requant_params *r,
                                          mcu_col_t *column) {
    const int32_t scale = 1 + mcu_requant_twice(r);
    int32_t k;
    for (k = 0; k < depth; ++k) column[4 * k + p] = (mcu_col_t)(scale * x[k]);
}

/* The four pixels of the side-by-side column against every filter: y + p * out_c + o gets pixel p's
 * output channel o. */
MCU_SPECIALIZE void mcu_sparse_4px(const mcu_weights *w, const mcu_col_t *column, int32_t depth, int32_t out_c,
                                   const mcu_requant_params *r, int8_t *y) {
    const int8_t *next = w->table;
    int32_t nibble = 0;
    int32_t o;
    for (o = 0; o < out_c; ++o) {
        const int32_t start = mcu_requant_start(r, o);
        int32_t s0 = start, s1 = start, s2 = start, s3 = start;
        MCU_SPARSE_ROW(w, next, nibble, o * depth, depth, k, value, {
            int16x2_t x01, x23;
            mcu_load_lanes(column + 4 * k, &x01, &x23);
            s0 = __smlabb(x01, value, s0);
            s1 = __smlatb(x01, value, s1);
            s2 = __smlabb(x23, value, s2);
            s3 = __smlatb(x23, value, s3);
        });
        y[o] = mcu_requant_sum(r, s0, o);
        y[out_c + o] = mcu_requant_sum(r, s1, o);
        y[2 * out_c + o] = mcu_requant_sum(r, s2, o);
        y[3 * out_c + o] = mcu_requant_sum(r, s3, o);
    }
}
#endif

#endif /* MCU_SPARSE_S8_H */
