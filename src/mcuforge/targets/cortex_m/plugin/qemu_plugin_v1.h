/* The part of QEMU's TCG plugin API (version 1, as in QEMU 7.2) that mcuforge's plugin uses, declared
 * from the API's documentation: Debian ships QEMU without its plugin header. The functions are exported
 * by the qemu-system-* executable and resolved when QEMU loads the plugin. */
#ifndef MCU_QEMU_PLUGIN_V1_H
#define MCU_QEMU_PLUGIN_V1_H

#include <stddef.h>
#include <stdint.h>

#define MCU_QEMU_PLUGIN_VERSION 1
#define MCU_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;   /* only passed by pointer: left opaque here */
struct qemu_plugin_tb;                    /* a translation block, valid during the translation callback */
struct qemu_plugin_insn;                  /* one instruction of it */

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
/* Adds imm to *ptr every time the block runs (emitted inline at the start of the block). */
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
/* Calls cb every time the instruction is about to run. */
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_outs(const char *string);

#endif /* MCU_QEMU_PLUGIN_V1_H */
