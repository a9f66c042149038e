"""Cortex-M builds: a generated C library + our startup, linker script and semihosting harness, compiled
with arm-none-eabi-gcc into an ELF for QEMU's MPS2 boards. Builds are cached by a hash of the sources,
the flags and the compiler version, like the host target's."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Sequence

from ...engine.codegen import CLibrary
from ...errors import BuildError
from ..host import cache_dir as host_cache_dir


@dataclass(frozen=True)
class Core:
    """A Cortex-M core as mcuforge builds for it and QEMU emulates it."""

    name: str
    machine: str  # QEMU board
    cflags: tuple[str, ...]


CORES: dict[str, Core] = {
    # MPS2 AN386: Cortex-M4 with the single-precision FPv4 unit.
    "cortex-m4": Core("cortex-m4", "mps2-an386",
                      ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")),
    # MPS2 AN500: Cortex-M7; single-precision FPv5 as on an STM32F746.
    "cortex-m7": Core("cortex-m7", "mps2-an500",
                      ("-mcpu=cortex-m7", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard")),
}

GCC = "arm-none-eabi-gcc"
TARGET_FLAGS = ("-mthumb", "-ffunction-sections", "-fdata-sections", "-ffp-contract=off", "-fno-common")
MODEL_WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
HARNESS_OPT = "-O2"  # the harness and startup do not change with the model's -O level
SUPPORT_FILES = ("startup.c", "harness.c", "mcu_semihost.h", "mps2.ld")
MARKER_END = "mcu_bench_done"
MARKER_LAYER = "mcu_layer_mark"  # trace builds: the harness's per-layer hook
TRACE_DEFINE = "-DMCUFORGE_TRACE"


def core(name: str) -> Core:
    try:
        return CORES[name]
    except KeyError:
        raise ValueError(f"unknown core {name!r} (choose {', '.join(CORES)})") from None


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BuildError(f"{name} not found: install the Arm toolchain and QEMU, e.g. on Debian/Ubuntu "
                         "`apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi "
                         "qemu-system-arm`")
    return path


def toolchain_missing() -> str | None:
    """None when arm-none-eabi-gcc and qemu-system-arm are both installed, else what is missing."""
    missing = [t for t in (GCC, "qemu-system-arm") if shutil.which(t) is None]
    return ", ".join(missing) + " not installed" if missing else None


@lru_cache(maxsize=None)
def gcc_version() -> str:
    return subprocess.run([tool(GCC), "--version"], capture_output=True, text=True).stdout.split("\n")[0]


def support_source(fname: str) -> str:
    return resources.files(__package__).joinpath(fname).read_text()


def cache_dir() -> Path:
    return host_cache_dir().parent / "cortex-m"


@dataclass(frozen=True)
class Build:
    """A built ELF and what was learned about it at build time."""

    folder: Path
    core: Core
    opt: str
    invoke_addr: int  # first instruction of <name>_invoke
    done_addr: int  # the instruction right after the harness's call to it
    mark_addr: int | None = None  # trace builds: the hook the model calls after every layer

    @property
    def elf(self) -> Path:
        return self.folder / "model.elf"

    def objects(self) -> list[Path]:
        return sorted(self.folder.glob("*.o"))


def _run(cmd: Sequence[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def symbol_addresses(elf: Path, names: Sequence[str]) -> dict[str, int]:
    """Addresses of global symbols from arm-none-eabi-nm (Thumb bit cleared)."""
    out = _run([tool("arm-none-eabi-nm"), str(elf)], elf.parent, "arm-none-eabi-nm")
    found: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in names:
            found[parts[2]] = int(parts[0], 16) & ~1
    missing = [n for n in names if n not in found]
    if missing:
        raise BuildError(f"{elf}: symbols {missing} not found")
    return found


def _compile_all(lib: CLibrary, c: Core, opt: str, work: Path, trace: bool) -> None:
    gcc = tool(GCC)
    traced = (TRACE_DEFINE,) if trace else ()
    model_flags = (*TARGET_FLAGS, *c.cflags, *MODEL_WARNINGS, *opt.split(), *traced)
    defines = (f"-DMCU_MODEL={lib.name}", f'-DMCU_MODEL_HEADER="{lib.name}.h"',
               f"-DMCU_NUM_INPUTS={len(lib.inputs)}", f"-DMCU_NUM_OUTPUTS={len(lib.outputs)}",
               *([f"-DMCU_ARENA_BYTES={lib.arena_bytes}"] if lib.options.arena == "external" else []))
    for src in lib.sources:
        _run([gcc, *model_flags, "-I.", "-c", src, "-o", Path(src).stem + ".o"], work, f"{GCC} on '{src}'")
    support_flags = (*TARGET_FLAGS, *c.cflags, *MODEL_WARNINGS, HARNESS_OPT, "-I.", *traced)
    _run([gcc, *support_flags, *defines, "-c", "harness.c", "-o", "mcu_harness.o"], work, f"{GCC} on harness.c")
    _run([gcc, *support_flags, "-c", "startup.c", "-o", "mcu_startup.o"], work, f"{GCC} on startup.c")
    objects = [Path(s).stem + ".o" for s in lib.sources] + ["mcu_harness.o", "mcu_startup.o"]
    _run([gcc, *TARGET_FLAGS, *c.cflags, "-nostartfiles", "--specs=nano.specs", "-T", "mps2.ld",
          "-Wl,--gc-sections", "-Wl,-Map=model.map", "-o", "model.elf", *objects, "-lc", "-lgcc"],
         work, f"{GCC} (link)")


def build(lib: CLibrary, core_name: str = "cortex-m7", opt: str = "-O2", trace: bool = False) -> Build:
    """Builds (or finds in the cache) the ELF of `lib` for a core; `opt`: the model's optimisation flags
    (e.g. "-Os", or "-Os -DMCU_SMALL_CODE"). `trace`: the model calls the harness's
    mcu_layer_mark after every layer (-DMCUFORGE_TRACE), for per-layer instruction counts."""
    c = core(core_name)
    support = {f: support_source(f) for f in SUPPORT_FILES}
    files = dict(lib.code, **support)  # the C only: no build-system files, no example main()
    key = hashlib.sha256("\0".join(["cortex-m-v1", c.name, *c.cflags, opt, str(trace), gcc_version(),
                                    *(f"{k}\0{v}" for k, v in sorted(files.items()))]).encode()).hexdigest()[:20]
    out = cache_dir() / key
    meta_path = out / "build.json"
    if not meta_path.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="build-", dir=out.parent))
        try:
            for fname, text in files.items():
                (work / fname).write_text(text)
            _compile_all(lib, c, opt, work, trace)
            names = [f"{lib.name}_invoke", MARKER_END, *([MARKER_LAYER] if trace else [])]
            marks = symbol_addresses(work / "model.elf", names)
            (work / "build.json").write_text(json.dumps({"invoke": marks[names[0]], "done": marks[MARKER_END],
                                                         "mark": marks.get(MARKER_LAYER)}))
            try:
                work.rename(out)
            except OSError:  # another process built the same thing first
                pass
        finally:
            shutil.rmtree(work, ignore_errors=True)
    meta = json.loads(meta_path.read_text())
    return Build(out, c, opt, meta["invoke"], meta["done"], meta.get("mark"))
