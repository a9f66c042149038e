/* mcuforge Cortex-M startup for QEMU's MPS2 boards (AN386: Cortex-M4, AN500: Cortex-M7).
 * Vector table, reset handler (FPU on, .data copied from flash, .bss zeroed), main(), and the exit status
 * through semihosting. A fault ends the run with status 64 + the exception number (67 = HardFault). */
#include <stdint.h>

#include "mcu_semihost.h"

extern uint32_t __stack_top;                       /* from the linker script */
extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;

int main(void);
void mcu_reset(void);
void mcu_start(void);
void mcu_fault(void);

__attribute__((section(".vectors"), used)) static void (*const mcu_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top,
    mcu_reset,
    mcu_fault, mcu_fault, mcu_fault, mcu_fault, mcu_fault,   /* NMI, HardFault, MemManage, BusFault, Usage */
    0, 0, 0, 0,
    mcu_fault, mcu_fault, 0, mcu_fault, mcu_fault,           /* SVC, DebugMon, -, PendSV, SysTick */
};

/* Grants full access to CP10/CP11 (CPACR bits 20-23) before any floating-point instruction can run. */
__attribute__((naked, noreturn)) void mcu_reset(void) {
    __asm volatile(
        "movw r0, #0xED88\n"
        "movt r0, #0xE000\n"
        "ldr r1, [r0]\n"
        "orr r1, r1, #0xF00000\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
        "b mcu_start\n");
}

__attribute__((noreturn)) void mcu_start(void) {
    const uint32_t *src = &__data_load;
    uint32_t *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end; ++dst) *dst = 0;
    mcu_sh_exit(main());
    for (;;) {
    }
}

void mcu_fault(void) {
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    mcu_sh_exit(64 + (int32_t)(ipsr & 0x1FF));
}
