/* mcuforge runtime: how the model's code is compiled, whatever -O level the firmware builds at.
 *
 * The kernels are fast when each call inlines its own copy, specialised by the call's literal shapes,
 * with the short loops over window taps unrolled (mcu_specialize.h). That is what they do at -O1, -O2,
 * -O3 and -Os alike (at -Os each layer's copy is compiled for size). GCC at -O0 optimises nothing, so
 * there the model's file (the only file that includes these headers) is compiled as at -O2. Knobs:
 *   -DMCU_SMALL_CODE      the compiler's own choices instead: at -Os one shared copy of each kernel, about
 *                         half the code and several times the instructions (docs/c_api.md has numbers);
 *   -DMCU_KEEP_OPT_LEVEL  no raising at -O0 (e.g. to step through the kernels in a debugger).
 * MCU_SPEED is 1 where the kernels are specialised, 0 where the compiler decides. */
#ifndef MCU_BUILD_H
#define MCU_BUILD_H

#if defined(__GNUC__) && !defined(__clang__) && !defined(__OPTIMIZE__) && !defined(MCU_KEEP_OPT_LEVEL) && \
    !defined(MCU_SMALL_CODE)
#pragma GCC optimize("O2")
#define MCU_OPT_RAISED 1
#endif

#if !defined(MCU_SMALL_CODE) && (defined(__OPTIMIZE__) || defined(MCU_OPT_RAISED))
#define MCU_SPEED 1
#else
#define MCU_SPEED 0
#endif

#endif /* MCU_BUILD_H */
