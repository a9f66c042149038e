"""C code generation: a planned graph becomes a small C99 library.

Files: <name>.h (API and sizes as macros), <name>.c (one kernel call per layer with literal shapes,
offsets and quantization constants), <name>_weights.c (const arrays, in flash) and the runtime kernel
headers the model uses (static inline functions, so the compiler specialises them per call).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from ... import __version__
from ...errors import ModelError, UsageError, shown
from ...ir import Graph
from ...quant.intmath import ScaleError
from ..opinfo import macs
from ..plan import MemoryPlan
from .context import CTYPES, EMITTERS, ConstPool, EmitContext, c_float
from .files import weights_source
from .io_helpers import QUANTIZE_HEADER, helper_declarations, helper_definitions, needs_quantize_header
from .packaging import project_files
from .shared_layers import share_repeated_layers

_INCLUDE = re.compile(r'^#include "(mcu_[a-z0-9_]+\.h)"', re.M)

__all__ = ["CLibrary", "CodeOptions", "IOSpec", "generate", "c_name", "check_c_name", "c_comment", "runtime_source"]

ARENA_ALIGN = 8  # bytes: the arena holds int32/int64 scratch and float inputs
ARENA_KINDS = ("static", "external")
_SECTION = re.compile(r"[A-Za-z0-9_.$]{1,64}")


@dataclass(frozen=True)
class CodeOptions:
    """How the library fits into the firmware (not what it computes).

    arena: "static" (the library's own static buffer) or "external" (the caller's buffer, handed over with
    <name>_set_arena(buf, size) before the first invoke; several models can share one).
    arena_section / weights_section: linker sections for the static arena and the const data (GCC/clang
    section attributes), e.g. ".sram2" or ".ext_flash"."""

    arena: str = "static"
    arena_section: str | None = None
    weights_section: str | None = None

    def __post_init__(self) -> None:
        if self.arena not in ARENA_KINDS:
            raise UsageError(f"--arena {shown(self.arena)}: choose static or external")
        for flag, section in (("--arena-section", self.arena_section), ("--weights-section", self.weights_section)):
            if section is not None and not _SECTION.fullmatch(section):
                raise UsageError(f"{flag} {shown(section)} is not a linker section name: use up to 64 letters, "
                                 "digits, '_', '.' or '$', e.g. .sram2")
        if self.arena_section is not None and self.arena == "external":
            raise UsageError("--arena-section places the library's own arena: with --arena external the arena "
                             "is your buffer, so place that buffer instead")


@dataclass(frozen=True)
class IOSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class CLibrary:
    name: str
    files: dict[str, str]  # file name -> text
    arena_bytes: int
    flash_weights_bytes: int
    inputs: tuple[IOSpec, ...] = ()
    outputs: tuple[IOSpec, ...] = ()
    options: CodeOptions = CodeOptions()

    @property
    def sources(self) -> list[str]:
        """The library's C sources: every .c file at the top level (examples/example_main.c, which has its own
        main(), is not one)."""
        return [f for f in self.files if f.endswith(".c") and "/" not in f]

    @property
    def code(self) -> dict[str, str]:
        """What a compiler needs: the library's sources and headers, without the build-system and example files."""
        return {f: t for f, t in self.files.items() if "/" not in f and f.endswith((".c", ".h"))}


_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_RESERVED = ("mcu_", "mcuforge")  # the runtime headers (mcu_*.h) and our harness (mcuforge_main.c)


def check_c_name(name: str) -> str:
    """`name` as the library's C prefix (lower case), or a UsageError saying why it cannot be one."""
    if not _IDENTIFIER.fullmatch(name):
        raise UsageError(f"--name {shown(name)} is not a C identifier: use up to 64 ASCII letters, digits and "
                         "'_', starting with a letter")
    if name.lower().startswith(_RESERVED):
        raise UsageError(f"--name {shown(name)}: names starting with 'mcu_' or 'mcuforge' are the runtime's own "
                         "files; choose another prefix")
    return name.lower()


def c_name(name: str) -> str:
    """A C identifier from any text (e.g. a model file's name): ASCII letters, digits and '_', lower case,
    never one of the runtime's own file names."""
    out = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in name).strip("_")[:64].lower() or "model"
    return "m_" + out if out[0].isdigit() or out.startswith(_RESERVED) else out


def c_comment(text: str, limit: int = 80) -> str:
    """Text from the model (a layer name) made safe inside a C block comment: printable ASCII only, no
    comment delimiters, shortened to about `limit` characters."""
    out = "".join(ch if " " <= ch <= "~" else "?" for ch in text).replace("*/", "*_").replace("/*", "_*")
    return out if len(out) <= limit else out[:limit // 2 - 2] + "..." + out[-(limit // 2 - 2):]


def runtime_source(header: str) -> str:
    return resources.files("mcuforge.engine.runtime").joinpath(header).read_text()


def with_dependencies(headers: set[str]) -> set[str]:
    """The runtime headers plus every runtime header they #include, transitively."""
    todo, seen = list(headers), set()
    while todo:
        h = todo.pop()
        if h not in seen:
            seen.add(h)
            todo += _INCLUDE.findall(runtime_source(h))
    return seen


def generate(graph: Graph, plan: MemoryPlan, name: str, options: CodeOptions = CodeOptions()) -> CLibrary:
    name = c_name(name)
    consts = ConstPool(prefix=f"{name}_c")
    arena = f"{name}_arena.bytes" if options.arena == "static" else "mcu_arena"  # a local of invoke
    ctx = EmitContext(graph=graph, plan=plan, consts=consts, arena=arena, external=_external_pointers(graph, name))
    ctx.use("mcu_common.h")
    if needs_quantize_header(graph):
        ctx.use(QUANTIZE_HEADER)  # <name>_quantize_input / _dequantize_output
    calls: list[str] = []
    bodies: list[str] = []
    for i, op in enumerate(graph.ops):
        ctx.index, ctx.op = i, op
        emit = EMITTERS.get(op.kind)
        if emit is None:
            raise ModelError(f"operator {op.kind} ({shown(op.name)}): no C kernel yet")
        ins = ", ".join(str(list(graph[n].shape)) for n in op.inputs if n and not graph[n].is_const)
        outs = ", ".join(str(list(graph[n].shape)) for n in op.outputs)
        note = f"    /* {i}: {op.kind} {c_comment(op.name)}: {ins} -> {outs}, MACs {macs(op, graph)}"
        note += ", in place */" if ctx.inplace else " */"
        try:
            bodies.append(emit(op, ctx).rstrip())
        except ScaleError as e:
            raise ModelError(f"layer #{i} {op.kind} {shown(op.name)}: {e}") from None
        calls.append(note)
    functions, bodies = share_repeated_layers(bodies, ctx.arena)
    calls = [note + ("\n" + _indent(body) if body else "") + f"\n    MCU_TRACE_LAYER({i});"
             for i, (note, body) in enumerate(zip(calls, bodies))]
    files = {
        f"{name}.h": _header(graph, plan, name, options),
        f"{name}.c": _model_source(graph, plan, name, ctx, calls, functions, options),
        f"{name}_weights.c": weights_source(name, consts, options.weights_section),
    }
    for header in sorted(with_dependencies(ctx.headers)):
        files[header] = runtime_source(header)
    io = {n: IOSpec(n, graph[n].shape, graph[n].dtype) for n in (*graph.inputs, *graph.outputs)}
    inputs, outputs = tuple(io[n] for n in graph.inputs), tuple(io[n] for n in graph.outputs)
    files.update(project_files(name, [f for f in files if f.endswith(".c")], inputs, outputs,
                               external_arena=options.arena == "external"))
    return CLibrary(name, files, plan.arena_bytes, consts.flash_bytes(), inputs, outputs, options)


def _external_pointers(graph: Graph, name: str) -> dict[str, str]:
    """C expressions of the tensors in the caller's buffers: external inputs and their aliases."""
    from ..plan.lifetimes import external_tensors
    from ..plan.planner import state_layout

    pointers = {n: f"{name}_inputs[{graph.inputs.index(n)}]" for n in graph.external}
    offsets, _ = state_layout(graph)
    pointers.update({n: f"&{name}_state.bytes[{off}]" for n, off in offsets.items()})
    for n in external_tensors(graph) - set(pointers):
        op = next(op for op in graph.ops if n in op.outputs)
        pointers[n] = pointers[op.inputs[0]]
    return pointers


def _indent(text: str) -> str:
    return "\n".join(("    " + line) if line.strip() else line for line in text.splitlines())


def _edge_macros(graph: Graph, name: str, kind: str, names: tuple[str, ...]) -> list[str]:
    upper = name.upper()
    lines = [f"#define {upper}_NUM_{kind}S {len(names)}"]
    for i, n in enumerate(names):
        t = graph[n]
        p = f"{upper}_{kind}{i}"
        lines += [f"#define {p}_TYPE {CTYPES[t.dtype]}",
                  f"#define {p}_SIZE {t.size}",
                  f"#define {p}_BYTES {t.nbytes}",
                  f"#define {p}_RANK {len(t.shape)}",
                  f"#define {p}_SHAPE {{{', '.join(str(d) for d in t.shape)}}}"]
        if t.quant is not None:
            lines += [f"#define {p}_SCALE {c_float(t.quant.s)}",
                      f"#define {p}_ZERO_POINT ({t.quant.zp})"]
    return lines


def _header(graph: Graph, plan: MemoryPlan, name: str, options: CodeOptions) -> str:
    upper = name.upper()
    external = options.arena == "external"
    lines = [f"/* {name}: generated by mcuforge {__version__}. Do not edit. */",
             f"#ifndef {upper}_H", f"#define {upper}_H", "", "#include <stddef.h>", "#include <stdint.h>", "",
             f"#define {upper}_ARENA_BYTES {plan.arena_bytes}", f"#define {upper}_ARENA_ALIGN {ARENA_ALIGN}"]
    if external:
        lines.append(f"#define {upper}_ARENA_EXTERNAL 1")
    if graph.states():
        lines.append(f"#define {upper}_STATE_BYTES {plan.state_bytes}")
    lines += _edge_macros(graph, name, "INPUT", graph.inputs)
    lines += _edge_macros(graph, name, "OUTPUT", graph.outputs)
    lines += ["", "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
              "/* Pointer to input i inside the arena (NULL if i is out of range). Write it before invoke. */",
              f"void *{name}_input(int i);",
              *_external_api(graph, name),
              "/* Pointer to output i inside the arena; valid after invoke, until the next invoke. */",
              f"void *{name}_output(int i);",
              "/* Bytes of input / output i (0 if i is out of range). */",
              f"int {name}_input_bytes(int i);", f"int {name}_output_bytes(int i);",
              *helper_declarations(graph, name, external),
              *_arena_api(name, external),
              *_state_api(graph, name),
              f"int {name}_invoke(void);", "",
              "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {upper}_H */", ""]
    return "\n".join(lines)


def _state_api(graph: Graph, name: str) -> list[str]:
    if not graph.states():
        return []
    return [f"/* The model keeps state between invokes ({name.upper()}_STATE_BYTES bytes of its own, not in the arena:",
            " * SVDF's memory, an LSTM's cell). The first invoke starts from a cleared state; reset clears it again,",
            " * e.g. before an unrelated sequence (TFLM's MicroInterpreter::Reset). */",
            f"void {name}_reset(void);"]


def _state_lines(graph: Graph, plan: MemoryPlan, name: str) -> list[str]:
    """The state buffer, its reset (each state tensor filled with its zero point, as TFLM's
    ResetVariableTensors does) and the flag that makes the first invoke reset it."""
    if not graph.states():
        return []
    fills = []
    for n, off in plan.state_offsets.items():
        t = graph[n]
        zp = t.quant.zp if t.quant is not None else 0
        ctype = CTYPES[t.dtype]
        if zp == 0 or t.dtype == "int8":
            fills.append(f"    memset(&{name}_state.bytes[{off}], {zp}, {t.nbytes}); /* {c_comment(n, 60)} */")
        else:
            fills += [f"    {{ /* {c_comment(n, 60)} */", f"        {ctype} *const s = ({ctype} *)(void *)&{name}_state.bytes[{off}];",
                      "        int32_t i;", f"        for (i = 0; i < {t.size}; ++i) s[i] = ({ctype})({zp});", "    }"]
    return [f"static union {{ int8_t bytes[{plan.state_bytes}]; int64_t align_i; double align_d; }} {name}_state;",
            f"static int {name}_state_ready;", f"void {name}_reset(void) {{", *fills,
            f"    {name}_state_ready = 1;", "}"]


def _arena_api(name: str, external: bool) -> list[str]:
    upper = name.upper()
    if not external:
        return ["/* Runs the model once; returns 0. */"]
    return [f"/* The arena is the caller's (compiled with --arena external): hand over {upper}_ARENA_BYTES bytes or",
            f" * more, aligned to {upper}_ARENA_ALIGN, before the first invoke. Returns 0, or -1 (buf is NULL), -2 (not",
            " * aligned), -3 (size too small); then the previous arena, if any, stays. Models run one after",
            " * the other may share one buffer sized for the largest; inputs and outputs live in it, so read",
            " * a model's outputs before another model runs. Inputs and outputs are NULL until an arena is set. */",
            f"int {name}_set_arena(void *buf, size_t size);",
            "/* Runs the model once; returns 0, or -1 if no arena was set. */"]


def _external_api(graph: Graph, name: str) -> list[str]:
    if not graph.external:
        return []
    which = ", ".join(str(graph.inputs.index(n)) for n in graph.external)
    return [f"/* Input(s) {which} are read from the caller's buffer, outside the arena (compiled with external",
            " * inputs): point input i at your data (e.g. a camera frame) before invoke; the model never writes",
            f" * it. Until then {name}_input(i) is a static buffer of the model's own, left out when compiled",
            f" * with -D{name.upper()}_NO_INPUT_BUFFERS. */",
            f"void {name}_set_input(int i, const void *data);"]


def _input_buffers(graph: Graph, name: str) -> list[str]:
    """The model's own buffers for external inputs (optional) and the call that points an input elsewhere."""
    if not graph.external:
        return []
    lines = [f"#ifndef {name.upper()}_NO_INPUT_BUFFERS"]
    for i, n in enumerate(graph.inputs):
        if n in graph.external:
            lines.append(f"static union {{ {CTYPES[graph[n].dtype]} v[{max(graph[n].size, 1)}]; int64_t align_i; }} "
                         f"{name}_input_buffer{i}_u;")
            lines.append(f"#define {name}_input_buffer{i} ({name}_input_buffer{i}_u.v)")
    lines.append("#else")
    lines += [f"#define {name}_input_buffer{i} 0" for i, n in enumerate(graph.inputs) if n in graph.external]
    return lines + ["#endif"]


def _input_setter(graph: Graph, name: str) -> list[str]:
    if not graph.external:
        return []
    which = " || ".join(f"i == {graph.inputs.index(n)}" for n in graph.external)
    return [f"void {name}_set_input(int i, const void *data) {{",
            f"    if ({which}) {name}_inputs[i] = (void *)(uintptr_t)data;", "}"]


def _arena_lines(plan: MemoryPlan, name: str, options: CodeOptions) -> list[str]:
    """The arena's definition: the library's static buffer (optionally in a linker section), or the
    pointer to the caller's buffer and the call that sets it."""
    upper = name.upper()
    if options.arena == "static":
        place = ""
        lines: list[str] = []
        if options.arena_section:
            lines = ["#if defined(__GNUC__) || defined(__clang__)",
                     f'#define {upper}_ARENA_PLACE __attribute__((section("{options.arena_section}")))',
                     "#else", f"#define {upper}_ARENA_PLACE", "#endif"]
            place = f" {upper}_ARENA_PLACE"
        return lines + [f"static union {{ int8_t bytes[{max(plan.arena_bytes, 1)}]; int64_t align_i; "
                        f"double align_d; }} {name}_arena{place};"]
    return [f"static int8_t *{name}_arena_base; /* the caller's buffer ({name}_set_arena) */",
            f"int {name}_set_arena(void *buf, size_t size) {{",
            "    if (buf == 0) return -1;",
            f"    if ((uintptr_t)buf % {upper}_ARENA_ALIGN != 0) return -2;",
            f"    if (size < (size_t){upper}_ARENA_BYTES) return -3;",
            f"    {name}_arena_base = (int8_t *)buf;",
            "    return 0;", "}"]


def _model_source(graph: Graph, plan: MemoryPlan, name: str, ctx: EmitContext, calls: list[str],
                  functions: list[str], options: CodeOptions) -> str:
    kernels = [f'#include "{h}"' for h in sorted(ctx.headers)]
    externs = [f"extern const {ct} {ident}[{max(v.size, 1)}];" for ident, (ct, v) in ctx.consts.arrays.items()]
    static = options.arena == "static"

    def table(kind: str, names: tuple[str, ...]) -> list[str]:
        count = len(names)
        sizes = ", ".join(str(graph[n].nbytes) for n in names) or "0"
        lines = [f"static const int {name}_{kind}_sizes[{max(count, 1)}] = {{{sizes}}};"]
        caller = [kind == "input" and n in graph.external for n in names]  # in the caller's buffer
        if static or any(caller):
            ptrs = ", ".join(f"{name}_input_buffer{i}" if c else (f"&{name}_arena.bytes[{plan.offsets[n]}]"
                                                                  if static else "0")
                             for i, (n, c) in enumerate(zip(names, caller))) or "0"
            const = "" if any(caller) else "const "
            lines.append(f"static void *{const}{name}_{kind}s[{max(count, 1)}] = {{{ptrs}}};")
        if static:
            get = f"{name}_{kind}s[i]"
        else:
            offsets = ", ".join(str(-1 if c else plan.offsets[n]) for n, c in zip(names, caller)) or "0"
            lines.append(f"static const int32_t {name}_{kind}_offsets[{max(count, 1)}] = {{{offsets}}};")
            get = (f"{name}_{kind}_offsets[i] < 0 ? {name}_{kind}s[i] : " if any(caller) else "") + \
                f"({name}_arena_base ? (void *)({name}_arena_base + {name}_{kind}_offsets[i]) : 0)"
        return lines + [
            f"void *{name}_{kind}(int i) {{ return (i >= 0 && i < {count}) ? {get} : 0; }}",
            f"int {name}_{kind}_bytes(int i) {{ return (i >= 0 && i < {count}) ? {name}_{kind}_sizes[i] : 0; }}"]

    base = f"{name}_arena.bytes" if static else f"{name}_arena_base"
    prologue = [] if static else [f"    int8_t *const mcu_arena = {name}_arena_base;",
                                  "    if (mcu_arena == 0) return -1;"]
    if graph.states():
        prologue.append(f"    if (!{name}_state_ready) {name}_reset();")
    lines = [f"/* {name}: generated by mcuforge {__version__}. Do not edit.",
             f" * Arena {plan.arena_bytes} bytes (lower bound {plan.lower_bound}); "
             f"{len(graph.ops)} layers. */",
             f'#include "{name}.h"', *kernels, "", *externs, "", *_arena_lines(plan, name, options), *_state_lines(graph, plan, name), "",
             *_input_buffers(graph, name), *table("input", graph.inputs), *_input_setter(graph, name),
             *table("output", graph.outputs), *helper_definitions(graph, name), "",
             "/* Debug builds (-DMCUFORGE_TRACE) call a hook after every layer, e.g. to compare layers. */",
             "#ifdef MCUFORGE_TRACE", f"void (*{name}_trace_hook)(int layer) = 0;",
             f"void *{name}_trace_arena(void) {{ return {base}; }}",
             f"#define MCU_TRACE_LAYER(i) do {{ if ({name}_trace_hook) {name}_trace_hook(i); }} while (0)",
             "#else", "#define MCU_TRACE_LAYER(i) ((void)0)", "#endif", "", *functions,
             f"int {name}_invoke(void) {{", *prologue, *calls, "    return 0;", "}", ""]
    return "\n".join(lines)
