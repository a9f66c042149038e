/* mcuforge runtime: weight formats, decoded where a kernel reads a weight (mcuforge/ir/formats.py).
 * A format is an exact encoding of int8 weights, so every kernel computes the same bits from either form.
 * MCU_W_INT8: one int8 per value. MCU_W_INT4: values in [-8, 7], two per byte, low nibble first (TFLite's
 * INT4 layout). The format is a literal in the generated call, so the compiler keeps only its branch. */
#ifndef MCU_WEIGHTS_H
#define MCU_WEIGHTS_H

#include "mcu_common.h"

enum { MCU_W_INT8 = 0, MCU_W_INT4 = 1 };

typedef struct {
    const void *data;
    int32_t format; /* MCU_W_INT8 or MCU_W_INT4 */
} mcu_weights;

/* Weight number i (in the tensor's own order). */
MCU_INLINE int32_t mcu_weight(const mcu_weights *w, int32_t i) {
    if (w->format == MCU_W_INT4) {
        const uint32_t b = ((const uint8_t *)w->data)[i >> 1];
        const int32_t nibble = (int32_t)((i & 1) ? b >> 4 : b & 0x0Fu);
        return nibble - ((nibble & 8) << 1); /* 8..15 -> -8..-1 */
    }
    return ((const int8_t *)w->data)[i];
}

#endif /* MCU_WEIGHTS_H */
