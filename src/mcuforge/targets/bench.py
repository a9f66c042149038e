"""Speed benchmark: exact instruction counts per inference, ours against TFLM's, and code size.

Counts, never wall time: on the host, valgrind's callgrind counts the x86 instructions executed inside
`<name>_invoke` of the generated C (built at -O2 with the host harness) and inside TFLM's
`tflite::micro::MicroInterpreter::Invoke()` (pip `tflite-micro`, driven from Python, inclusive cost
divided by the number of invokes); on Cortex-M4/M7 the QEMU plugin of `targets.cortex_m` counts the
instructions inside `<name>_invoke`. All are deterministic for a fixed input: every model runs on the
same seeded random input (`verify.random_inputs(graph, 1, seed=0)`) in every engine.

    mcuforge bench MODEL... [--json]        the CLI front end (add_bench_arguments / run_bench)
    mcuforge bench MODEL --layers [--core]  per-layer Cortex-M counts (trace build, plugin marks)
    python bench/speed.py                   every dev model -> docs/speed.md and docs/speed.png
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..engine.codegen import CLibrary
from ..errors import McuforgeError
from ..ir import NUMPY_DTYPES, Graph

TFLM_INVOKE = "tflite::micro::MicroInterpreter::Invoke()"  # demangled: _ZN6tflite5micro16MicroInterpreter6InvokeEv
SEED = 0
TFLM_INVOKES = 2
SPEED_OPT = "-O2"
SIZE_OPT = "-Os"
JSON_FIELDS = ("model", "macs", "x86_instructions", "tflm_x86_instructions", "ratio", "m4_instructions",
               "m7_instructions", "m4_per_mac", "m7_per_mac", "m7_instructions_os", "m7_instructions_o0",
               "m7_os_ratio", "m7_o0_ratio", "m7_code_bytes", "m7_code_bytes_o2")


class BenchError(McuforgeError):
    """A measurement failed (the tool ran but gave no usable count)."""

    exit_code = 5


class MissingTool(BenchError):
    """A tool the measurement needs (valgrind, tflite-micro, the Arm toolchain, QEMU) is not installed."""


# ---------------------------------------------------------------------------------------- callgrind

def valgrind() -> str:
    path = shutil.which("valgrind")
    if not path:
        raise MissingTool("valgrind is not installed (apt-get install valgrind): no x86 instruction counts")
    return path


def _totals(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise BenchError(f"{path}: no 'totals:' line in the callgrind output")


def callgrind(cmd: Sequence[str], symbol: str, *, stdin: bytes = b"", per_call: bool = False,
              instr_atstart: bool = True) -> list[int]:
    """Instructions executed inside `symbol` (inclusive of its callees) while running `cmd` under callgrind:
    one total, or with `per_call` one count per call of `symbol` (a dump after each call)."""
    with tempfile.TemporaryDirectory(prefix="mcuforge-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        args = [valgrind(), "--tool=callgrind", f"--callgrind-out-file={out}", f"--toggle-collect={symbol}"]
        if per_call:
            args.append(f"--dump-after={symbol}")
        if not instr_atstart:
            args.append("--instr-atstart=no")
        proc = subprocess.run([*args, *cmd], input=stdin, capture_output=True, check=False)
        if proc.returncode != 0:
            raise BenchError(f"{cmd[0]} under callgrind exited with {proc.returncode}:\n"
                             + proc.stderr.decode(errors="replace")[-3000:])
        if not per_call:
            counts = [_totals(out)]
        else:
            dumps = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
            counts = [_totals(p) for p in dumps]
    if not counts or not all(counts):
        raise BenchError(f"callgrind counted nothing inside '{symbol}': the function was not called, or its "
                         "symbol is missing from the binary")
    return counts


# ------------------------------------------------------------------------------------ our x86 code

def x86_instructions(lib: CLibrary, inputs: Sequence[np.ndarray] | None = None, opt: str = SPEED_OPT) -> int:
    """x86 instructions of one `<name>_invoke()` of the generated C, built for this host at `opt`.
    `inputs` default to zeros (counts can depend a little on the data: pass the same input to compare)."""
    from .host import build_executable

    if inputs is None:
        inputs = [np.zeros(s.shape, NUMPY_DTYPES[s.dtype]) for s in lib.inputs]
    exe = build_executable(lib, opt=opt)
    payload = b"".join(np.ascontiguousarray(x, NUMPY_DTYPES[s.dtype]).tobytes() for s, x in zip(lib.inputs, inputs))
    return callgrind([str(exe)], f"{lib.name}_invoke", stdin=payload)[0]


# ------------------------------------------------------------------------------------------- TFLM

_TFLM_DRIVER = """
import ctypes, sys
import numpy as np
from tflite_micro import runtime
model, invokes, hook = sys.argv[1], int(sys.argv[2]), sys.argv[3]
it = runtime.Interpreter.from_bytes(open(model, "rb").read(), arena_size=16 << 20)
for i, path in enumerate(sys.argv[4:]):
    it.set_input(np.load(path), i)
if hook:
    ctypes.CDLL(hook).mcuforge_callgrind_start()
for _ in range(invokes):
    it.invoke()
"""

_START_SOURCE = """#include <valgrind/callgrind.h>
void mcuforge_callgrind_start(void) { CALLGRIND_START_INSTRUMENTATION; }
"""


def _instrumentation_hook() -> str:
    """A tiny shared library whose one function turns callgrind's instrumentation on, so that Python's own
    start-up runs uninstrumented (about 3x faster; the counts are the same). '' when valgrind's header is
    not installed: the driver then runs instrumented from the start."""
    from .host import cache_dir, compiler

    key = hashlib.sha256(_START_SOURCE.encode()).hexdigest()[:12]
    lib = cache_dir().parent / "bench" / f"callgrind_start_{key}.so"
    if lib.exists():
        return str(lib)
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mcuforge-cg-", dir=lib.parent) as tmp:
        src = Path(tmp) / "start.c"
        src.write_text(_START_SOURCE)
        proc = subprocess.run([compiler(), "-O1", "-shared", "-fPIC", "-o", str(Path(tmp) / "s.so"), str(src)],
                              capture_output=True, check=False)
        if proc.returncode != 0:
            return ""
        (Path(tmp) / "s.so").replace(lib)
    return str(lib)


def tflm_invoke_costs(tflite_bytes: bytes, inputs: Sequence[np.ndarray] | None = None,
                      invokes: int = TFLM_INVOKES) -> list[int]:
    """Inclusive callgrind cost of each of `invokes` calls of TFLM's MicroInterpreter::Invoke() on the
    model (pip tflite-micro, reference kernels), after one AllocateTensors."""
    if importlib.util.find_spec("tflite_micro") is None:
        raise MissingTool("tflite-micro is not installed (pip install tflite-micro): no TFLM counts")
    hook = _instrumentation_hook()
    with tempfile.TemporaryDirectory(prefix="mcuforge-tflm-") as tmp:
        model = Path(tmp) / "model.tflite"
        model.write_bytes(tflite_bytes)
        paths = []
        for i, x in enumerate(inputs or ()):
            paths.append(str(Path(tmp) / f"input{i}.npy"))
            np.save(paths[-1], np.asarray(x))
        cmd = [sys.executable, "-c", _TFLM_DRIVER, str(model), str(invokes), hook, *paths]
        return callgrind(cmd, TFLM_INVOKE, per_call=True, instr_atstart=not hook)


def tflm_x86_instructions(tflite_bytes: bytes, inputs: Sequence[np.ndarray] | None = None,
                          invokes: int = TFLM_INVOKES) -> int:
    """x86 instructions per inference of TFLM: inclusive cost of MicroInterpreter::Invoke() summed over
    `invokes` calls and divided by their number (rounded). Inputs default to TFLM's zeroed tensors."""
    costs = tflm_invoke_costs(tflite_bytes, inputs, invokes)
    return round(sum(costs) / len(costs))


# -------------------------------------------------------------------------------------- Cortex-M

def _cortex_m_model(lib: CLibrary, core: str, opt: str, trace: bool = False):
    try:
        from .cortex_m import CortexMModel, toolchain_missing
    except ImportError as e:
        raise MissingTool(f"no Cortex-M target in this mcuforge ({e})") from None
    missing = toolchain_missing()
    if missing:
        raise MissingTool(f"{missing} (apt-get install --no-install-recommends gcc-arm-none-eabi "
                          "libnewlib-arm-none-eabi qemu-system-arm)")
    return CortexMModel.build(lib, core=core, opt=opt, trace=trace)


def cortex_m_instructions(lib: CLibrary, inputs: Sequence[np.ndarray], core: str, opt: str = SPEED_OPT) -> int:
    """Instructions executed inside one `<name>_invoke()` on `core` ('cortex-m4', 'cortex-m7'), built at
    `opt` and counted in QEMU by mcuforge's TCG plugin."""
    return int(_cortex_m_model(lib, core, opt).count_instructions(list(inputs)))


def cortex_m_code_bytes(lib: CLibrary, core: str = "cortex-m7", opt: str = SIZE_OPT) -> int:
    """Flash of the model without its weights built for `core` at `opt`: the code of the generated calls
    and kernels (.text) plus its small constant tables and initialised data (harness and libc excluded)."""
    return int(_cortex_m_model(lib, core, opt).size_report().model_code_bytes)


def cortex_m_layer_instructions(lib: CLibrary, inputs: Sequence[np.ndarray], core: str,
                                opt: str = SPEED_OPT) -> list[int]:
    """Instructions of each layer of one inference on `core`, in graph order: a trace build (the model
    calls a hook after every layer) counted by the QEMU plugin mark to mark. The sum is the trace build's
    total, within about 1 % of the normal build's count."""
    return _cortex_m_model(lib, core, opt, trace=True).count_layer_instructions(list(inputs))


def bench_layers(path: str | Path, core: str = "cortex-m7", weights: str | None = None) -> list[dict]:
    """Per-layer Cortex-M instruction counts of one .tflite model (`mcuforge bench --layers`): one dict per
    layer with its index, operator, output shape, MACs and instructions; `weights` as compile --weights."""
    from ..engine.opinfo import macs
    from ..ir.formats import choose_formats
    from ..pipeline import compile_model, load_model
    from ..verify import random_inputs

    path = Path(path)
    graph = load_model(path)
    if weights is not None:
        graph = choose_formats(graph, weights)
    compiled = compile_model(graph)
    counts = cortex_m_layer_instructions(compiled.lib, random_inputs(graph, 1, seed=SEED)[0], core)
    if len(counts) != len(graph.ops):
        raise BenchError(f"{path.name}: the plugin saw {len(counts)} layer marks, the model has {len(graph.ops)} layers")
    rows = []
    for i, (op, n) in enumerate(zip(graph.ops, counts)):
        m = macs(op, graph)
        rows.append({"model": path.stem, "core": core, "layer": i, "op": op.kind,
                     "output_shape": list(graph[op.outputs[0]].shape), "macs": m, "instructions": n,
                     "per_mac": n / m if m else None})
    return rows


# ---------------------------------------------------------------------------------------- models

@dataclass
class BenchResult:
    model: str
    macs: int
    x86_instructions: int | None = None
    tflm_x86_instructions: int | None = None
    m4_instructions: int | None = None
    m7_instructions: int | None = None  # at SPEED_OPT (-O2), as every count above
    m7_instructions_os: int | None = None  # the same build at -Os
    m7_instructions_o0: int | None = None  # and at -O0
    m7_code_bytes: int | None = None  # at SIZE_OPT (-Os)
    m7_code_bytes_o2: int | None = None
    notes: list[str] = field(default_factory=list)  # why a field is None

    @property
    def ratio(self) -> float | None:
        """How many times fewer x86 instructions than TFLM (TFLM / ours)."""
        if self.x86_instructions and self.tflm_x86_instructions:
            return self.tflm_x86_instructions / self.x86_instructions
        return None

    def per_mac(self, count: int | None) -> float | None:
        return count / self.macs if count is not None and self.macs else None

    def as_json(self) -> dict:
        d = asdict(self)
        d.update(ratio=self.ratio, x86_per_mac=self.per_mac(self.x86_instructions),
                 tflm_x86_per_mac=self.per_mac(self.tflm_x86_instructions),
                 m4_per_mac=self.per_mac(self.m4_instructions), m7_per_mac=self.per_mac(self.m7_instructions),
                 m7_os_ratio=_over(self.m7_instructions_os, self.m7_instructions),
                 m7_o0_ratio=_over(self.m7_instructions_o0, self.m7_instructions))
        return d


def _over(a: int | None, b: int | None) -> float | None:
    return a / b if a is not None and b else None


def _measure(result: BenchResult, key: str, fn, *args) -> None:
    try:
        setattr(result, key, fn(*args))
    except MissingTool as e:
        result.notes.append(f"{key}: {e}")


def bench_graph(graph: Graph, tflite_bytes: bytes | None = None, *, name: str | None = None,
                cortex_m: bool = True, tflm_invokes: int = TFLM_INVOKES) -> BenchResult:
    from ..pipeline import compile_model
    from ..verify import random_inputs

    compiled = compile_model(graph, name)
    inputs = random_inputs(graph, 1, seed=SEED)[0]
    result = BenchResult(name or graph.name, compiled.report.macs)
    _measure(result, "x86_instructions", x86_instructions, compiled.lib, inputs)
    if tflite_bytes is not None:
        _measure(result, "tflm_x86_instructions", tflm_x86_instructions, tflite_bytes, inputs, tflm_invokes)
    if cortex_m:
        _measure(result, "m4_instructions", cortex_m_instructions, compiled.lib, inputs, "cortex-m4")
        _measure(result, "m7_instructions", cortex_m_instructions, compiled.lib, inputs, "cortex-m7")
        _measure(result, "m7_instructions_os", cortex_m_instructions, compiled.lib, inputs, "cortex-m7", SIZE_OPT)
        _measure(result, "m7_instructions_o0", cortex_m_instructions, compiled.lib, inputs, "cortex-m7", "-O0")
        _measure(result, "m7_code_bytes", cortex_m_code_bytes, compiled.lib, "cortex-m7")
        _measure(result, "m7_code_bytes_o2", cortex_m_code_bytes, compiled.lib, "cortex-m7", SPEED_OPT)
    return result


def bench_model(path: str | Path, *, cortex_m: bool = True, tflm_invokes: int = TFLM_INVOKES,
                weights: str | None = None) -> dict:
    """Every speed figure of one .tflite model as a JSON-ready dict (None where a tool is missing; the
    'notes' list says which). `weights`: the weight format, as compile --weights (TFLM runs the file)."""
    from ..ir.formats import choose_formats
    from ..pipeline import load_model

    path = Path(path)
    graph = load_model(path)
    if weights is not None:
        graph = choose_formats(graph, weights)
    name = path.stem if weights is None else f"{path.stem} ({weights})"
    return bench_graph(graph, path.read_bytes(), name=name, cortex_m=cortex_m, tflm_invokes=tflm_invokes).as_json()


# ------------------------------------------------------------------------------------------- CLI

def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cli.argtypes import parse_positive

    parser.add_argument("model", nargs="+", help="int8 .tflite model(s)")
    parser.add_argument("--json", action="store_true", help="one JSON object per model per line")
    parser.add_argument("--no-cortex-m", dest="cortex_m", action="store_false",
                        help="skip the Cortex-M4/M7 counts and code size (QEMU, arm-none-eabi-gcc)")
    parser.add_argument("--tflm-invokes", type=parse_positive, default=TFLM_INVOKES,
                        help=f"TFLM invokes to average over (default {TFLM_INVOKES})")
    parser.add_argument("--layers", action="store_true",
                        help="instead: instructions of every layer on a Cortex-M core (QEMU plugin, trace build)")
    parser.add_argument("--core", choices=("cortex-m4", "cortex-m7"), default="cortex-m7",
                        help="the core of --layers (default cortex-m7)")
    from ..ir.formats import CHOICES

    parser.add_argument("--weights", choices=CHOICES, help="the weights' format, as compile --weights (int8, int4 "
                        "or auto; default: as the model file stores them): instructions per format")


def _fmt(value: float | None, spec: str = ",") -> str:
    return "-" if value is None else format(value, spec)


def _run_layers(args: argparse.Namespace, console) -> int:
    from rich.markup import escape
    from rich.table import Table

    for path in args.model:
        rows = bench_layers(path, args.core, args.weights)
        if args.json:
            for row in rows:
                print(json.dumps(row), flush=True)
            continue
        total = sum(r["instructions"] for r in rows)
        total_macs = sum(r["macs"] for r in rows)
        t = Table(title=f"{escape(Path(path).stem)}: {args.core} instructions per layer (exact counts, QEMU plugin; "
                        f"trace build, {total:,} in all, {total / max(total_macs, 1):.2f} per MAC)",
                  title_justify="left")
        for col in ("#", "op", "output", "MACs", "instructions", "per MAC", "share"):
            t.add_column(col, justify="left" if col in ("op", "output") else "right")
        for r in rows:
            t.add_row(str(r["layer"]), r["op"], "x".join(map(str, r["output_shape"])), _fmt(r["macs"]),
                      _fmt(r["instructions"]), _fmt(r["per_mac"], ".2f"),
                      f"{100 * r['instructions'] / max(total, 1):.1f} %")
        console.print(t)
    return 0


def run_bench(args: argparse.Namespace, console) -> int:
    from rich.markup import escape
    from rich.table import Table

    if getattr(args, "layers", False):
        return _run_layers(args, console)
    rows = []
    for path in args.model:
        row = bench_model(path, cortex_m=args.cortex_m, tflm_invokes=args.tflm_invokes, weights=args.weights)
        if args.json:
            print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        return 0
    t = Table(title="instructions per inference (exact counts: callgrind on x86, QEMU plugin on Cortex-M)",
              title_justify="left")
    for col in ("model", "MACs", "x86 ours -O2", "x86 TFLM", "TFLM/ours", "M4 -O2", "M4/MAC", "M7 -O2", "M7/MAC",
                "M7 -Os/-O2", "M7 -O0/-O2", "M7 code -Os", "M7 code -O2"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        t.add_row(escape(r["model"]), _fmt(r["macs"]), _fmt(r["x86_instructions"]), _fmt(r["tflm_x86_instructions"]),
                  _fmt(r["ratio"], ".1f"), _fmt(r["m4_instructions"]), _fmt(r["m4_per_mac"], ".2f"),
                  _fmt(r["m7_instructions"]), _fmt(r["m7_per_mac"], ".2f"), _fmt(r["m7_os_ratio"], ".2f"),
                  _fmt(r["m7_o0_ratio"], ".2f"), _fmt(r["m7_code_bytes"]), _fmt(r["m7_code_bytes_o2"]))
    console.print(t)
    for r in rows:
        for note in r["notes"]:
            console.print(f"{r['model']}: {note}", markup=False)
    return 0
