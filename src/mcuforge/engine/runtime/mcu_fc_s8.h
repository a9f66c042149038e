/* mcuforge runtime: int8 fully connected layer (FULLY_CONNECTED), TFLite Micro semantics.
 * Input [batches, in_features] int8 (any rank, flattened), weights [out_features, in_features] int8,
 * bias int32 [out_features] (or NULL).
 * mcu_fc_s8: per-tensor weights (one zero point, one multiplier and shift, passed as literals).
 * mcu_fc_s8_per_channel: symmetric per-output-unit weights, one multiplier and shift per unit.
 * mcu_fc_s8_rows: either, with weights in any format (mcu_weights.h), decoded as they are read. */
#ifndef MCU_FC_S8_H
#define MCU_FC_S8_H

#include "mcu_specialize.h"
#include "mcu_weights.h"

typedef struct {
    int32_t batches, in_features, out_features;
    int32_t input_offset;   /* minus the input zero point */
    int32_t weights_offset; /* minus the weights zero point */
    int32_t output_offset;  /* the output zero point */
    int32_t multiplier, shift; /* per-tensor requantization (unused by the per-channel variant) */
    int32_t act_min, act_max;
} mcu_fc_params;

/* Shared loop: multipliers[o] / shifts[o] when the arrays are given, else p->multiplier / p->shift. */
MCU_SPECIALIZE void mcu_fc_s8_rows(const mcu_fc_params *p, const int8_t *input, const mcu_weights *weights,
                               const int32_t *bias, const int32_t *multipliers, const int32_t *shifts,
                               int8_t *output) {
    int32_t b, o, i;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * p->in_features;
        for (o = 0; o < p->out_features; ++o) {
            const int32_t w = o * p->in_features;
            const int32_t multiplier = multipliers ? multipliers[o] : p->multiplier;
            const int32_t shift = shifts ? shifts[o] : p->shift;
            int32_t acc = 0;
            for (i = 0; i < p->in_features; ++i) {
                acc += (mcu_weight(weights, w + i) + p->weights_offset) * ((int32_t)in[i] + p->input_offset);
            }
            if (bias) acc += bias[o];
            acc = mcu_requantize(acc, multiplier, shift) + p->output_offset;
            output[b * p->out_features + o] = (int8_t)mcu_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
}

MCU_INLINE void mcu_fc_s8(const mcu_fc_params *p, const int8_t *input, const int8_t *weights,
                          const int32_t *bias, int8_t *output) {
    const mcu_weights w = {.data = weights, .format = MCU_W_INT8};
    mcu_fc_s8_rows(p, input, &w, bias, (const int32_t *)0, (const int32_t *)0, output);
}

MCU_INLINE void mcu_fc_s8_per_channel(const mcu_fc_params *p, const int8_t *input, const int8_t *weights,
                                      const int32_t *bias, const int32_t *multipliers, const int32_t *shifts,
                                      int8_t *output) {
    const mcu_weights w = {.data = weights, .format = MCU_W_INT8};
    mcu_fc_s8_rows(p, input, &w, bias, multipliers, shifts, output);
}

#endif /* MCU_FC_S8_H */
