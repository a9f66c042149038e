/* mcuforge runtime: int8 fully connected layer (FULLY_CONNECTED) as an int8 GEMM, two batch rows at a
 * time against every weight row (mcu_gemm_s8.h), the input offset folded into the bias at compile time.
 * Symmetric weights only (weights zero point 0); per-tensor or per-output-unit requantization.
 * Same results as mcu_fc_s8 / mcu_fc_s8_per_channel (mcu_fc_s8.h). */
#ifndef MCU_FC_S8_FAST_H
#define MCU_FC_S8_FAST_H

#include "mcu_gemm_s8.h"

typedef struct {
    int32_t batches, in_features, out_features;
} mcu_fc_shape;

MCU_SPECIALIZE void mcu_fc_s8_gemm(const mcu_fc_shape *s, const mcu_requant_params *r, const int8_t *input,
                               const int8_t *weights, int8_t *output) {
    int32_t b;
    for (b = 0; b < s->batches; b += 2) {
        const int32_t pair = b + 1 < s->batches;
        const int8_t *x0 = input + b * s->in_features;
        int8_t *y0 = output + b * s->out_features;
        mcu_gemm_s8_2rows(x0, pair ? x0 + s->in_features : x0, weights, s->in_features, s->out_features, r, y0,
                          pair ? y0 + s->out_features : (int8_t *)0);
    }
}

#endif /* MCU_FC_S8_FAST_H */
