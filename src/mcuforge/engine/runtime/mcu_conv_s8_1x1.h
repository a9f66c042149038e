/* mcuforge runtime: int8 pointwise (1x1) convolution, CONV_2D with a 1x1 kernel and no padding, as an
 * int8 GEMM: two output pixels at a time against every filter (mcu_gemm_s8.h), the input offset folded
 * into the bias at compile time. Any stride: output pixel (b, oy, ox) reads the input pixel at
 * input + b * batch_step + oy * row_step + ox * col_step.
 *
 * On Arm cores with the DSP extension the pixels are widened once into an int16 column that every filter
 * then reads: four pixels at a time (mcu_gemm_s8_4px.h) when the depth is a multiple of 4, else two.
 * The column is the planner's scratch when it had room (`scratch`, mcu_pointwise_column_bytes), else the
 * end of the output, which is not written yet: then the last pixels, whose outputs reach it, are computed
 * from the int8 input directly, as every pixel is on the portable path. Same results as mcu_conv_s8. */
#ifndef MCU_CONV_S8_1X1_H
#define MCU_CONV_S8_1X1_H

#include "mcu_gemm_s8_4px.h"

typedef struct {
    int32_t batches, rows, cols; /* output pixels: batches x rows x cols */
    int32_t in_c, out_c;
    int32_t batch_step, row_step, col_step; /* input elements between consecutive batches, rows, columns */
} mcu_conv_1x1_shape;

/* A 4-byte aligned place for `bytes` bytes at the end of `buffer` (size `size`); *start gets its first
 * byte, or `buffer` when there is no room (then nothing may use it). */
MCU_SPECIALIZE mcu_col_t *mcu_tail_column(int8_t *buffer, int32_t size, int32_t bytes, const int8_t **start) {
    uintptr_t at;
    if (size < bytes + 3) {
        *start = buffer;
        return (mcu_col_t *)(void *)buffer;
    }
    at = ((uintptr_t)(buffer + size - bytes)) & ~(uintptr_t)3;
    *start = buffer + (at - (uintptr_t)buffer);
    return (mcu_col_t *)(void *)(buffer + (at - (uintptr_t)buffer));
}

/* Output pixels [col, cols) of one row, two at a time. */
MCU_SPECIALIZE void mcu_conv_s8_1x1_pairs(const mcu_conv_1x1_shape *s, const mcu_requant_params *r,
                                          const int8_t *in, const int8_t *weights, int8_t *out, int32_t col,
                                          mcu_col_t *column, const int8_t *column_start) {
    for (; col < s->cols; col += 2) {
        const int32_t pair = col + 1 < s->cols;
        const int8_t *x0 = in + col * s->col_step;
        const int8_t *x1 = pair ? x0 + s->col_step : x0;
        int8_t *y0 = out + col * s->out_c;
        int8_t *y1 = pair ? y0 + s->out_c : (int8_t *)0;
        if (MCU_GEMM_DSP && y0 + (1 + pair) * s->out_c <= column_start) {
            mcu_pack_s8(x0, s->in_c, column);
            if (pair) mcu_pack_s8(x1, s->in_c, column + mcu_col_stride(s->in_c));
            mcu_gemm_col_2rows(column, weights, s->in_c, s->out_c, r, y0, y1);
        } else {
            mcu_gemm_s8_2rows(x0, x1, weights, s->in_c, s->out_c, r, y0, y1);
        }
    }
}

/* `scratch`: NULL or mcu_pointwise_column_bytes(in_c) bytes (any alignment) for the column. */
MCU_SPECIALIZE void mcu_conv_s8_1x1(const mcu_conv_1x1_shape *s, const mcu_requant_params *r,
                                    const int8_t *input, const int8_t *weights, int8_t *output, int8_t *scratch) {
    const int32_t out_bytes = s->batches * s->rows * s->cols * s->out_c;
    const int8_t *column_start; /* pixels whose outputs end at or below it may use the column */
    const int32_t quads = MCU_GEMM_DSP && s->in_c % 4 == 0; /* four pixels at a time */
    const int32_t column_values = quads ? 4 * s->in_c : 2 * mcu_col_stride(s->in_c);
    mcu_col_t *column;
    if (scratch) {
        column = mcu_tail_column(scratch, column_values * (int32_t)sizeof(mcu_col_t) + 4,
                                 column_values * (int32_t)sizeof(mcu_col_t), &column_start);
        column_start = output + out_bytes;
    } else {
        column = mcu_tail_column(output, out_bytes, column_values * (int32_t)sizeof(mcu_col_t), &column_start);
    }
    int32_t b, row;
    for (b = 0; b < s->batches; ++b) {
        for (row = 0; row < s->rows; ++row) {
            const int8_t *in = input + b * s->batch_step + row * s->row_step;
            int8_t *out = output + ((b * s->rows + row) * s->cols) * s->out_c;
            int32_t col = 0;
#if MCU_GEMM_DSP
            if (quads) {
                for (; col + 4 <= s->cols && out + (col + 4) * s->out_c <= column_start; col += 4) {
                    int32_t p;
                    for (p = 0; p < 4; ++p) mcu_pack_4px(in + (col + p) * s->col_step, s->in_c, p, r, column);
                    mcu_gemm_4px(column, weights, s->in_c, s->out_c, r, out + col * s->out_c);
                }
            }
#endif
            mcu_conv_s8_1x1_pairs(s, r, in, weights, out, col, column, column_start);
        }
    }
}

#endif /* MCU_CONV_S8_1X1_H */
