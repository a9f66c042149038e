/* mcuforge runtime: MCU_SPECIALIZE marks the kernels that must be inlined into every call, so the
 * compiler specialises them by the call's literal shapes (unrolled windows, vectorized channel loops).
 * Compilers do not always inline functions this large on their own, and at -Os not at all: there a
 * shared copy of a kernel is smaller, but runs 6.5x the instructions (MLPerf VWW, Cortex-M7). Where
 * MCU_SPEED is 0 (mcu_build.h: -DMCU_SMALL_CODE, or -O0 kept as it is) the compiler decides. */
#ifndef MCU_SPECIALIZE_H
#define MCU_SPECIALIZE_H

#include "mcu_common.h"

#ifndef MCU_SPECIALIZE
#if defined(__GNUC__) && MCU_SPEED
#define MCU_SPECIALIZE MCU_INLINE __attribute__((always_inline))
#else
#define MCU_SPECIALIZE MCU_INLINE
#endif
#endif

/* GCC on Arm schedules instructions before register allocation, which in the unrolled, inlined kernels
 * keeps so many values live that they spill to the stack (measured: a 3x3 depthwise layer on Cortex-M7
 * runs 5.2 instead of 6.0 instructions per MAC without it). The pragma holds for the rest of the file
 * that includes the kernels: the model's code. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__arm__) && MCU_SPEED
#pragma GCC optimize("no-schedule-insns")
#endif

/* MCU_UNROLL before a loop with a literal trip count of up to 8 (the taps of a window row) unrolls it,
 * where the compiler takes the hint and the kernels are specialised (MCU_SPEED). */
#ifndef MCU_UNROLL
#if defined(__clang__) && MCU_SPEED
#define MCU_UNROLL _Pragma("unroll 8")
#elif defined(__GNUC__) && __GNUC__ >= 8 && MCU_SPEED
#define MCU_UNROLL _Pragma("GCC unroll 8")
#else
#define MCU_UNROLL
#endif
#endif

/* MCU_OPAQUE(p) hides where pointer p came from, so that the compiler keeps it in one register and
 * reaches the literal offsets from it, rather than deriving a pointer of its own for each offset. */
#ifndef MCU_OPAQUE
#if defined(__GNUC__)
#define MCU_OPAQUE(p) __asm__("" : "+r"(p))
#else
#define MCU_OPAQUE(p) ((void)0)
#endif
#endif

#endif /* MCU_SPECIALIZE_H */
