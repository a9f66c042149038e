/* mcuforge runtime: int8 pointwise (1x1) convolution, CONV_2D with a 1x1 kernel and no padding, as an
 * int8 GEMM: two output pixels at a time against every filter (mcu_gemm_s8.h), the input offset folded
 * into the bias at compile time. Any stride: output pixel (b, oy, ox) reads the input pixel at
 * input + b * batch_step + oy * row_step + ox * col_step.
 *
 * On Arm cores with the DSP extension the pixels are widened once into an int16 column that every filter
 * then reads: when the depth is a multiple of 4, four pixels at a time (mcu_gemm_s8_4px.h) or, from a
 * depth of MCU_3PX_MIN_DEPTH on, three pixels against two filters (mcu_gemm_s8_3px.h); else two.
 * The column is the planner's scratch when it had room (`scratch`, mcu_pointwise_column_bytes), else the
 * end of the output, which is not written yet: then the last pixels, whose outputs reach it, are computed
 * from the int8 input directly, as every pixel is on the portable path, unless the input dies with this
 * layer (`input_spent`): then the column moves over the input pixels already read. Same results as
 * mcu_conv_s8.
 * mcu_conv_s8_1x1_w4, _w2, _lut, _sparse: int4 and ternary weights, or pow2 and codebook codes into a table,
 * in the wb layout (mcu_gemm_s4.h), sparse weights (mcu_sparse_s8.h): on Arm cores with the DSP extension
 * four pixels at a time through the interleaved column, in `scratch` (NULL or mcu_pointwise_column_bytes, as
 * for int8) or else at the end of the output, when in_c is a multiple of 8; the other pixels two at a time
 * from their int8 values. */
#ifndef MCU_CONV_S8_1X1_H
#define MCU_CONV_S8_1X1_H

#include "mcu_gemm_s4.h"
#include "mcu_gemm_s8_3px.h"
#include "mcu_sparse_s8.h"

/* The column over the spent input (mcu_conv_s8_1x1's input_spent): a second copy of the pixel loops, so
 * only where the compiler optimizes (and drops the copy where input_spent is 0). */
#if MCU_GEMM_DSP && (MCU_SPEED || defined(__OPTIMIZE__))
#define MCU_1X1_SPENT 1
#else
#define MCU_1X1_SPENT 0
#endif

typedef struct {
    int32_t batches, rows, cols; /* output pixels: batches x rows x cols */
    int32_t in_c, out_c;
    int32_t batch_step, row_step, col_step; /* input elements between consecutive batches, rows, columns */
} mcu_conv_1x1_shape;

/* A 4-byte aligned place for `bytes` bytes at the end of `buffer` (size `size`); *start gets its first
 * byte. NULL when there is no room (*start is then `buffer`: no pixel may use it); with literal sizes the
 * compiler then drops the column paths. */
MCU_SPECIALIZE mcu_col_t *mcu_tail_column(int8_t *buffer, int32_t size, int32_t bytes, const int8_t **start) {
    uintptr_t at;
    if (size < bytes + 3) {
        *start = buffer;
        return (mcu_col_t *)0;
    }
    at = ((uintptr_t)(buffer + size - bytes)) & ~(uintptr_t)3;
    *start = buffer + (at - (uintptr_t)buffer);
    return (mcu_col_t *)(void *)(buffer + (at - (uintptr_t)buffer));
}

/* Output pixels [col, end) of one row, two at a time. */
MCU_SPECIALIZE void mcu_conv_s8_1x1_pairs(const mcu_conv_1x1_shape *s, const mcu_requant_params *r,
                                          const int8_t *in, const int8_t *weights, int8_t *out, int32_t col,
                                          int32_t end, mcu_col_t *column, const int8_t *column_start) {
    for (; col < end; col += 2) {
        const int32_t pair = col + 1 < end;
        const int8_t *x0 = in + col * s->col_step;
        const int8_t *x1 = pair ? x0 + s->col_step : x0;
        int8_t *y0 = out + col * s->out_c;
        int8_t *y1 = pair ? y0 + s->out_c : (int8_t *)0;
        if (MCU_GEMM_DSP && column && y0 + (1 + pair) * s->out_c <= column_start) {
            mcu_pack_s8(x0, s->in_c, column);
            if (pair) mcu_pack_s8(x1, s->in_c, column + mcu_col_stride(s->in_c));
            mcu_gemm_col_2rows(column, weights, s->in_c, s->out_c, r, y0, y1);
        } else {
            mcu_gemm_s8_2rows(x0, x1, weights, s->in_c, s->out_c, r, y0, y1);
        }
    }
}

/* Output pixels [col, end) of one row: four (or three) at a time through the column while their outputs
 * end at or below column_start (`quads`: the depth is a multiple of 4), then two at a time. */
MCU_SPECIALIZE void mcu_conv_s8_1x1_run(const mcu_conv_1x1_shape *s, const mcu_requant_params *r,
                                        const int8_t *in, const int8_t *weights, int8_t *out, int32_t col,
                                        int32_t end, int32_t quads, mcu_col_t *column,
                                        const int8_t *column_start) {
#if MCU_GEMM_DSP
    if (quads && column) {
        if (s->in_c >= MCU_3PX_MIN_DEPTH) {
            /* the pixels from col on whose outputs end at or below column_start */
            const int32_t stop = mcu_min_i32(end, (int32_t)((column_start - out) / s->out_c));
            for (; col + 3 <= stop; col += 3) {
                int32_t p;
                for (p = 0; p < 3; ++p) mcu_pack_3px(in + (col + p) * s->col_step, s->in_c, p, r, column);
                mcu_gemm_3px(column, weights, s->in_c, s->out_c, r, out + col * s->out_c);
            }
        } else {
            for (; col + 4 <= end && out + (col + 4) * s->out_c <= column_start; col += 4) {
                int32_t p;
                for (p = 0; p < 4; ++p) mcu_pack_4px(in + (col + p) * s->col_step, s->in_c, p, r, column);
                mcu_gemm_4px(column, weights, s->in_c, s->out_c, r, out + col * s->out_c);
            }
        }
    }
#else
    (void)quads;
#endif
    mcu_conv_s8_1x1_pairs(s, r, in, weights, out, col, end, column, column_start);
}

/* `scratch`: NULL or mcu_pointwise_column_bytes(in_c) bytes (any alignment) for the column. `input_spent`
 * (a literal; the codegen sets it where no later layer reads the input's bytes and the input is 4-byte
 * aligned): without scratch, on Arm cores with the DSP extension and a depth that is a multiple of 4, the
 * pixels whose input lies a column's bytes past the input's start take a column over the input pixels
 * already read, whatever their outputs reach. */
MCU_SPECIALIZE void mcu_conv_s8_1x1(const mcu_conv_1x1_shape *s, const mcu_requant_params *r,
                                    const int8_t *input, const int8_t *weights, int8_t *output, int8_t *scratch,
                                    int32_t input_spent) {
    const int32_t out_bytes = s->batches * s->rows * s->cols * s->out_c;
    const int8_t *column_start; /* pixels whose outputs end at or below it may use the column */
    const int32_t quads = MCU_GEMM_DSP && s->in_c % 4 == 0; /* four pixels at a time */
    const int32_t column_values = quads ? 4 * s->in_c : 2 * mcu_col_stride(s->in_c);
    const int32_t column_bytes = column_values * (int32_t)sizeof(mcu_col_t);
    const int32_t spent = MCU_1X1_SPENT && quads && input_spent && !scratch;
    mcu_col_t *column;
    int32_t b, row;
    if (scratch) {
        column = mcu_tail_column(scratch, column_bytes + 4, column_bytes, &column_start);
        column_start = output + out_bytes;
    } else {
        column = mcu_tail_column(output, out_bytes, column_bytes, &column_start);
    }
    for (b = 0; b < s->batches; ++b) {
        for (row = 0; row < s->rows; ++row) {
            const int8_t *in = input + b * s->batch_step + row * s->row_step;
            int8_t *out = output + ((b * s->rows + row) * s->cols) * s->out_c;
#if MCU_1X1_SPENT
            if (spent) { /* pixels [0, first) read input the column would cover: the output's tail column */
                const int32_t ahead = (int32_t)((input + column_bytes) - in);
                const int32_t first = ahead <= 0 ? 0
                                      : mcu_min_i32((ahead + s->col_step - 1) / s->col_step, s->cols);
                mcu_col_t *head = (mcu_col_t *)(void *)(int8_t *)(uintptr_t)input;
                mcu_conv_s8_1x1_run(s, r, in, weights, out, 0, first, quads, column, column_start);
                mcu_conv_s8_1x1_run(s, r, in, weights, out, first, s->cols, quads, head, output + out_bytes);
                continue;
            }
#else
            (void)spent;
#endif
            mcu_conv_s8_1x1_run(s, r, in, weights, out, 0, s->cols, quads, column, column_start);
        }
    }
}

#if MCU_GEMM_DSP
/* A column of four pixels' values (4 * in_c int16) for the kernels with weights in a format: in `scratch`
 * (NULL or mcu_pointwise_column_bytes(in_c) bytes), then any pixel may use it, else at the end of the
 * output (NULL where it does not fit), then the pixels whose outputs end at or below the column. */
MCU_SPECIALIZE mcu_col_t *mcu_quad_column(const mcu_conv_1x1_shape *s, int8_t *scratch, int8_t *output) {
    const int32_t out_bytes = s->batches * s->rows * s->cols * s->out_c;
    const int32_t column_bytes = 4 * s->in_c * (int32_t)sizeof(mcu_col_t);
    const int8_t *unused;
    return scratch ? mcu_tail_column(scratch, column_bytes + 4, column_bytes, &unused)
                   : mcu_tail_column(output, out_bytes, column_bytes, &unused);
}
#endif

/* Pointwise convolution with weights in a format (`bits`, a literal: 0 for sparse weights, mcu_sparse_s8.h,
 * else 4 or 2 for fields in the wb layout, mcu_gemm_s4.h: int4 and ternary values, or with a `table` pow2
 * and codebook codes): four pixels at a time through the column of mcu_quad_column where the depth allows
 * (a multiple of 32 / bits; sparse: of 4), the other pixels from their int8 values. */
MCU_SPECIALIZE void mcu_conv_s8_1x1_formats(const mcu_conv_1x1_shape *s, const mcu_requant_params *r,
                                            const int8_t *input, const void *weights, const int8_t *table,
                                            int8_t *output, int8_t *scratch, int32_t bits) {
    const mcu_weights *packed = (const mcu_weights *)weights;
    const int32_t sparse = bits == 0;
    int32_t b, row, col;
#if MCU_GEMM_DSP
    mcu_col_t *column = s->in_c % (sparse ? 4 : 32 / bits) == 0 ? mcu_quad_column(s, scratch, output)
                                                                 : (mcu_col_t *)0;
    const int8_t *column_start = scratch ? output + s->batches * s->rows * s->cols * s->out_c : (int8_t *)column;
#else
    (void)scratch;
#endif
    for (b = 0; b < s->batches; ++b) {
        for (row = 0; row < s->rows; ++row) {
            const int8_t *in = input + b * s->batch_step + row * s->row_step;
            int8_t *out = output + ((b * s->rows + row) * s->cols) * s->out_c;
            col = 0;
#if MCU_GEMM_DSP
            for (; column && col + 4 <= s->cols && out + (col + 4) * s->out_c <= column_start; col += 4) {
                int32_t p;
                for (p = 0; p < 4; ++p) {
                    if (sparse) mcu_pack_side_by_side(in + (col + p) * s->col_step, s->in_c, p, r, column);
                    else mcu_pack_4px(in + (col + p) * s->col_step, s->in_c, p, r, column);
                }
                if (sparse) mcu_sparse_4px(packed, column, s->in_c, s->out_c, r, out + col * s->out_c);
                else mcu_gemm_4px_wb(column, (const uint8_t *)weights, s->in_c, s->out_c, bits, table, r,
                                     out + col * s->out_c);
            }
#endif
            for (; sparse && col < s->cols; ++col) {
                mcu_sparse_pixel(packed, in + col * s->col_step, s->in_c, s->out_c, r, out + col * s->out_c);
            }
            for (; col < s->cols; col += 2) { /* the last pixels of a row, from their int8 values */
                const int32_t pair = col + 1 < s->cols;
                const int8_t *x0 = in + col * s->col_step;
                int8_t *y0 = out + col * s->out_c;
                mcu_gemm_wb(x0, pair ? x0 + s->col_step : x0, (const mcu_col_t *)0, (const uint8_t *)weights,
                            s->in_c, s->out_c, bits, table, r, y0, pair ? y0 + s->out_c : (int8_t *)0);
            }
        }
    }
}

MCU_SPECIALIZE void mcu_conv_s8_1x1_w4(const mcu_conv_1x1_shape *s, const mcu_requant_params *r,
                                       const int8_t *input, const uint8_t *weights, int8_t *output, int8_t *scratch) {
    mcu_conv_s8_1x1_formats(s, r, input, weights, (const int8_t *)0, output, scratch, 4);
}

MCU_SPECIALIZE void mcu_conv_s8_1x1_w2(const mcu_conv_1x1_shape *s, const mcu_requant_params *r,
                                       const int8_t *input, const uint8_t *weights, int8_t *output, int8_t *scratch) {
    mcu_conv_s8_1x1_formats(s, r, input, weights, (const int8_t *)0, output, scratch, 2);
}

/* Codes of `bits` bits (4 or 2, a literal) in the wb layout, each weight table[code] (pow2, codebook). */
MCU_SPECIALIZE void mcu_conv_s8_1x1_lut(const mcu_conv_1x1_shape *s, const mcu_requant_params *r,
                                        const int8_t *input, const uint8_t *weights, const int8_t *table,
                                        int32_t bits, int8_t *output, int8_t *scratch) {
    mcu_conv_s8_1x1_formats(s, r, input, weights, table, output, scratch, bits);
}

MCU_SPECIALIZE void mcu_conv_s8_1x1_sparse(const mcu_conv_1x1_shape *s, const mcu_requant_params *r,
                                           const int8_t *input, const mcu_weights *weights, int8_t *output,
                                           int8_t *scratch) {
    mcu_conv_s8_1x1_formats(s, r, input, weights, (const int8_t *)0, output, scratch, 0);
}

#endif /* MCU_CONV_S8_1X1_H */
