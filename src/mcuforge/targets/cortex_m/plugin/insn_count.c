/* mcuforge QEMU TCG plugin: exact count of the guest instructions executed in a code interval.
 *
 *   -plugin file=insn_count.so,start=0xADDR,end=0xADDR,out=counts.txt[,mark=0xADDR]
 *
 * Every time execution reaches `start` an interval opens; when it next reaches `end` the number of
 * instructions executed from `start` (included) to `end` (excluded) is appended to `out`, one decimal
 * line per interval. mcuforge passes <name>_invoke's entry as start and the label after the harness's
 * call to it as end, so a line is the inclusive instruction count of one inference. With `mark`, every
 * time execution reaches that address inside an open interval the line "m N" is appended first, N the
 * instructions from `start` to the mark (excluded): per-layer counts, the mark being the layer hook of a
 * trace build.
 *
 * Counting: every translation block adds its instruction count to a 64-bit counter inline, on entry.
 * A block runs to its end unless an exception interrupts it, and the model's code raises none (no
 * interrupts are enabled in the harness), so the count is exact and repeatable. The two boundary
 * instructions get a callback that corrects for their position inside their block. Single vCPU. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_v1.h"

MCU_PLUGIN_EXPORT int qemu_plugin_version = MCU_QEMU_PLUGIN_VERSION;

static uint64_t executed;       /* instructions of every block entered so far (whole blocks) */
static uint64_t opened_at;      /* value of the count at `start`, when an interval is open */
static int open_interval;
static uint64_t start_pc, end_pc, mark_pc;
static int have_mark;
static FILE *out;

/* userdata: the number of instructions from the boundary to the end of its block, which `executed`
 * already includes but which lie at or after the boundary. */
static void on_start(unsigned int vcpu, void *tail) {
    (void)vcpu;
    if (!open_interval) {
        opened_at = executed - (uint64_t)(uintptr_t)tail;
        open_interval = 1;
    }
}

static void on_end(unsigned int vcpu, void *tail) {
    (void)vcpu;
    if (open_interval) {
        fprintf(out, "%" PRIu64 "\n", executed - (uint64_t)(uintptr_t)tail - opened_at);
        fflush(out);
        open_interval = 0;
    }
}

static void on_mark(unsigned int vcpu, void *tail) {
    (void)vcpu;
    if (open_interval) {
        fprintf(out, "m %" PRIu64 "\n", executed - (uint64_t)(uintptr_t)tail - opened_at);
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    const size_t n = qemu_plugin_tb_n_insns(tb);
    size_t i;
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, (uint64_t)n);
    for (i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint64_t pc = qemu_plugin_insn_vaddr(insn);
        void *tail = (void *)(uintptr_t)(n - i);
        if (pc == start_pc) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start, QEMU_PLUGIN_CB_NO_REGS, tail);
        if (pc == end_pc) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, tail);
        if (have_mark && pc == mark_pc) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, tail);
        }
    }
}

static const char *value_of(const char *arg, const char *key) {
    const size_t k = strlen(key);
    return (strncmp(arg, key, k) == 0 && arg[k] == '=') ? arg + k + 1 : NULL;
}

MCU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    const char *path = NULL;
    int have_start = 0, have_end = 0, i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        const char *v;
        if ((v = value_of(argv[i], "start")) != NULL) {
            start_pc = strtoull(v, NULL, 0);
            have_start = 1;
        } else if ((v = value_of(argv[i], "end")) != NULL) {
            end_pc = strtoull(v, NULL, 0);
            have_end = 1;
        } else if ((v = value_of(argv[i], "mark")) != NULL) {
            mark_pc = strtoull(v, NULL, 0);
            have_mark = 1;
        } else if ((v = value_of(argv[i], "out")) != NULL) {
            path = v;
        } else {
            qemu_plugin_outs("insn_count: unknown argument (expected start=, end=, out=, mark=)\n");
            return -1;
        }
    }
    if (!have_start || !have_end || path == NULL) {
        qemu_plugin_outs("insn_count: needs start=ADDR,end=ADDR,out=FILE\n");
        return -1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        qemu_plugin_outs("insn_count: cannot open the out= file\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    return 0;
}
