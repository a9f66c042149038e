/* mcuforge runtime: int8 2-D pooling (AVERAGE_POOL_2D, MAX_POOL_2D), TFLite Micro semantics.
 * NHWC input and output. A window starts at (oy * stride_h - pad_top, ox * stride_w - pad_left) and is
 * clipped to the input. Average: sum of the raw values inside the input divided by their count, rounded
 * half away from zero. Max: the largest raw value (from -128). Then the fused activation's clamp.
 * No rescaling (pools keep their input's quantization). Output must not alias the input. */
#ifndef MCU_POOL_S8_H
#define MCU_POOL_S8_H

#include "mcu_gemm_s8.h"

typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;
    int32_t filter_h, filter_w, stride_h, stride_w, pad_top, pad_left;
    int32_t act_min, act_max;
} mcu_pool_params;

/* The clipped window [*start, *end) along one axis for output index o. */
MCU_INLINE void mcu_pool_window(int32_t o, int32_t stride, int32_t pad, int32_t filter, int32_t in_size,
                                int32_t *origin, int32_t *start, int32_t *end) {
    *origin = o * stride - pad;
    *start = mcu_max_i32(0, -*origin);
    *end = mcu_min_i32(filter, in_size - *origin);
}

MCU_INLINE void mcu_avgpool_s8(const mcu_pool_params *p, const int8_t *input, int8_t *output) {
    int32_t b, oy, ox, c, fy, fx;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            int32_t y0, fy0, fy1;
            mcu_pool_window(oy, p->stride_h, p->pad_top, p->filter_h, p->in_h, &y0, &fy0, &fy1);
            for (ox = 0; ox < p->out_w; ++ox) {
                int32_t x0, fx0, fx1, count;
                mcu_pool_window(ox, p->stride_w, p->pad_left, p->filter_w, p->in_w, &x0, &fx0, &fx1);
                count = (fy1 - fy0) * (fx1 - fx0);
                for (c = 0; c < p->channels; ++c) {
                    int32_t acc = 0;
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int32_t row = ((b * p->in_h + y0 + fy) * p->in_w + x0) * p->channels + c;
                        for (fx = fx0; fx < fx1; ++fx) {
                            acc += input[row + fx * p->channels];
                        }
                    }
                    if (count > 0) {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    *output++ = (int8_t)mcu_clamp_i32(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}

MCU_INLINE void mcu_maxpool_s8(const mcu_pool_params *p, const int8_t *input, int8_t *output) {
    int32_t b, oy, ox, c, fy, fx;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            int32_t y0, fy0, fy1;
            mcu_pool_window(oy, p->stride_h, p->pad_top, p->filter_h, p->in_h, &y0, &fy0, &fy1);
            for (ox = 0; ox < p->out_w; ++ox) {
                int32_t x0, fx0, fx1;
                mcu_pool_window(ox, p->stride_w, p->pad_left, p->filter_w, p->in_w, &x0, &fx0, &fx1);
                for (c = 0; c < p->channels; ++c) {
                    int32_t best = -128;
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int32_t row = ((b * p->in_h + y0 + fy) * p->in_w + x0) * p->channels + c;
                        for (fx = fx0; fx < fx1; ++fx) {
                            best = mcu_max_i32(best, input[row + fx * p->channels]);
                        }
                    }
                    *output++ = (int8_t)mcu_clamp_i32(best, p->act_min, p->act_max);
                }
            }
        }
    }
}

/* Fast paths: the same results, channels innermost. NHWC keeps a pixel's channels contiguous, so each
 * window tap adds (or compares) a whole block of up to MCU_POOL_BLOCK channels, a loop compilers
 * vectorize, instead of striding through the input once per channel. */
#ifndef MCU_POOL_BLOCK
#define MCU_POOL_BLOCK 16
#endif

#if MCU_GEMM_DSP
/* Sums of channels [c0, c0 + n) (n a multiple of 4) over a window of at most 255 values, which fit in 16
 * bits: four channels per word as two registers of 16-bit lanes (SXTB16 and SADD16, 1.25 instructions a
 * value). */
MCU_SPECIALIZE void mcu_avgpool_sums_dsp(const mcu_pool_params *p, const int8_t *input, int32_t b, int32_t y0,
                                         int32_t fy0, int32_t fy1, int32_t x0, int32_t fx0, int32_t fx1, int32_t c0,
                                         int32_t n, int32_t *sum) {
    int16x2_t even[MCU_POOL_BLOCK / 4], odd[MCU_POOL_BLOCK / 4];
    int32_t g, fy, fx;
    for (g = 0; g < n / 4; ++g) even[g] = odd[g] = 0;
    for (fy = fy0; fy < fy1; ++fy) {
        for (fx = fx0; fx < fx1; ++fx) {
            const int8_t *in = input + ((b * p->in_h + y0 + fy) * p->in_w + x0 + fx) * p->channels + c0;
            for (g = 0; g < n / 4; ++g) {
                const uint32_t v = mcu_load_u32(in + 4 * g);
                even[g] = __sadd16(even[g], __sxtb16(v));
                odd[g] = __sadd16(odd[g], mcu_sxtb16_odd(v));
            }
        }
    }
    for (g = 0; g < n / 4; ++g) {
        sum[4 * g] = (int16_t)even[g];
        sum[4 * g + 1] = (int16_t)odd[g];
        sum[4 * g + 2] = even[g] >> 16;
        sum[4 * g + 3] = odd[g] >> 16;
    }
}
#endif

/* Channels [c0, c0 + n) of one output pixel; `max`: maximum, else average. */
MCU_SPECIALIZE void mcu_pool_s8_block(const mcu_pool_params *p, const int8_t *input, int32_t b, int32_t y0,
                                      int32_t fy0, int32_t fy1, int32_t x0, int32_t fx0, int32_t fx1, int32_t c0,
                                      int32_t n, int32_t max, int8_t *out) {
    int32_t sum[MCU_POOL_BLOCK];
    int8_t best[MCU_POOL_BLOCK];
    int32_t c, fy, fx;
    const int32_t count = (fy1 - fy0) * (fx1 - fx0);
    for (c = 0; c < n; ++c) {
        sum[c] = 0;
        best[c] = -128;
    }
#if MCU_GEMM_DSP
    if (!max && n % 4 == 0 && p->filter_h * p->filter_w <= 255) {
        mcu_avgpool_sums_dsp(p, input, b, y0, fy0, fy1, x0, fx0, fx1, c0, n, sum);
        fy1 = fy0; /* summed */
    }
#endif
    for (fy = fy0; fy < fy1; ++fy) {
        for (fx = fx0; fx < fx1; ++fx) {
            const int8_t *in = input + ((b * p->in_h + y0 + fy) * p->in_w + x0 + fx) * p->channels + c0;
            if (max) {
                for (c = 0; c < n; ++c) best[c] = in[c] > best[c] ? in[c] : best[c];
            } else {
                for (c = 0; c < n; ++c) sum[c] += in[c];
            }
        }
    }
    for (c = 0; c < n; ++c) {
        int32_t v = max ? best[c] : sum[c];
        if (!max && count > 0) v = v > 0 ? (v + count / 2) / count : (v - count / 2) / count;
        out[c0 + c] = (int8_t)mcu_clamp_i32(v, p->act_min, p->act_max);
    }
}

MCU_SPECIALIZE void mcu_pool_s8_channels(const mcu_pool_params *p, const int8_t *input, int8_t *output,
                                         int32_t max) {
    const int32_t whole = p->channels - p->channels % MCU_POOL_BLOCK;
    int32_t b, oy, ox, c0;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            int32_t y0, fy0, fy1;
            mcu_pool_window(oy, p->stride_h, p->pad_top, p->filter_h, p->in_h, &y0, &fy0, &fy1);
            for (ox = 0; ox < p->out_w; ++ox) {
                int32_t x0, fx0, fx1;
                mcu_pool_window(ox, p->stride_w, p->pad_left, p->filter_w, p->in_w, &x0, &fx0, &fx1);
                for (c0 = 0; c0 < whole; c0 += MCU_POOL_BLOCK) {
                    mcu_pool_s8_block(p, input, b, y0, fy0, fy1, x0, fx0, fx1, c0, MCU_POOL_BLOCK, max, output);
                }
                if (whole < p->channels) {
                    mcu_pool_s8_block(p, input, b, y0, fy0, fy1, x0, fx0, fx1, whole, p->channels - whole, max,
                                      output);
                }
                output += p->channels;
            }
        }
    }
}

MCU_SPECIALIZE void mcu_avgpool_s8_channels(const mcu_pool_params *p, const int8_t *input, int8_t *output) {
    mcu_pool_s8_channels(p, input, output, 0);
}

MCU_SPECIALIZE void mcu_maxpool_s8_channels(const mcu_pool_params *p, const int8_t *input, int8_t *output) {
    mcu_pool_s8_channels(p, input, output, 1);
}

#endif /* MCU_POOL_S8_H */
