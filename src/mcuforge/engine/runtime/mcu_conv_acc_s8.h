/* mcuforge runtime: a pointwise convolution in two halves, as fused inverted-residual execution runs the
 * projection of a block: mcu_conv_1x1_acc_s8 adds the products of one slice of the input channels into
 * an int32 accumulator (one value per output pixel and channel), once per slice; mcu_acc_requantize_s8
 * then requantizes the finished sums into the int8 output, as the convolution's own kernel would.
 * Both run in place: the accumulator over the previous slice's, the int8 output over the accumulator
 * (byte i is written after value i, which ends at byte 4i + 3, was read). */
#ifndef MCU_CONV_ACC_S8_H
#define MCU_CONV_ACC_S8_H

#include "mcu_gemm_s8.h"

typedef struct {
    int32_t pixels;      /* output pixels (N * H * W) */
    int32_t in_c, out_c; /* channels of the slice, output channels */
} mcu_conv_acc_shape;

/* acc[o] = (first ? 0 : acc[o]) + fold[o] + sum. */
MCU_SPECIALIZE void mcu_conv_acc_add(int32_t *acc, int32_t o, const int32_t *fold, int32_t first, int32_t sum) {
    acc[o] = (first ? 0 : acc[o]) + fold[o] + sum;
}

/* acc[p][o] = (first ? 0 : acc[p][o]) + fold[o] + sum over c of in[p][c] * weights[o][c], where fold
 * holds the input offset times the filter's sum (and, for the first slice, the bias). Two pixels
 * against two filters at a time (mcu_dot_s8_2x2: SMLAD on cores with the DSP extension). */
MCU_SPECIALIZE void mcu_conv_1x1_acc_s8(const mcu_conv_acc_shape *s, const int8_t *in, const int8_t *weights,
                                        const int32_t *fold, int32_t first, int32_t *acc) {
    int32_t p, o;
    for (p = 0; p < s->pixels; p += 2) {
        const int32_t pair = p + 1 < s->pixels;
        const int8_t *x0 = in + p * s->in_c;
        const int8_t *x1 = pair ? x0 + s->in_c : x0;
        int32_t *a0 = acc + p * s->out_c;
        for (o = 0; o < s->out_c; o += 2) {
            const int32_t two = o + 1 < s->out_c;
            const int8_t *w0 = weights + o * s->in_c;
            int32_t sums[4];
            mcu_dot_s8_2x2(x0, x1, w0, two ? w0 + s->in_c : w0, s->in_c, sums);
            mcu_conv_acc_add(a0, o, fold, first, sums[0]);
            if (two) mcu_conv_acc_add(a0, o + 1, fold, first, sums[1]);
            if (pair) {
                mcu_conv_acc_add(a0 + s->out_c, o, fold, first, sums[2]);
                if (two) mcu_conv_acc_add(a0 + s->out_c, o + 1, fold, first, sums[3]);
            }
        }
    }
}

/* out[p][c] = clamp(requantize(acc[p][c], multiplier[c], shift[c]) + output_offset, act_min, act_max). */
MCU_SPECIALIZE void mcu_acc_requantize_s8(int32_t pixels, int32_t channels, const int32_t *acc,
                                          const int32_t *multiplier, const int32_t *shift, int32_t output_offset,
                                          int32_t act_min, int32_t act_max, int8_t *out) {
    int32_t p, c;
    for (p = 0; p < pixels; ++p) {
        for (c = 0; c < channels; ++c) {
            const int32_t value = acc[p * channels + c];
            const int32_t y = mcu_requantize(value, multiplier[c], shift[c]) + output_offset;
            out[p * channels + c] = (int8_t)mcu_clamp_i32(y, act_min, act_max);
        }
    }
}

/* The same with mcu_requantize_folded's constants (the output offset folded into round_hi), where every
 * channel qualifies for them: one 64-bit multiply-add per value. */
MCU_SPECIALIZE void mcu_acc_requantize_folded_s8(int32_t pixels, int32_t channels, const int32_t *acc,
                                                 const int32_t *multiplier, const int32_t *round_hi,
                                                 const int32_t *shift_hi, int32_t act_min, int32_t act_max,
                                                 int8_t *out) {
    int32_t p, c;
    for (p = 0; p < pixels; ++p) {
        for (c = 0; c < channels; ++c) {
            const int32_t value = acc[p * channels + c];
            const int32_t y = mcu_requantize_folded(value, multiplier[c], round_hi[c], shift_hi[c]);
            out[p * channels + c] = (int8_t)mcu_clamp_i32(y, act_min, act_max);
        }
    }
}

#endif /* MCU_CONV_ACC_S8_H */
