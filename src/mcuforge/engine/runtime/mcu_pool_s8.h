/* mcuforge runtime: int8 2-D pooling (AVERAGE_POOL_2D, MAX_POOL_2D), TFLite Micro semantics.
 * NHWC input and output. A window starts at (oy * stride_h - pad_top, ox * stride_w - pad_left) and is
 * clipped to the input. Average: sum of the raw values inside the input divided by their count, rounded
 * half away from zero. Max: the largest raw value (from -128). Then the fused activation's clamp.
 * No rescaling (pools keep their input's quantization). Output must not alias the input. */
#ifndef MCU_POOL_S8_H
#define MCU_POOL_S8_H

#include "mcu_common.h"

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

#endif /* MCU_POOL_S8_H */
