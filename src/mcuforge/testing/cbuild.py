"""Cheap host builds of many generated C libraries, for fuzzing.

C builds dominate a fuzz run, so this builder does three things `targets.host` does not:
- the "fast" profile compiles at -O0 as it is (-DMCU_KEEP_OPT_LEVEL: the kernels are neither raised to
  -O2 nor forced inline, see runtime/mcu_build.h): the same C semantics, 10-60x faster to compile than the release profile (-O2, every kernel
  inlined into every call), and the sanitizers stay affordable (mcunet: 0.5 s instead of 31 s);
- object files are cached by content: every library is generated under one name, so mutants whose
  model code (or weights) did not change share the object file; only the link is per mutant;
- one harness executable per library runs all samples in one process (a crash or a sanitizer report
  kills only that process), with a time limit.
The "release" profile (-O2, forced inlining, as users build) is available for spot checks.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..engine.codegen import CLibrary
from ..ir import NUMPY_DTYPES
from ..targets.host import SANITIZE, WARNINGS, compiler, input_bytes

PROFILES = {"fast": ("-O0", "-DMCU_KEEP_OPT_LEVEL"), "release": ("-O2",)}
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:allocator_may_return_null=1",
                 "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


def harness(name: str) -> str:
    """main(argc, argv): argv[1] samples; per sample read every input from stdin, invoke, write outputs."""
    up = name.upper()
    return f"""#include <stdio.h>
#include <stdlib.h>
#include "{name}.h"

int main(int argc, char **argv) {{
    int s, i, samples = argc > 1 ? atoi(argv[1]) : 1;
    for (s = 0; s < samples; ++s) {{
        for (i = 0; i < {up}_NUM_INPUTS; ++i) {{
            size_t n = (size_t){name}_input_bytes(i);
            if (fread({name}_input(i), 1, n, stdin) != n) return 2;
        }}
        if ({name}_invoke() != 0) return 3;
        for (i = 0; i < {up}_NUM_OUTPUTS; ++i) fwrite({name}_output(i), 1, (size_t){name}_output_bytes(i), stdout);
    }}
    return 0;
}}
"""


@dataclass
class RunResult:
    status: str  # ok, build_error, sanitizer, crash, hang
    detail: str = ""
    where: str = ""  # sanitizer reports: the C function and file:line
    outputs: list[list[np.ndarray]] = field(default_factory=list)  # per sample, per output


def unlimited_memory() -> None:
    """In a child process: lift a soft address-space limit the fuzzing worker set on itself (ASan reserves
    terabytes of address space; the compiler needs what it needs)."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def _key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:24]


_ASAN_FRAME = re.compile(r"#\d+ 0x[0-9a-f]+ in (\S+) (?:\S*/)?([^/\s]+:\d+)")
_UBSAN_AT = re.compile(r"(?:\S*/)?([^/\s]+:\d+):\d+: runtime error: (.*)")


def _sanitizer_report(stderr: str) -> tuple[str, str] | None:
    """(where, what) of the first sanitizer report in a harness's stderr."""
    m = _UBSAN_AT.search(stderr)
    if m:
        return m.group(1), f"runtime error: {m.group(2).strip()}"[:300]
    k = stderr.find("ERROR: AddressSanitizer")
    if k < 0:
        k = stderr.find("ERROR: LeakSanitizer")
    if k < 0:
        return None
    what = stderr[k:].splitlines()[0].strip()
    what = re.sub(r" on address 0x[0-9a-f]+.*", "", what)
    frames = [f"{fn} {loc}" for fn, loc in _ASAN_FRAME.findall(stderr[k:]) if not fn.startswith("__")]
    return (frames[0] if frames else ""), what[:300]


class Builder:
    """Builds and runs libraries in `workdir` (a private temporary folder when None)."""

    def __init__(self, workdir: str | Path | None = None, *, sanitize: bool = False, profile: str = "fast",
                 run_timeout: float = 60.0, build_timeout: float = 300.0) -> None:
        self._tmp = None if workdir else tempfile.mkdtemp(prefix="mcuforge-fuzz-")
        self.root = Path(workdir or self._tmp)
        self.root.mkdir(parents=True, exist_ok=True)
        self.sanitize = sanitize
        self.flags = (*WARNINGS, *PROFILES[profile], *(SANITIZE if sanitize else ()))
        self.cc = compiler()
        self.run_timeout, self.build_timeout = run_timeout, build_timeout
        self.compiled = self.reused = 0

    def close(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _objects(self, lib: CLibrary) -> list[Path]:
        """Object files of the library and its harness, compiling those not in the cache."""
        code = lib.code  # the C only: no build-system files, no example main()
        headers = "".join(f"{n}\0{t}" for n, t in sorted(code.items()) if not n.endswith(".c"))
        units = {n: t for n, t in code.items() if n.endswith(".c")}
        units["fuzz_main.c"] = harness(lib.name)
        flags = "\0".join(self.flags)
        objs = {n: self.root / "obj" / f"{_key(flags, self.cc, headers, n, t)}.o" for n, t in units.items()}
        todo = [n for n, p in objs.items() if not p.exists()]
        self.reused += len(units) - len(todo)
        if todo:
            work = Path(tempfile.mkdtemp(prefix="src-", dir=self.root))
            try:
                for fname, text in code.items():
                    (work / fname).write_text(text, encoding="utf-8", errors="surrogateescape")
                (work / "fuzz_main.c").write_text(units["fuzz_main.c"])
                cmd = [self.cc, *self.flags, "-I.", "-c", *todo]
                proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, errors="replace",
                                      timeout=self.build_timeout, preexec_fn=unlimited_memory)
                if proc.returncode != 0:
                    raise _BuildFailed(_first_error(proc.stderr))
                objs["fuzz_main.c"].parent.mkdir(parents=True, exist_ok=True)
                for n in todo:
                    os.replace(work / (n[:-2] + ".o"), objs[n])
                self.compiled += len(todo)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return list(objs.values())

    def executable(self, lib: CLibrary) -> Path:
        objs = self._objects(lib)
        exe = self.root / "exe" / _key(*(p.name for p in objs))
        if not exe.exists():
            exe.parent.mkdir(parents=True, exist_ok=True)
            tmp = exe.with_suffix(f".{os.getpid()}.tmp")
            proc = subprocess.run([self.cc, *self.flags, "-o", str(tmp), *map(str, objs), "-lm"],
                                  capture_output=True, text=True, errors="replace", timeout=self.build_timeout,
                                  preexec_fn=unlimited_memory)
            if proc.returncode != 0:
                raise _BuildFailed("link: " + _first_error(proc.stderr))
            os.replace(tmp, exe)
        return exe

    def run(self, lib: CLibrary, samples: Sequence[Sequence[np.ndarray]]) -> RunResult:
        """Builds `lib` and runs it on the samples (each a list of inputs)."""
        try:
            exe = self.executable(lib)
        except _BuildFailed as e:
            return RunResult("build_error", str(e))
        except subprocess.TimeoutExpired:
            return RunResult("build_error", f"the C compiler ran over {self.build_timeout:g} s")
        try:
            payload = b"".join(input_bytes(s, x) for xs in samples for s, x in zip(lib.inputs, xs))
        except (ValueError, TypeError) as e:
            return RunResult("crash", f"inputs do not fit the C library's input specs: {e}")
        env = dict(os.environ, **SANITIZER_ENV)
        try:
            proc = subprocess.run([str(exe), str(len(samples))], input=payload, capture_output=True,
                                  timeout=self.run_timeout, env=env, preexec_fn=unlimited_memory)
        except subprocess.TimeoutExpired:
            return RunResult("hang", f"the model ran over {self.run_timeout:g} s")
        stderr = proc.stderr.decode("utf-8", "replace")
        report = _sanitizer_report(stderr)
        if report:
            return RunResult("sanitizer", report[1], report[0])
        if proc.returncode != 0:
            what = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
            return RunResult("crash", f"harness ended with {what} {stderr.strip()[-200:]}".strip())
        return _split_outputs(lib, proc.stdout, len(samples))


class _BuildFailed(Exception):
    pass


def _first_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if "error" in ln.lower()] or stderr.splitlines() or ["(no output)"]
    return lines[0].strip()[:300]


def _split_outputs(lib: CLibrary, data: bytes, samples: int) -> RunResult:
    sizes = [int(np.prod(s.shape, dtype=np.int64)) * NUMPY_DTYPES[s.dtype].itemsize for s in lib.outputs]
    if len(data) != sum(sizes) * samples:
        return RunResult("crash", f"harness wrote {len(data)} bytes, {sum(sizes) * samples} expected")
    outs, pos = [], 0
    for _ in range(samples):
        one = []
        for spec, n in zip(lib.outputs, sizes):
            one.append(np.frombuffer(data[pos:pos + n], NUMPY_DTYPES[spec.dtype]).reshape(spec.shape).copy())
            pos += n
        outs.append(one)
    return RunResult("ok", outputs=outs)
