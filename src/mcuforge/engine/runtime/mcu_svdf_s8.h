/* mcuforge runtime: SVDF, int8 input and output, int8 or int16 state (TFLite Micro's integer SVDFs).
 *
 * Each of the F = units * rank filters keeps the last M feature values in the state, a row of M
 * values per filter and batch. One step: every row moves one place towards its start (the oldest value
 * drops out), the newest value is the filter's feature dot product, requantized to the state's scale
 * and clamped to the state type's range before its zero point is added (the sum wrapped, as TFLM's
 * store does); the time filter weights each row; the rank filters of a unit are summed with its bias
 * and requantized to the output. The state is the caller's: it lives outside the arena and persists. */
#ifndef MCU_SVDF_S8_H
#define MCU_SVDF_S8_H

#include "mcu_common.h"

typedef struct {
    int32_t batches, inputs, filters, rank, memory;
    int32_t input_zero_point, state_zero_point, output_zero_point;
    int32_t feature_multiplier, feature_shift; /* input * weights_feature -> state */
    int32_t output_multiplier, output_shift;   /* state * weights_time -> output */
} mcu_svdf_params;

/* One definition for both state types (int8 state and time weights: mcu_svdf_s8; int16: mcu_svdf_s8_s16). */
#define MCU_SVDF_DEFINE(name, state_t, lo, hi, span)                                                    \
    MCU_INLINE void name(const mcu_svdf_params *p, const int8_t *input, const int8_t *weights_feature,      \
                         const state_t *weights_time, const int32_t *bias, state_t *state, int8_t *output) { \
        const int32_t units = p->filters / p->rank;                                                     \
        int32_t b, f, i, m, u, r;                                                                       \
        for (b = 0; b < p->batches; ++b) {                                                              \
            const int8_t *x = input + b * p->inputs;                                                    \
            state_t *rows = state + b * p->filters * p->memory;                                         \
            for (f = 0; f < p->filters; ++f) {                                                          \
                state_t *row = rows + f * p->memory;                                                    \
                const int8_t *w = weights_feature + f * p->inputs;                                      \
                int32_t acc = 0, v;                                                                     \
                for (m = 0; m + 1 < p->memory; ++m) row[m] = row[m + 1];                                \
                for (i = 0; i < p->inputs; ++i) acc += w[i] * (x[i] - p->input_zero_point);             \
                v = mcu_clamp_i32(mcu_requantize_wrap(acc, p->feature_multiplier, p->feature_shift), lo, hi) \
                    + p->state_zero_point;                                                              \
                row[p->memory - 1] = (state_t)(((v - (lo)) & ((span) - 1)) + (lo)); /* wraps, as TFLM */ \
            }                                                                                           \
            for (u = 0; u < units; ++u) {                                                               \
                int32_t acc = bias ? bias[u] : 0;                                                       \
                for (r = 0; r < p->rank; ++r) {                                                         \
                    const int32_t filter = u * p->rank + r;                                             \
                    const state_t *row = rows + filter * p->memory;                                     \
                    const state_t *w = weights_time + filter * p->memory;                               \
                    for (m = 0; m < p->memory; ++m) acc += w[m] * (row[m] - p->state_zero_point);       \
                }                                                                                       \
                acc = mcu_requantize_wrap(acc, p->output_multiplier, p->output_shift) + p->output_zero_point; \
                output[b * units + u] = (int8_t)mcu_clamp_i32(acc, -128, 127);                          \
            }                                                                                           \
        }                                                                                               \
    }

MCU_SVDF_DEFINE(mcu_svdf_s8, int8_t, -128, 127, 256)
MCU_SVDF_DEFINE(mcu_svdf_s8_s16, int16_t, -32768, 32767, 65536)

#endif /* MCU_SVDF_S8_H */
