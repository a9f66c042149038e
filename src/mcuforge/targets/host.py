"""Host target: build the generated C with the system compiler and run it.

`HostModel` loads a shared library through ctypes (fast, in-process); `build_executable` links the
library with a small stdin/stdout harness (for sanitizers, valgrind and other process-level tools).
Builds are cached by a hash of the sources and the flags.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..engine.codegen import CLibrary, IOSpec
from ..errors import BuildError
from ..ir import NUMPY_DTYPES

WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")


def cache_dir() -> Path:
    root = os.environ.get("MCUFORGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mcuforge")
    return Path(root) / "host"


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise BuildError("no C compiler found: install gcc or clang, or set CC")
    return cc


def harness_source(name: str) -> str:
    """main(): read every input's bytes from stdin, invoke, write every output's bytes to stdout. A model
    compiled with an external arena gets a static buffer of the harness's."""
    up = name.upper()
    return f"""#include <stdio.h>
#include "{name}.h"

#ifdef {up}_ARENA_EXTERNAL
static union {{ unsigned char b[{up}_ARENA_BYTES > 0 ? {up}_ARENA_BYTES : 1]; long long i; double d; }} harness_arena;
#endif

int main(void) {{
    int i;
#ifdef {up}_ARENA_EXTERNAL
    if ({name}_set_arena(harness_arena.b, sizeof harness_arena.b) != 0) return 4;
#endif
    for (i = 0; i < {name.upper()}_NUM_INPUTS; ++i) {{
        size_t n = (size_t){name}_input_bytes(i);
        if (fread({name}_input(i), 1, n, stdin) != n) {{
            fprintf(stderr, "input %d: expected %lu bytes\\n", i, (unsigned long)n);
            return 2;
        }}
    }}
    if ({name}_invoke() != 0) return 3;
    for (i = 0; i < {name.upper()}_NUM_OUTPUTS; ++i) {{
        fwrite({name}_output(i), 1, (size_t){name}_output_bytes(i), stdout);
    }}
    return 0;
}}
"""


def write_sources(lib: CLibrary, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for fname, text in lib.files.items():
        (folder / fname).parent.mkdir(parents=True, exist_ok=True)  # zephyr/, examples/
        (folder / fname).write_text(text)


def _build(lib: CLibrary, kind: str, flags: Sequence[str], extra: dict[str, str]) -> Path:
    files = dict(lib.code, **extra)  # the C only: no build-system files, no example main()
    cc = compiler()
    key = hashlib.sha256("\0".join([kind, cc, *flags, *(f"{k}\0{v}" for k, v in sorted(files.items()))])
                         .encode()).hexdigest()[:20]
    out = cache_dir() / key
    target = out / ("model.so" if kind == "shared" else "model")
    if target.exists():
        return target
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=out.parent))
    try:
        for fname, text in files.items():
            (work / fname).write_text(text)
        sources = [f for f in files if f.endswith(".c")]
        link = ["-shared", "-fPIC"] if kind == "shared" else []
        cmd = [cc, *flags, *link, "-I.", "-o", target.name, *sources]
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"{cc} failed on the generated code for '{lib.name}' ({' '.join(cmd)}):\n"
                             + proc.stderr[-4000:])
        try:
            work.rename(out)
        except OSError:  # another process built the same thing first
            shutil.rmtree(work, ignore_errors=True)
        return target
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def build_shared(lib: CLibrary, opt: str = "-O2", trace: bool = False) -> Path:
    return _build(lib, "shared", (*WARNINGS, opt, *(("-DMCUFORGE_TRACE",) if trace else ())), {})


def build_executable(lib: CLibrary, *, sanitize: bool = False, opt: str = "-O2",
                     extra_flags: Sequence[str] = ()) -> Path:
    flags = (*WARNINGS, opt, *(SANITIZE if sanitize else ()), *extra_flags)
    return _build(lib, "exe", flags, {"mcuforge_main.c": harness_source(lib.name)})


def input_bytes(spec: IOSpec, x: np.ndarray) -> bytes:
    x = np.asarray(x)
    dtype = NUMPY_DTYPES[spec.dtype]
    size = int(np.prod(spec.shape, dtype=np.int64))
    if x.size != size:
        raise ValueError(f"input '{spec.name}' needs {size} values {list(spec.shape)}, got shape {list(x.shape)}")
    if x.dtype != dtype and not np.can_cast(x.dtype, dtype, "same_kind"):
        raise ValueError(f"input '{spec.name}' is {spec.dtype}, got {x.dtype}")
    return np.ascontiguousarray(x, dtype=dtype).tobytes()


def output_array(spec: IOSpec, data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=NUMPY_DTYPES[spec.dtype]).reshape(spec.shape).copy()


def run_executable(lib: CLibrary, exe: Path, inputs: Sequence[np.ndarray],
                   wrapper: Sequence[str] = ()) -> list[np.ndarray]:
    """Runs the harness executable once (optionally under a wrapper such as valgrind)."""
    payload = b"".join(input_bytes(s, x) for s, x in zip(lib.inputs, inputs))
    proc = subprocess.run([*wrapper, str(exe)], input=payload, capture_output=True)
    if proc.returncode != 0:
        raise BuildError(f"{exe} exited with {proc.returncode}:\n{proc.stderr.decode(errors='replace')[-4000:]}")
    outs, pos = [], 0
    for spec in lib.outputs:
        n = int(np.prod(spec.shape, dtype=np.int64)) * NUMPY_DTYPES[spec.dtype].itemsize
        outs.append(output_array(spec, proc.stdout[pos:pos + n]))
        pos += n
    return outs


@dataclass
class HostModel:
    """A compiled model loaded into this process."""

    lib: CLibrary
    path: Path
    _dll: ctypes.CDLL
    _arena: object = None  # the buffer handed to <name>_set_arena (external-arena libraries)

    @classmethod
    def build(cls, lib: CLibrary, opt: str = "-O2", trace: bool = False) -> "HostModel":
        """Compile and load; `trace=True` builds the debug variant that can report every layer. A stateful
        model starts from a cleared state (`<name>_reset()`): this process may have loaded the same library
        before, and the models built from one library share its state."""
        path = build_shared(lib, opt, trace)
        dll = ctypes.CDLL(str(path))
        for fn in ("input", "output"):
            getattr(dll, f"{lib.name}_{fn}").restype = ctypes.c_void_p
            getattr(dll, f"{lib.name}_{fn}").argtypes = [ctypes.c_int]
        getattr(dll, f"{lib.name}_invoke").restype = ctypes.c_int
        model = cls(lib, path, dll)
        reset = getattr(dll, f"{lib.name}_reset", None)  # a stateful model: the same .so may be loaded already
        if reset is not None:
            reset()
        if lib.options.arena == "external":  # the model's arena: a buffer of ours, alive as long as the model
            model._arena = (ctypes.c_double * max(1, -(-lib.arena_bytes // 8)))()
            status = getattr(dll, f"{lib.name}_set_arena")(model._arena, ctypes.c_size_t(ctypes.sizeof(model._arena)))
            if status != 0:
                raise BuildError(f"{lib.name}_set_arena returned {status}")
        return model

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One inference: copy the inputs into the arena, invoke, copy the outputs out."""
        if len(inputs) != len(self.lib.inputs):
            raise ValueError(f"'{self.lib.name}' takes {len(self.lib.inputs)} input(s), got {len(inputs)}")
        name = self.lib.name
        for i, (spec, x) in enumerate(zip(self.lib.inputs, inputs)):
            data = input_bytes(spec, x)
            ctypes.memmove(getattr(self._dll, f"{name}_input")(i), data, len(data))
        status = getattr(self._dll, f"{name}_invoke")()
        if status != 0:
            raise BuildError(f"{name}_invoke returned {status}")
        outs = []
        for i, spec in enumerate(self.lib.outputs):
            n = int(np.prod(spec.shape, dtype=np.int64)) * NUMPY_DTYPES[spec.dtype].itemsize
            outs.append(output_array(spec, ctypes.string_at(getattr(self._dll, f"{name}_output")(i), n)))
        return outs

    def run_traced(self, inputs: Sequence[np.ndarray], on_layer) -> list[np.ndarray]:
        """Runs once, calling on_layer(index, arena_bytes_view) after every layer (trace builds only)."""
        name = self.lib.name
        try:
            hook_slot = ctypes.c_void_p.in_dll(self._dll, f"{name}_trace_hook")
        except ValueError:
            raise BuildError("run_traced needs a trace build: HostModel.build(lib, trace=True)") from None
        arena_fn = getattr(self._dll, f"{name}_trace_arena")
        arena_fn.restype = ctypes.c_void_p
        base = arena_fn()
        size = self.lib.arena_bytes

        hook_type = ctypes.CFUNCTYPE(None, ctypes.c_int)
        hook = hook_type(lambda layer: on_layer(layer, ctypes.string_at(base, size)))
        hook_slot.value = ctypes.cast(hook, ctypes.c_void_p).value
        try:
            return self.run(inputs)
        finally:
            hook_slot.value = None

    def run_batch(self, batch: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        return [self.run(inputs) for inputs in batch]
