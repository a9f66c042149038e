/* mcuforge runtime: int8 fully connected layer (FULLY_CONNECTED) as an int8 GEMM, two batch rows at a
 * time against every weight row (mcu_gemm_s8.h), the input offset folded into the bias at compile time.
 * Symmetric weights only (weights zero point 0); per-tensor or per-output-unit requantization.
 * Same results as mcu_fc_s8 / mcu_fc_s8_per_channel (mcu_fc_s8.h). mcu_fc_s8_gemm_w4, _w2, _lut: the same
 * with int4 and ternary weights, or pow2 and codebook codes into a table, in the wb layout (mcu_gemm_s4.h),
 * decoded in registers. mcu_fc_s8_sparse: sparse weights
 * (mcu_sparse_s8.h), the zeros skipped. */
#ifndef MCU_FC_S8_FAST_H
#define MCU_FC_S8_FAST_H

#include "mcu_gemm_s4.h"
#include "mcu_sparse_s8.h"

typedef struct {
    int32_t batches, in_features, out_features;
} mcu_fc_shape;

/* Two batch rows at a time; `bits` (a literal): 4 or 2, the weights are in the wb layout (int4 or ternary
 * values, or with a `table` pow2 and codebook codes); 0: int8. */
MCU_SPECIALIZE void mcu_fc_s8_gemm_rows(const mcu_fc_shape *s, const mcu_requant_params *r, const int8_t *input,
                                        const void *weights, int32_t bits, const int8_t *table, int8_t *output) {
    int32_t b;
    for (b = 0; b < s->batches; b += 2) {
        const int32_t pair = b + 1 < s->batches;
        const int8_t *x0 = input + b * s->in_features;
        const int8_t *x1 = pair ? x0 + s->in_features : x0;
        int8_t *y0 = output + b * s->out_features;
        int8_t *y1 = pair ? y0 + s->out_features : (int8_t *)0;
        if (bits) {
            mcu_gemm_wb(x0, x1, (const mcu_col_t *)0, (const uint8_t *)weights, s->in_features, s->out_features,
                        bits, table, r, y0, y1);
        } else {
            mcu_gemm_s8_2rows(x0, x1, (const int8_t *)weights, s->in_features, s->out_features, r, y0, y1);
        }
    }
}

MCU_SPECIALIZE void mcu_fc_s8_gemm(const mcu_fc_shape *s, const mcu_requant_params *r, const int8_t *input,
                               const int8_t *weights, int8_t *output) {
    mcu_fc_s8_gemm_rows(s, r, input, weights, 0, (const int8_t *)0, output);
}

MCU_SPECIALIZE void mcu_fc_s8_gemm_w4(const mcu_fc_shape *s, const mcu_requant_params *r, const int8_t *input,
                                  const uint8_t *weights, int8_t *output) {
    mcu_fc_s8_gemm_rows(s, r, input, weights, 4, (const int8_t *)0, output);
}

MCU_SPECIALIZE void mcu_fc_s8_gemm_w2(const mcu_fc_shape *s, const mcu_requant_params *r, const int8_t *input,
                                  const uint8_t *weights, int8_t *output) {
    mcu_fc_s8_gemm_rows(s, r, input, weights, 2, (const int8_t *)0, output);
}

/* Codes of `bits` bits (4 or 2, a literal) in the wb layout, each weight table[code] (pow2, codebook). */
MCU_SPECIALIZE void mcu_fc_s8_gemm_lut(const mcu_fc_shape *s, const mcu_requant_params *r, const int8_t *input,
                                   const uint8_t *weights, const int8_t *table, int32_t bits, int8_t *output) {
    mcu_fc_s8_gemm_rows(s, r, input, weights, bits, table, output);
}

/* Fully-connected layer (mcu_fc_s8_gemm's shapes) with sparse weights. */
MCU_SPECIALIZE void mcu_fc_s8_sparse(const mcu_fc_shape *s, const mcu_requant_params *r, const int8_t *input,
                                     const mcu_weights *weights, int8_t *output) {
    int32_t b;
    for (b = 0; b < s->batches; ++b) {
        mcu_sparse_pixel(weights, input + b * s->in_features, s->in_features, s->out_features, r,
                         output + b * s->out_features);
    }
}

#endif /* MCU_FC_S8_FAST_H */
