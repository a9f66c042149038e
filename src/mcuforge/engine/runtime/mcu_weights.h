/* mcuforge runtime: weight formats, decoded where a kernel reads a weight (mcuforge/ir/formats.py).
 * A format is an exact encoding of int8 weights, so every kernel computes the same bits from either form.
 * MCU_W_INT8: one int8 per value. MCU_W_INT4: values in [-8, 7], two per byte, low nibble first (TFLite's
 * INT4 layout). MCU_W_TERNARY: -1, 0, 1 as 2-bit two's complement codes, four per byte, lowest bits first.
 * MCU_W_POW2: 0 and +-2^k (k = 0 .. 6) as 4-bit codes in int4's nibble order: 0 for 0, else sign << 3 |
 * (k + 1). MCU_W_CODEBOOK: `bits`-bit indices into `table` (2^bits int8 values), value i at bits
 * [i * bits, i * bits + bits) of the little-endian byte stream, which has one byte of padding after its
 * last index (two bytes are read at a time). MCU_W_SPARSE: the zeros skipped: `data` holds, as uint32
 * words, a bitmap per block of 32 values, the nonzero count before each superblock of 8 blocks, and the
 * count before each block within its superblock (bytes, four per word, lowest first); `table` the nonzero
 * values; `bits` the number of bitmap words. MCU_W_SPARSE_INT4: the same with the nonzero values in -8..7,
 * two per byte in int4's order. MCU_W_TERNARY_BASE3: -1, 0, 1 five per byte, value + 1 as the base-3 digits
 * from the lowest. The format is a literal in the generated call, so the compiler keeps only
 * its branch. */
#ifndef MCU_WEIGHTS_H
#define MCU_WEIGHTS_H

#include "mcu_common.h"

enum {
    MCU_W_INT8 = 0, MCU_W_INT4 = 1, MCU_W_CODEBOOK = 2, MCU_W_TERNARY = 3, MCU_W_POW2 = 4, MCU_W_SPARSE = 5,
    MCU_W_SPARSE_INT4 = 6, MCU_W_TERNARY_BASE3 = 7
};

typedef struct {
    const void *data;
    int32_t format; /* MCU_W_INT8, _INT4, _CODEBOOK, _TERNARY, _POW2 or _SPARSE */
    int32_t bits;        /* codebook: bits per index (1 .. 7); sparse: bitmap words (values / 32, rounded up) */
    const int8_t *table; /* codebook: the 2^bits values; sparse: the nonzero values */
} mcu_weights;

/* The number of set bits of x. */
MCU_INLINE int32_t mcu_popcount32(uint32_t x) {
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (int32_t)((x * 0x01010101u) >> 24);
}

/* Sparse weights: the number of nonzero values before value i. */
MCU_INLINE int32_t mcu_sparse_rank(const mcu_weights *w, int32_t i) {
    const uint32_t *bitmap = (const uint32_t *)w->data;
    const uint32_t *before = bitmap + w->bits;             /* per superblock */
    const uint32_t *local = before + ((w->bits + 7) >> 3); /* per block, four per word */
    const int32_t block = i >> 5;
    return (int32_t)before[block >> 3] + (int32_t)((local[block >> 2] >> ((block & 3) * 8)) & 0xFFu)
           + mcu_popcount32(bitmap[block] & ((1u << (i & 31)) - 1u));
}

/* Value i of int4 values packed two per byte, low nibble first. */
MCU_INLINE int32_t mcu_nibble(const uint8_t *bytes, int32_t i) {
    const uint32_t b = bytes[i >> 1];
    const int32_t nibble = (int32_t)((i & 1) ? b >> 4 : b & 0x0Fu);
    return nibble - ((nibble & 8) << 1); /* 8..15 -> -8..-1 */
}

/* Sparse weights: nonzero value number n. */
MCU_INLINE int32_t mcu_sparse_value(const mcu_weights *w, int32_t n) {
    return w->format == MCU_W_SPARSE_INT4 ? mcu_nibble((const uint8_t *)w->table, n) : w->table[n];
}

/* Sparse weights: value i. */
MCU_INLINE int32_t mcu_sparse_weight(const mcu_weights *w, int32_t i) {
    return ((((const uint32_t *)w->data)[i >> 5] >> (i & 31)) & 1u) ? mcu_sparse_value(w, mcu_sparse_rank(w, i)) : 0;
}

/* Weight number i (in the tensor's own order). */
MCU_INLINE int32_t mcu_weight(const mcu_weights *w, int32_t i) {
    if (w->format == MCU_W_INT4) return mcu_nibble((const uint8_t *)w->data, i);
    if (w->format == MCU_W_CODEBOOK) {
        const int32_t bit = i * w->bits;
        const uint8_t *p = (const uint8_t *)w->data + (bit >> 3);
        const uint32_t two = (uint32_t)p[0] | ((uint32_t)p[1] << 8);
        return w->table[(two >> (bit & 7)) & ((1u << w->bits) - 1u)];
    }
    if (w->format == MCU_W_SPARSE || w->format == MCU_W_SPARSE_INT4) return mcu_sparse_weight(w, i);
    if (w->format == MCU_W_TERNARY_BASE3) {
        static const uint8_t power[5] = {1, 3, 9, 27, 81};
        return (int32_t)((((const uint8_t *)w->data)[i / 5] / power[i % 5]) % 3u) - 1;
    }
    if (w->format == MCU_W_TERNARY) {
        const uint32_t code = (((const uint8_t *)w->data)[i >> 2] >> ((i & 3) * 2)) & 3u;
        return (int32_t)code - (int32_t)((code & 2u) << 1); /* 3 -> -1 */
    }
    if (w->format == MCU_W_POW2) {
        const uint32_t b = ((const uint8_t *)w->data)[i >> 1];
        const uint32_t code = (i & 1) ? b >> 4 : b & 0x0Fu;
        const int32_t magnitude = (code & 7u) ? (int32_t)(1u << ((code & 7u) - 1u)) : 0;
        return (code & 8u) ? -magnitude : magnitude;
    }
    return ((const int8_t *)w->data)[i];
}

#endif /* MCU_WEIGHTS_H */
