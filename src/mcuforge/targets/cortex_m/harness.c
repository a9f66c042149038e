/* mcuforge Cortex-M harness: runs a generated model on records of inputs read through semihosting.
 *
 * mcu_in.bin holds records back to back (each: every input's bytes, in order); for each record the
 * harness invokes the model once and appends every output's bytes to mcu_out.bin. Exit status 0, or
 * 10 (cannot open a file), 11 (a partial record), 12 (invoke failed), 13 (cannot write).
 *
 * Instruction counting: the call to <name>_invoke() is written in assembly, followed by the global label
 * mcu_bench_done. The QEMU plugin counts the instructions executed from the first instruction of
 * <name>_invoke up to (not including) mcu_bench_done: the model's invoke and everything it calls, as
 * callgrind's inclusive cost of the function on the host. Trace builds (-DMCUFORGE_TRACE) set the model's
 * layer hook to mcu_layer_mark, which does nothing: the plugin notes the count each time it is reached.
 *
 * Built with -DMCU_MODEL=<name> -DMCU_MODEL_HEADER="<name>.h" -DMCU_NUM_INPUTS=n -DMCU_NUM_OUTPUTS=m, and
 * -DMCU_ARENA_BYTES=n for a model compiled with an external arena (the harness hands it a static buffer). */
#include <stdint.h>

#include "mcu_semihost.h"
#include MCU_MODEL_HEADER

#define MCU_CAT_(a, b) a##b
#define MCU_CAT(a, b) MCU_CAT_(a, b)
#define MCU_STR_(x) #x
#define MCU_STR(x) MCU_STR_(x)
#define MODEL_FN(suffix) MCU_CAT(MCU_MODEL, suffix)

/* Runs <name>_invoke() on an 8-byte aligned stack (AAPCS), so that every run sees the same alignment. */
__attribute__((noinline, noclone)) int32_t mcu_bench_invoke(void) {
    register int32_t status __asm("r0");
    __asm volatile(
        "mov r4, sp\n"
        "bic r1, r4, #7\n"
        "mov sp, r1\n"
        "bl " MCU_STR(MCU_MODEL) "_invoke\n"
        ".global mcu_bench_done\n"
        "mcu_bench_done:\n"
        "mov sp, r4\n"
        : "=r"(status)
        :
        : "r1", "r2", "r3", "r4", "r12", "lr", "cc", "memory",
          "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7",
          "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15");
    return status;
}

#ifdef MCUFORGE_TRACE
extern void (*MODEL_FN(_trace_hook))(int layer);

__attribute__((noinline, noclone)) void mcu_layer_mark(int layer) {
    __asm volatile("" : : "r"(layer) : "memory");
}
#endif

/* 1: a whole record was read into the inputs; 0: clean end of the file; -1: a partial record. */
static int read_record(int32_t handle) {
    int i;
    for (i = 0; i < MCU_NUM_INPUTS; ++i) {
        const uint32_t n = (uint32_t)MODEL_FN(_input_bytes)(i);
        const uint32_t got = mcu_sh_read(handle, MODEL_FN(_input)(i), n);
        if (got != n) return (i == 0 && got == 0) ? 0 : -1;
    }
    return 1;
}

#ifdef MCU_ARENA_BYTES
static union {
    uint8_t bytes[MCU_ARENA_BYTES > 0 ? MCU_ARENA_BYTES : 1];
    int64_t align_i;
    double align_d;
} mcu_harness_arena;
#endif

int main(void) {
    const int32_t in = mcu_sh_open("mcu_in.bin", MCU_SH_MODE_RB);
    const int32_t out = mcu_sh_open("mcu_out.bin", MCU_SH_MODE_WB);
    int status = 0;
    if (in < 0 || out < 0) return 10;
#ifdef MCU_ARENA_BYTES
    if (MODEL_FN(_set_arena)(mcu_harness_arena.bytes, sizeof mcu_harness_arena.bytes) != 0) return 12;
#endif
#ifdef MCUFORGE_TRACE
    MODEL_FN(_trace_hook) = mcu_layer_mark;
#endif
    for (;;) {
        int i;
        const int r = read_record(in);
        if (r <= 0) {
            status = r < 0 ? 11 : 0;
            break;
        }
        if (mcu_bench_invoke() != 0) {
            status = 12;
            break;
        }
        for (i = 0; i < MCU_NUM_OUTPUTS; ++i) {
            if (mcu_sh_write(out, MODEL_FN(_output)(i), (uint32_t)MODEL_FN(_output_bytes)(i)) != 0) return 13;
        }
    }
    mcu_sh_close(in);
    mcu_sh_close(out);
    return status;
}
