/* mcuforge runtime: UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations and weights, int16 cell state (TFLite
 * Micro's integer LSTM: its EvalLstm<int8, int8, int16, int32>).
 *
 * Per batch row and time step: each gate's pre-activation is two fully connected layers into int16
 * (W_in (x - x_zp) + bias and W_rec (h - h_zp), each requantized and clamped, then added with
 * saturation); the input, forget and output gates go through the int16 sigmoid, the cell gate through
 * the int16 tanh (both interpolate `table`, sigmoid(i / 24) in 0.16 format); the cell becomes
 * forget * cell + input * cell_gate (each product requantized, the sum saturated, then clipped when a
 * clip is set), the hidden state tanh(cell) * output requantized to int8, which is also the step's
 * output. The hidden and cell states are the caller's: outside the arena, kept between invokes.
 * Scratch: four int16 vectors of `cells`. */
#ifndef MCU_LSTM_S8_H
#define MCU_LSTM_S8_H

#include "mcu_common.h"

typedef struct {
    int32_t batches, steps, inputs, cells, time_major;
    int32_t input_zero_point, hidden_zero_point;
    int32_t input_fc[8], recurrent_fc[8]; /* (multiplier, shift) per gate: input, forget, cell, output */
    int32_t forget_mul[2], input_mul[2], output_mul[2];
    int32_t cell_clip;                    /* 0: no clip */
    int32_t tanh_multiplier, tanh_shift;  /* the cell state into tanh's input */
} mcu_lstm_params;

/* x >> n rounding toward minus infinity, for negative x too (C leaves that implementation-defined). */
MCU_INLINE int32_t mcu_lstm_floor_shift(int32_t x, int32_t n) {
    return x >= 0 ? x >> n : -(int32_t)(((uint32_t)(-(x + 1)) >> n) + 1u);
}

MCU_INLINE int16_t mcu_lstm_sigmoid(const uint16_t *table, int32_t x) {
    const int32_t v = x * 3;
    const uint32_t a = (uint32_t)(v >= 0 ? v : -v);
    const uint32_t k = a >> 9;
    uint32_t r;
    if (k >= 255) {
        r = 0x7FFFu << 10;
    } else {
        r = ((uint32_t)table[k] << 9) + (a & 0x1FFu) * (uint32_t)(table[k + 1] - table[k]);
    }
    r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
    return (int16_t)(r >> 10);
}

MCU_INLINE int16_t mcu_lstm_tanh(const uint16_t *table, int32_t x, int32_t multiplier, int32_t shift) {
    const int32_t v = mcu_lstm_floor_shift(x * multiplier + (shift > 0 ? 1 << (shift - 1) : 0), shift);
    const uint32_t a = (uint32_t)(v >= 0 ? v : -v);
    const uint32_t k = a >> 8;
    int32_t r;
    if (k >= 255) {
        r = 0xFFFF << 8;
    } else {
        r = (int32_t)(((uint32_t)table[k] << 8) + (a & 0xFFu) * (uint32_t)(table[k + 1] - table[k]));
    }
    r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
    return (int16_t)mcu_lstm_floor_shift(r, 8);
}

/* One gate's int16 pre-activation for one batch row: FC(x) + bias and FC(h), each clamped, summed. */
MCU_INLINE void mcu_lstm_gate(const mcu_lstm_params *p, int32_t gate, const int8_t *x, const int8_t *h,
                              const int8_t *w_in, const int8_t *w_rec, const int32_t *bias, int16_t *out) {
    int32_t c, i;
    for (c = 0; c < p->cells; ++c) {
        const int8_t *wi = w_in + c * p->inputs;
        const int8_t *wr = w_rec + c * p->cells;
        int32_t a = 0, b = 0;
        for (i = 0; i < p->inputs; ++i) a += wi[i] * (x[i] - p->input_zero_point);
        for (i = 0; i < p->cells; ++i) b += wr[i] * (h[i] - p->hidden_zero_point);
        a = mcu_clamp_i32(mcu_requantize_wrap(a + bias[c], p->input_fc[2 * gate], p->input_fc[2 * gate + 1]),
                          -32768, 32767);
        b = mcu_clamp_i32(mcu_requantize_wrap(b, p->recurrent_fc[2 * gate], p->recurrent_fc[2 * gate + 1]),
                          -32768, 32767);
        out[c] = (int16_t)mcu_clamp_i32(a + b, -32768, 32767);
    }
}

MCU_INLINE int32_t mcu_lstm_product(int32_t a, int32_t b, const int32_t *scale) {
    return mcu_requantize_wrap(a * b, scale[0], scale[1]);
}

MCU_INLINE void mcu_lstm_s8(const mcu_lstm_params *p, const int8_t *input, const int8_t *const *weights,
                            const int32_t *const *bias, const uint16_t *table, int8_t *hidden, int16_t *cell,
                            int8_t *output, int16_t *scratch) {
    int16_t *const in_gate = scratch, *const forget = scratch + p->cells;
    int16_t *const cell_gate = scratch + 2 * p->cells, *const out_gate = scratch + 3 * p->cells;
    int32_t b, t, c;
    for (b = 0; b < p->batches; ++b) {
        int8_t *const h = hidden + b * p->cells;
        int16_t *const state = cell + b * p->cells;
        for (t = 0; t < p->steps; ++t) {
            const int32_t row = p->time_major ? t * p->batches + b : b * p->steps + t;
            const int8_t *const x = input + row * p->inputs;
            mcu_lstm_gate(p, 0, x, h, weights[0], weights[4], bias[0], in_gate);
            mcu_lstm_gate(p, 1, x, h, weights[1], weights[5], bias[1], forget);
            mcu_lstm_gate(p, 2, x, h, weights[2], weights[6], bias[2], cell_gate);
            mcu_lstm_gate(p, 3, x, h, weights[3], weights[7], bias[3], out_gate);
            for (c = 0; c < p->cells; ++c) {
                const int32_t kept = mcu_clamp_i32(
                    mcu_lstm_product(mcu_lstm_sigmoid(table, forget[c]), state[c], p->forget_mul), -32768, 32767);
                const int32_t fresh = mcu_clamp_i32(
                    mcu_lstm_product(mcu_lstm_sigmoid(table, in_gate[c]),
                                     mcu_lstm_tanh(table, cell_gate[c], 3, 0), p->input_mul), -32768, 32767);
                int32_t s = mcu_clamp_i32(kept + fresh, -32768, 32767);
                if (p->cell_clip) s = mcu_clamp_i32(s, -p->cell_clip, p->cell_clip);
                state[c] = (int16_t)s;
            }
            for (c = 0; c < p->cells; ++c) {
                const int32_t v = mcu_lstm_product(mcu_lstm_tanh(table, state[c], p->tanh_multiplier, p->tanh_shift),
                                                   mcu_lstm_sigmoid(table, out_gate[c]), p->output_mul);
                h[c] = (int8_t)mcu_clamp_i32(v + p->hidden_zero_point, -128, 127);
            }
            for (c = 0; c < p->cells; ++c) output[row * p->cells + c] = h[c];
        }
    }
}

#endif /* MCU_LSTM_S8_H */
