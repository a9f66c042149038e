/* mcuforge runtime: BATCH_MATMUL, int8 (TFLite Micro's reference BatchMatMul). For every output batch the
 * operands start at the given offsets (broadcast batches repeat an offset); out[i][j] = sum over the depth
 * of (lhs[i][k] + lhs_offset) * (rhs[k][j] + rhs_offset), requantized and clamped. The strides say how a
 * row and a depth step move through each operand, so transposed (adjoint) operands need no copy. */
#ifndef MCU_BATCH_MATMUL_S8_H
#define MCU_BATCH_MATMUL_S8_H

#include "mcu_common.h"

typedef struct {
    int32_t batches, rows, depth, cols;
    int32_t lhs_row, lhs_step; /* lhs element (i, k) at i * lhs_row + k * lhs_step */
    int32_t rhs_col, rhs_step; /* rhs element (k, j) at j * rhs_col + k * rhs_step */
    int32_t lhs_offset, rhs_offset, output_offset;
    int32_t multiplier, shift;
} mcu_batch_matmul_params;

MCU_INLINE void mcu_batch_matmul_s8(const mcu_batch_matmul_params *p, const int8_t *lhs, const int8_t *rhs,
                                    const int32_t *lhs_batches, const int32_t *rhs_batches, int8_t *output) {
    int32_t b, i, j, k;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *a = lhs + lhs_batches[b];
        const int8_t *m = rhs + rhs_batches[b];
        for (i = 0; i < p->rows; ++i) {
            for (j = 0; j < p->cols; ++j) {
                const int8_t *x = a + i * p->lhs_row;
                const int8_t *y = m + j * p->rhs_col;
                int32_t acc = 0;
                for (k = 0; k < p->depth; ++k) {
                    acc += (x[k * p->lhs_step] + p->lhs_offset) * (y[k * p->rhs_step] + p->rhs_offset);
                }
                acc = mcu_requantize_wrap(acc, p->multiplier, p->shift) + p->output_offset;
                *output++ = (int8_t)mcu_clamp_i32(acc, -128, 127);
            }
        }
    }
}

#endif /* MCU_BATCH_MATMUL_S8_H */
