/* mcuforge Cortex-M harness: the few Arm semihosting calls it needs (file I/O and the exit status).
 * A semihosting call is `bkpt 0xab` with the operation in r0 and a pointer to its argument block in r1;
 * the debugger (here QEMU, -semihosting-config enable=on,target=native) answers in r0. */
#ifndef MCU_SEMIHOST_H
#define MCU_SEMIHOST_H

#include <stdint.h>

enum {
    MCU_SH_OPEN = 0x01,
    MCU_SH_CLOSE = 0x02,
    MCU_SH_WRITE = 0x05,
    MCU_SH_READ = 0x06,
    MCU_SH_EXIT_EXTENDED = 0x20
};

enum { MCU_SH_MODE_RB = 1, MCU_SH_MODE_WB = 5 };   /* fopen modes "rb" and "wb" */

#define MCU_SH_APPLICATION_EXIT 0x20026u         /* ADP_Stopped_ApplicationExit */

static inline int32_t mcu_sh_call(uint32_t op, const void *args) {
    register uint32_t r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = args;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

static inline int32_t mcu_sh_open(const char *path, uint32_t mode) {
    uint32_t len = 0;
    while (path[len] != '\0') ++len;
    {
        const uint32_t args[3] = {(uint32_t)(uintptr_t)path, mode, len};
        return mcu_sh_call(MCU_SH_OPEN, args);
    }
}

static inline void mcu_sh_close(int32_t handle) {
    const uint32_t args[1] = {(uint32_t)handle};
    (void)mcu_sh_call(MCU_SH_CLOSE, args);
}

/* Reads up to n bytes; returns how many were read (fewer only at the end of the file). */
static inline uint32_t mcu_sh_read(int32_t handle, void *buffer, uint32_t n) {
    uint8_t *p = (uint8_t *)buffer;
    uint32_t done = 0;
    while (done < n) {
        const uint32_t args[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)(p + done), n - done};
        const int32_t missing = mcu_sh_call(MCU_SH_READ, args);   /* bytes NOT read */
        if (missing < 0 || (uint32_t)missing >= n - done) break;
        done = n - (uint32_t)missing;
    }
    return done;
}

/* Returns 0 when all n bytes were written. */
static inline int32_t mcu_sh_write(int32_t handle, const void *buffer, uint32_t n) {
    const uint32_t args[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buffer, n};
    return mcu_sh_call(MCU_SH_WRITE, args);
}

/* Ends the emulation; QEMU exits with `status` (SYS_EXIT_EXTENDED carries it on 32-bit Arm too). */
static inline void mcu_sh_exit(int32_t status) {
    const uint32_t args[2] = {MCU_SH_APPLICATION_EXIT, (uint32_t)status};
    for (;;) (void)mcu_sh_call(MCU_SH_EXIT_EXTENDED, args);
}

#endif /* MCU_SEMIHOST_H */
