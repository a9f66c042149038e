/* mcuforge runtime: PASTE, one block of a larger tensor written from a contiguous patch (patch-based
 * execution writes each patch's result into the stage's output this way). The patch is `outer[0] x
 * outer[1] x outer[2]` runs of `run` contiguous bytes; loop d advances the output by pitch[d] bytes.
 * Any element type: bytes move. The patch must not overlap the block it is written to. */
#ifndef MCU_PASTE_H
#define MCU_PASTE_H

#include "mcu_common.h"

typedef struct {
    int32_t outer[3];
    int32_t pitch[3]; /* output bytes per step of each outer loop */
    int32_t run;      /* contiguous bytes per innermost run */
} mcu_paste_shape;

MCU_INLINE void mcu_paste(const mcu_paste_shape *s, const void *patch, void *out) {
    const int8_t *src = (const int8_t *)patch;
    int32_t i0, i1, i2;
    for (i0 = 0; i0 < s->outer[0]; ++i0) {
        for (i1 = 0; i1 < s->outer[1]; ++i1) {
            int8_t *dst = (int8_t *)out + i0 * s->pitch[0] + i1 * s->pitch[1];
            for (i2 = 0; i2 < s->outer[2]; ++i2) {
                memcpy(dst, src, (size_t)s->run);
                src += s->run;
                dst += s->pitch[2];
            }
        }
    }
}

#endif /* MCU_PASTE_H */
