/* mcuforge runtime: int8 dot products blocked 2 x 2 and fused requantization, the inner loops of the fast
 * convolution and fully-connected kernels (mcu_conv_s8_1x1.h, mcu_conv_s8_im2col.h, mcu_fc_s8_fast.h).
 *
 * Two activation rows against two weight rows give four sums of raw int8 products; the kernels fold the
 * input offset into the bias at compile time: sum_k (x_k + off) * w_k = sum_k x_k * w_k + off * sum_k w_k,
 * exact in int32. Activation rows come in two forms:
 * - int8 rows straight from the input (mcu_dot_s8_2x2);
 * - a column (mcu_col_t, made by mcu_pack_s8) of two pixels' windows, gathered once and then read against
 *   every filter: int16 values on Arm cores with the DSP extension (mcu_dot_s16_2x2), which saves
 *   unpacking the activations again for each filter; int8 values elsewhere.
 *
 * Portable path: the compiler vectorizes the loops into 16-bit multiply-adds (x86 pmaddwd); int8 rows are
 * read two bytes at a time as one 16-bit word split into its two sign-extended bytes (a and b are split
 * alike and the products summed, so the byte order does not matter).
 * Arm cores with the DSP extension (__ARM_FEATURE_DSP): SXTB16 unpacks the even and odd bytes of a word
 * into two 16-bit lanes and SMLAD multiplies two lane pairs and adds both products to an accumulator.
 * A column then holds each group of four values as (x0, x2), (x1, x3), the lanes SXTB16 gives the weights.
 * Every path adds the same products, so every path gives the same bits. */
#ifndef MCU_GEMM_S8_H
#define MCU_GEMM_S8_H

#include "mcu_specialize.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define MCU_GEMM_DSP 1
#else
#define MCU_GEMM_DSP 0
#endif

/* Requantization of a layer's accumulators. `channel` holds, per output channel, the bias (input offset
 * folded in) and, when `stride` is 4, that channel's multiplier, shift and rounding constant: four int32
 * values per channel, so one base register reaches them all. With stride 1 it holds only the biases and
 * multiplier_all, shift_all, round_all apply to every channel. `mode` MCU_REQUANT_FOLDED selects
 * mcu_requantize_folded, which almost every layer can use: then the shift is right - 1, the rounding
 * constant has the output offset folded in, and output_offset is 0; MCU_REQUANT_DOUBLED selects
 * mcu_requantize_doubled, for layers whose activation clamp cuts every output below the output zero point
 * (fused ReLU, ReLU6): then the bias column holds twice the bias, the shift is right, and the rounding
 * constant is 2^(right-1) + output_offset * 2^right; MCU_REQUANT_GENERAL is TFLM's requantization (round
 * unused). */
enum { MCU_REQUANT_GENERAL = 0, MCU_REQUANT_FOLDED = 1, MCU_REQUANT_DOUBLED = 2 };

typedef struct {
    const int32_t *channel;
    int32_t stride;
    int32_t multiplier_all, shift_all, round_all;
    int32_t mode; /* MCU_REQUANT_GENERAL, _FOLDED or _DOUBLED */
    int32_t output_offset;
    int32_t act_min, act_max;
} mcu_requant_params;

/* mcu_requantize(x, multiplier, -right) + output_offset in one rounding step, for multipliers in
 * (2^30, 2^31) or 0 and right in [2, 23]: the same bits. TFLM rounds twice: h = (x * m + 2^30) >> 31 (its
 * nudged, truncated division by 2^31 equals this floor for either sign), then h / 2^right to nearest, ties
 * away from zero: (h + 2^(right-1) - [h < 0]) >> right. Adding the offset times 2^right inside the second
 * floor changes nothing, and floors of integer quotients nest into one:
 *   (x * m + 2^30 + (2^(right-1) + offset * 2^right - [h < 0]) * 2^31) >> (31 + right),
 * where h < 0 exactly when x < 0 since m > 2^30. As a 64-bit addend the constant part is
 * round_hi * 2^32 + 2^30 with round_hi = 2^(right-2) + offset * 2^(right-1) (the codegen computes it), and
 * -[x < 0] * 2^31 sets the top bit of the low word and borrows one from the high word: one SMLAL, then the
 * high word shifted right by shift_hi = right - 1. */
MCU_SPECIALIZE int32_t mcu_requantize_folded(int32_t x, int32_t multiplier, int32_t round_hi, int32_t shift_hi) {
    const uint32_t low = 0x40000000u | ((uint32_t)x & 0x80000000u);
    const uint32_t high = (uint32_t)(round_hi + (x >> 31));
    const int64_t sum = (int64_t)x * multiplier + (int64_t)(((uint64_t)high << 32) | low);
    return (int32_t)(sum >> 32) >> shift_hi;
}

/* (acc * 2^32 + a * b + 2^31) >> 32: one SMMLAR on Arm cores with the DSP extension. */
MCU_SPECIALIZE int32_t mcu_smmlar(int32_t a, int32_t b, int32_t acc) {
#if MCU_GEMM_DSP && defined(__GNUC__)
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return (int32_t)(((int64_t)acc * 4294967296LL + (int64_t)a * b + 2147483648LL) >> 32);
#endif
}

/* mcu_requantize(x, multiplier, -right) + output_offset from x2 = 2x, for layers whose activation clamp
 * cuts every output below output_offset, right in [0, 23]: one SMMLAR and a shift. TFLM's first rounding,
 * h = (x * m + 2^30) >> 31, is (x2 * m + 2^31) >> 32, and SMMLAR adds round * 2^32 before the shift, so
 * the result is (h + round) >> right with round = 2^(right-1) + output_offset * 2^right: h / 2^right
 * rounded half up, plus the offset. TFLM rounds ties away from zero instead, which differs only for
 * negative ties h = -(2k + 1) * 2^(right-1), where both results are at most output_offset - 1 + 1 and the
 * clamp maps both to act_min >= output_offset. The codegen checks that 2x fits in int32. */
MCU_SPECIALIZE int32_t mcu_requantize_doubled(int32_t x2, int32_t multiplier, int32_t round, int32_t shift) {
    return mcu_smmlar(x2, multiplier, round) >> shift;
}

/* Clamp to [lo, hi]; with literal bounds -128, 127 on Arm cores with the DSP extension one SSAT. */
MCU_SPECIALIZE int32_t mcu_clamp_s8(int32_t x, int32_t lo, int32_t hi) {
#if MCU_GEMM_DSP
    if (lo == -128 && hi == 127) return __ssat(x, 8);
#endif
    return mcu_clamp_i32(x, lo, hi);
}

/* Output value of `channel` (folded = 2) for x2: twice the accumulator with its bias. */
MCU_SPECIALIZE int8_t mcu_requant_doubled_s8(const mcu_requant_params *r, int32_t x2, int32_t channel) {
    const int32_t *c = r->channel + channel * r->stride;
    const int32_t y = mcu_requantize_doubled(x2, r->stride == 4 ? c[1] : r->multiplier_all,
                                             r->stride == 4 ? c[3] : r->round_all,
                                             r->stride == 4 ? c[2] : r->shift_all);
    return (int8_t)mcu_clamp_s8(y, r->act_min, r->act_max);
}

/* Output value of `channel` for the raw accumulator `acc` (bias not yet added). */
MCU_SPECIALIZE int8_t mcu_requant_s8(const mcu_requant_params *r, int32_t acc, int32_t channel) {
    const int32_t *c = r->channel + channel * r->stride;
    const int32_t multiplier = r->stride == 4 ? c[1] : r->multiplier_all;
    const int32_t shift = r->stride == 4 ? c[2] : r->shift_all;
    if (r->mode == MCU_REQUANT_DOUBLED) return mcu_requant_doubled_s8(r, 2 * acc + c[0], channel); /* c[0]: 2 bias */
    acc += c[0];
    if (r->mode == MCU_REQUANT_FOLDED) {
        acc = mcu_requantize_folded(acc, multiplier, r->stride == 4 ? c[3] : r->round_all, shift);
    } else {
        acc = mcu_requantize(acc, multiplier, shift) + r->output_offset;
    }
    return (int8_t)mcu_clamp_s8(acc, r->act_min, r->act_max);
}

/* Kernels that widen one operand anyway (int8 to int16) widen it to twice its value when the layer takes
 * mcu_requantize_doubled (mcu_requant_twice, a literal once the kernel is specialized): each sum starts at
 * mcu_requant_start (twice the bias then, else 0) and mcu_requant_sum finishes it either way, so the
 * doubled form costs no instruction beyond the SMMLAR. */
MCU_SPECIALIZE int32_t mcu_requant_twice(const mcu_requant_params *r) { return r->mode == MCU_REQUANT_DOUBLED; }

MCU_SPECIALIZE int32_t mcu_requant_start(const mcu_requant_params *r, int32_t channel) {
    return mcu_requant_twice(r) ? r->channel[channel * r->stride] : 0;
}

/* The output of `channel` for a sum started at mcu_requant_start: doubled or plain, as the layer takes it. */
MCU_SPECIALIZE int8_t mcu_requant_sum(const mcu_requant_params *r, int32_t sum, int32_t channel) {
    return mcu_requant_twice(r) ? mcu_requant_doubled_s8(r, sum, channel) : mcu_requant_s8(r, sum, channel);
}

#if MCU_GEMM_DSP

MCU_SPECIALIZE uint32_t mcu_load_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The odd bytes of v as two 16-bit lanes: SXTB16 with its built-in rotation where the compiler has asm. */
MCU_SPECIALIZE int16x2_t mcu_sxtb16_odd(uint32_t v) {
#if defined(__GNUC__)
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
#else
    return __sxtb16((v >> 8) | (v << 24));
#endif
}

MCU_SPECIALIZE void mcu_dot_s8_2x2(const int8_t *a0, const int8_t *a1, const int8_t *b0, const int8_t *b1,
                                   int32_t n, int32_t sums[4]) {
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
    int32_t k;
    for (k = 0; k + 4 <= n; k += 4) {
        const uint32_t x0 = mcu_load_u32(a0 + k), x1 = mcu_load_u32(a1 + k);
        const uint32_t w0 = mcu_load_u32(b0 + k), w1 = mcu_load_u32(b1 + k);
        const int16x2_t x0_even = __sxtb16(x0), x0_odd = mcu_sxtb16_odd(x0);
        const int16x2_t x1_even = __sxtb16(x1), x1_odd = mcu_sxtb16_odd(x1);
        const int16x2_t w0_even = __sxtb16(w0), w0_odd = mcu_sxtb16_odd(w0);
        const int16x2_t w1_even = __sxtb16(w1), w1_odd = mcu_sxtb16_odd(w1);
        s00 = __smlad(x0_even, w0_even, __smlad(x0_odd, w0_odd, s00));
        s01 = __smlad(x0_even, w1_even, __smlad(x0_odd, w1_odd, s01));
        s10 = __smlad(x1_even, w0_even, __smlad(x1_odd, w0_odd, s10));
        s11 = __smlad(x1_even, w1_even, __smlad(x1_odd, w1_odd, s11));
    }
    for (; k < n; ++k) {
        s00 += a0[k] * b0[k];
        s01 += a0[k] * b1[k];
        s10 += a1[k] * b0[k];
        s11 += a1[k] * b1[k];
    }
    sums[0] = s00;
    sums[1] = s01;
    sums[2] = s10;
    sums[3] = s11;
}

/* Columns hold int16 values: SMLAD reads two at a time, unpacked once per pair of pixels. */
typedef int16_t mcu_col_t;

/* n int8 values as a column: groups of four as (x0, x2), (x1, x3), the rest one by one. */
MCU_SPECIALIZE void mcu_pack_s8(const int8_t *x, int32_t n, mcu_col_t *column) {
    int32_t k;
    for (k = 0; k + 4 <= n; k += 4) {
        const uint32_t v = mcu_load_u32(x + k);
        const int16x2_t even = __sxtb16(v), odd = mcu_sxtb16_odd(v);
        memcpy(column + k, &even, sizeof even);
        memcpy(column + k + 2, &odd, sizeof odd);
    }
    for (; k < n; ++k) column[k] = x[k];
}

/* Four values of a column as its two lane pairs. Columns are 4-byte aligned (mcu_tail_column), which lets
 * the two loads merge into one LDRD. */
MCU_SPECIALIZE void mcu_load_lanes(const mcu_col_t *p, int16x2_t *even, int16x2_t *odd) {
#if defined(__GNUC__)
    const mcu_col_t *q = (const mcu_col_t *)__builtin_assume_aligned(p, 4);
#else
    const mcu_col_t *q = p;
#endif
    memcpy(even, q, sizeof *even);
    memcpy(odd, q + 2, sizeof *odd);
}

/* Four values of two pixels, as lane pairs (x0, x2), (x1, x3), against four weights of two filters, the
 * bytes of w0 and w1: into the sums s00 .. s11 of the enclosing function. */
#define MCU_SMLAD_2X2(x0_even, x0_odd, x1_even, x1_odd, w0, w1)                                 \
    do {                                                                                       \
        const int16x2_t w0_even = __sxtb16(w0), w0_odd = mcu_sxtb16_odd(w0);                   \
        const int16x2_t w1_even = __sxtb16(w1), w1_odd = mcu_sxtb16_odd(w1);                   \
        s00 = __smlad(x0_even, w0_even, __smlad(x0_odd, w0_odd, s00));                         \
        s01 = __smlad(x0_even, w1_even, __smlad(x0_odd, w1_odd, s01));                         \
        s10 = __smlad(x1_even, w0_even, __smlad(x1_odd, w0_odd, s10));                         \
        s11 = __smlad(x1_even, w1_even, __smlad(x1_odd, w1_odd, s11));                         \
    } while (0)

/* Four values of two columns times four weights of two filters, into the four sums. */
#define MCU_DOT_S16_STEP(k)                                                                    \
    do {                                                                                       \
        int16x2_t x0_even, x0_odd, x1_even, x1_odd;                                            \
        const uint32_t w0 = mcu_load_u32(b0 + (k)), w1 = mcu_load_u32(b1 + (k));               \
        mcu_load_lanes(a0 + (k), &x0_even, &x0_odd);                                           \
        mcu_load_lanes(a1 + (k), &x1_even, &x1_odd);                                           \
        MCU_SMLAD_2X2(x0_even, x0_odd, x1_even, x1_odd, w0, w1);                               \
    } while (0)

/* a0, a1: columns, 4-byte aligned. */
MCU_SPECIALIZE void mcu_dot_s16_2x2(const mcu_col_t *a0, const mcu_col_t *a1, const int8_t *b0, const int8_t *b1,
                                    int32_t n, int32_t sums[4]) {
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
    int32_t k;
    for (k = 0; k + 8 <= n; k += 8) { /* two steps per iteration: half the loop overhead */
        MCU_DOT_S16_STEP(k);
        MCU_DOT_S16_STEP(k + 4);
    }
    if (k + 4 <= n) {
        MCU_DOT_S16_STEP(k);
        k += 4;
    }
    for (; k < n; ++k) {
        s00 += a0[k] * b0[k];
        s01 += a0[k] * b1[k];
        s10 += a1[k] * b0[k];
        s11 += a1[k] * b1[k];
    }
    sums[0] = s00;
    sums[1] = s01;
    sums[2] = s10;
    sums[3] = s11;
}

#else /* portable */

MCU_SPECIALIZE int16_t mcu_load_s16(const int8_t *p) {
    int16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The two bytes of a 16-bit word, sign-extended (arithmetic right shifts, as every C compiler does). */
MCU_SPECIALIZE int16_t mcu_low_s8(int16_t v) { return (int16_t)((int16_t)((uint16_t)v << 8) >> 8); }
MCU_SPECIALIZE int16_t mcu_high_s8(int16_t v) { return (int16_t)(v >> 8); }

MCU_SPECIALIZE void mcu_dot_s8_2x2(const int8_t *a0, const int8_t *a1, const int8_t *b0, const int8_t *b1,
                                   int32_t n, int32_t sums[4]) {
    /* products of the low bytes and of the high bytes in separate sums: each is a 16-bit dot product */
    int32_t l00 = 0, l01 = 0, l10 = 0, l11 = 0, h00 = 0, h01 = 0, h10 = 0, h11 = 0;
    const int32_t n_vectors = n - n % 16; /* a whole number of 16-byte vectors */
    int32_t k;
    for (k = 0; k < n_vectors; k += 2) {
        const int16_t x0 = mcu_load_s16(a0 + k), x1 = mcu_load_s16(a1 + k);
        const int16_t w0 = mcu_load_s16(b0 + k), w1 = mcu_load_s16(b1 + k);
        l00 += mcu_low_s8(x0) * mcu_low_s8(w0);
        l01 += mcu_low_s8(x0) * mcu_low_s8(w1);
        l10 += mcu_low_s8(x1) * mcu_low_s8(w0);
        l11 += mcu_low_s8(x1) * mcu_low_s8(w1);
        h00 += mcu_high_s8(x0) * mcu_high_s8(w0);
        h01 += mcu_high_s8(x0) * mcu_high_s8(w1);
        h10 += mcu_high_s8(x1) * mcu_high_s8(w0);
        h11 += mcu_high_s8(x1) * mcu_high_s8(w1);
    }
    for (; k < n; ++k) {
        l00 += a0[k] * b0[k];
        l01 += a0[k] * b1[k];
        l10 += a1[k] * b0[k];
        l11 += a1[k] * b1[k];
    }
    sums[0] = l00 + h00;
    sums[1] = l01 + h01;
    sums[2] = l10 + h10;
    sums[3] = l11 + h11;
}

/* The portable path keeps columns as int8: compilers unpack them in registers as cheaply as they would
 * read int16 values, so widening first would only add the copy. */
typedef int8_t mcu_col_t;

/* n int8 values as a column. */
MCU_SPECIALIZE void mcu_pack_s8(const int8_t *x, int32_t n, mcu_col_t *column) { memcpy(column, x, (size_t)n); }

#endif /* MCU_GEMM_DSP */

/* Stores the requantized sums of output channels o (and o + 1 when `pair`) for one or two rows. */
MCU_SPECIALIZE void mcu_gemm_store(const mcu_requant_params *r, const int32_t sums[4], int32_t o, int32_t pair,
                                   int8_t *y0, int8_t *y1) {
    y0[o] = mcu_requant_s8(r, sums[0], o);
    if (pair) y0[o + 1] = mcu_requant_s8(r, sums[1], o + 1);
    if (y1) {
        y1[o] = mcu_requant_s8(r, sums[2], o);
        if (pair) y1[o + 1] = mcu_requant_s8(r, sums[3], o + 1);
    }
}

/* y0[o] = requant(x0 . w_o) for every output channel o, and y1[o] = requant(x1 . w_o) unless y1 is NULL
 * (then pass x1 = x0). Weight row o is weights[o * depth ...]. */
MCU_SPECIALIZE void mcu_gemm_s8_2rows(const int8_t *x0, const int8_t *x1, const int8_t *weights, int32_t depth,
                                      int32_t out_c, const mcu_requant_params *r, int8_t *y0, int8_t *y1) {
    int32_t o;
    int32_t sums[4];
    for (o = 0; o + 1 < out_c; o += 2) {
        const int8_t *w = weights + o * depth;
        mcu_dot_s8_2x2(x0, x1, w, w + depth, depth, sums);
        mcu_gemm_store(r, sums, o, 1, y0, y1);
    }
    if (out_c % 2) { /* the last channel alone: its weight row twice */
        const int8_t *w = weights + o * depth;
        mcu_dot_s8_2x2(x0, x1, w, w, depth, sums);
        mcu_gemm_store(r, sums, o, 0, y0, y1);
    }
}

/* Where the second pixel's values start in a column: an even count keeps both 4-byte aligned. */
MCU_SPECIALIZE int32_t mcu_col_stride(int32_t depth) { return depth + depth % 2; }

/* The same for the two pixels of a column made by mcu_pack_s8 (the second at column + mcu_col_stride(depth);
 * when y1 is NULL its values are not used). */
MCU_SPECIALIZE void mcu_gemm_col_2rows(const mcu_col_t *column, const int8_t *weights, int32_t depth,
                                       int32_t out_c, const mcu_requant_params *r, int8_t *y0, int8_t *y1) {
#if MCU_GEMM_DSP
    int32_t o;
    int32_t sums[4];
    for (o = 0; o + 1 < out_c; o += 2) {
        const int8_t *w = weights + o * depth;
        mcu_dot_s16_2x2(column, column + mcu_col_stride(depth), w, w + depth, depth, sums);
        mcu_gemm_store(r, sums, o, 1, y0, y1);
    }
    if (out_c % 2) {
        const int8_t *w = weights + o * depth;
        mcu_dot_s16_2x2(column, column + mcu_col_stride(depth), w, w, depth, sums);
        mcu_gemm_store(r, sums, o, 0, y0, y1);
    }
#else
    mcu_gemm_s8_2rows(column, column + mcu_col_stride(depth), weights, depth, out_c, r, y0, y1);
#endif
}

#endif /* MCU_GEMM_S8_H */
