/* mcuforge runtime: int8 constant padding (PAD), TFLite Micro semantics.
 * Up to 6 dimensions (the emitter merges unpadded dimensions into their outer neighbour and fills unused
 * leading ones with size 1 and no padding). The output is filled with `value`, then each innermost input
 * row is copied to its place. Output must not alias the input. */
#ifndef MCU_PAD_S8_H
#define MCU_PAD_S8_H

#include "mcu_common.h"

typedef struct {
    int32_t in[6];     /* input sizes, outermost first */
    int32_t before[6]; /* padding before each dimension */
    int32_t out[6];    /* output sizes: in + before + after */
} mcu_pad_shape;

MCU_INLINE void mcu_pad_s8(const mcu_pad_shape *s, const int8_t *input, int8_t value, int8_t *output) {
    int32_t st[6];
    int32_t d, i0, i1, i2, i3, i4;
    st[5] = 1;
    for (d = 4; d >= 0; --d) {
        st[d] = st[d + 1] * s->out[d + 1];
    }
    memset(output, (unsigned char)value, (size_t)(st[0] * s->out[0]));
    for (i0 = 0; i0 < s->in[0]; ++i0) {
        for (i1 = 0; i1 < s->in[1]; ++i1) {
            for (i2 = 0; i2 < s->in[2]; ++i2) {
                for (i3 = 0; i3 < s->in[3]; ++i3) {
                    for (i4 = 0; i4 < s->in[4]; ++i4) {
                        const int32_t dst = (i0 + s->before[0]) * st[0] + (i1 + s->before[1]) * st[1] +
                                            (i2 + s->before[2]) * st[2] + (i3 + s->before[3]) * st[3] +
                                            (i4 + s->before[4]) * st[4] + s->before[5];
                        memcpy(output + dst, input, (size_t)s->in[5]);
                        input += s->in[5];
                    }
                }
            }
        }
    }
}

#endif /* MCU_PAD_S8_H */
