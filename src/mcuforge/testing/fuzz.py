"""The outcome of one input file under the promise of issue 12.

For any bytes, `read_tflite` then `compile_model(strategy="auto")` must either refuse with a
McuforgeError whose exit_code is 2 and whose message is one short printable line, or accept; and an
accepted model's C, built for the host, must equal the reference interpreter bit for bit on random
inputs (and be clean under ASan/UBSan in sanitizer builds).

Outcome classes: the clean ones, `refused` and `accepted_equal`, and the defects:
  exception        another exception type escaped (the CLI shows it as exit 70)
  rc1              a McuforgeError with exit_code 1 (PlanError from the plan checker)
  other_error      a McuforgeError with another exit code (3, 4 ...)
  bad_refusal      exit_code 2, but the message is empty, several lines, has control characters or is long
  hang             reading, compiling or the reference ran over the time limit
  reference_error  accepted, but the reference interpreter (or making inputs for it) fails on the model
  build_error      the generated C does not compile
  crash            the C harness crashed, failed or wrote the wrong number of bytes
  sanitizer        ASan/UBSan reported an error
  mismatch         the C outputs differ from the reference
"""
from __future__ import annotations

import os
import re
import signal
import threading
import traceback
import unicodedata
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..engine.codegen import CLibrary
from ..errors import McuforgeError
from .cbuild import Builder, RunResult

CLEAN = ("refused", "accepted_equal")
DEFECTS = ("exception", "rc1", "other_error", "bad_refusal", "hang", "reference_error", "build_error", "crash",
           "sanitizer", "mismatch")
MAX_MESSAGE = 300
COMPILE_NAME = "fz"  # every library gets one C prefix, so that unchanged code is compiled once


@dataclass(frozen=True)
class Outcome:
    cls: str
    stage: str = ""  # read, compile, reference, build, run
    exc: str = ""  # exception type
    message: str = ""  # shortened, printable
    frame: str = ""  # the deepest frame inside mcuforge, "mcuforge/x/y.py:12 function"

    @property
    def clean(self) -> bool:
        return self.cls in CLEAN

    @property
    def signature(self) -> str:
        """What identifies one defect: class, exception type and frame; without a frame, the message with
        names and numbers blotted out."""
        if self.frame:
            return " ".join(p for p in (self.cls, self.exc, self.frame) if p)
        text = re.sub(r"'[^']*'", "'X'", self.message)
        text = re.sub(r"(operator #\d+ \w+ \(output 'X'\)|operator #\d+ \w+|tensor #\d+ 'X'):? ?", "", text)
        words = re.sub(r"-?\d[\d.e+-]*", "N", text).split()
        return " ".join(p for p in (self.cls, self.stage, self.exc, " ".join(words[:10])) if p)

    def line(self) -> str:
        parts = [self.cls, self.stage, self.exc, self.frame, self.message[:160]]
        return " | ".join(p for p in parts if p)


@dataclass
class Accepted:
    """A model that compiled: its C library and the reference outputs it must reproduce."""

    lib: CLibrary
    samples: list[list[np.ndarray]]
    expected: list[list[np.ndarray]]
    compiled: object = None  # pipeline.Compiled, to locate the first differing layer of a mismatch
    graph: object = None  # the model's graph (the reference's)


def printable(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` escaped to one printable ASCII line and shortened (for reports, never for checks)."""
    body = text.encode("ascii", "backslashreplace").decode("ascii")
    body = "".join(ch if " " <= ch <= "~" else f"\\x{ord(ch):02x}" for ch in body)
    return body if len(body) <= limit else body[: limit - 3] + "..."


def message_problem(message: str) -> str | None:
    """Why a refusal message breaks the one-short-line rule, or None."""
    if not message.strip():
        return "empty message"
    if "\n" in message or "\r" in message:
        return f"{message.count(chr(10)) + 1}-line message"
    bad = [ch for ch in message if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")]
    if bad:
        return f"control character U+{ord(bad[0]):04X} in the message"
    if len(message) > MAX_MESSAGE:
        return f"message of {len(message)} characters (over {MAX_MESSAGE})"
    return None


def _where(f: traceback.FrameSummary) -> str:
    path = f.filename.replace("\\", "/")
    path = "mcuforge/" + path.rsplit("/mcuforge/", 1)[1] if "/mcuforge/" in path else "/".join(path.split("/")[-2:])
    return f"{path}:{f.lineno} {f.name}"


def _frame(e: BaseException) -> str:
    """The deepest frame inside mcuforge (not its testing package), and the last frame where that lies
    outside (numpy, the flatbuffers accessors ...)."""
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if "/mcuforge/" in f.filename.replace("\\", "/")
            and "/mcuforge/testing/" not in f.filename.replace("\\", "/")]
    if not frames:
        return ""
    if not ours:
        return _where(frames[-1])
    last = frames[-1]
    return _where(ours[-1]) + ("" if last is ours[-1] else f" > {_where(last)}")


class InputTimeout(BaseException):
    """Raised by time_limit; a BaseException so that the engine's `except Exception` cannot swallow it."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise InputTimeout after `seconds` of wall time (main thread only; elsewhere no limit)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum, frame):
        raise InputTimeout()

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _error(e: BaseException, stage: str) -> Outcome:
    if isinstance(e, InputTimeout):
        return Outcome("hang", stage, "", "ran over the time limit")
    msg = str(e)
    if isinstance(e, McuforgeError):
        code = getattr(e, "exit_code", None)
        if code == 2:
            problem = message_problem(msg)
            if problem is None:
                return Outcome("refused", stage, type(e).__name__, msg)
            return Outcome("bad_refusal", stage, type(e).__name__, f"{problem}: {printable(msg, 200)}")
        cls = "rc1" if code == 1 else "other_error"
        return Outcome(cls, stage, f"{type(e).__name__}(exit {code})", printable(msg), _frame(e))
    return Outcome("exception", stage, type(e).__name__, printable(msg), _frame(e))


def extreme_inputs(graph) -> list[list[np.ndarray]]:
    """All -128 and all 127, where every input is int8 (the saturation and headroom corners)."""
    ts = [graph[n] for n in graph.inputs]
    if not all(t.dtype == "int8" for t in ts):
        return []
    return [[np.full(t.shape, v, np.int8) for t in ts] for v in (-128, 127)]


def front(data: bytes, name: str = "model", *, samples: int = 2, seed: int = 0,
          timeout: float | None = 30.0) -> Outcome | Accepted:
    """Read, compile (strategy "auto") and run the reference on `samples` random inputs (and the extreme
    ones): an Outcome, or Accepted for the C check."""
    from ..engine.reference import run
    from ..frontends.tflite_reader import read_tflite
    from ..pipeline import compile_model
    from ..verify import random_inputs

    stage = "read"
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            with time_limit(timeout):
                graph = read_tflite(data, name)
                stage = "compile"
                compiled = compile_model(graph, name=COMPILE_NAME, strategy="auto")
                stage = "reference"
                xs = random_inputs(graph, samples, seed) + extreme_inputs(graph)
                expected = [run(graph, x) for x in xs]
        except BaseException as e:  # noqa: B036 (KeyboardInterrupt is re-raised below)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            out = _error(e, stage)
            if stage == "reference" and out.cls != "hang":
                return Outcome("reference_error", stage, out.exc or type(e).__name__, printable(str(e)), _frame(e))
            return out
    return Accepted(compiled.lib, [list(x) for x in xs], [list(y) for y in expected], compiled, graph)


def first_bad_layer(acc: Accepted, sample: int) -> str:
    """"#i KIND" of the first layer whose C output differs from the reference (a trace build), or ""."""
    from ..engine.reference import run_all
    from ..ir import NUMPY_DTYPES
    from ..targets.host import HostModel

    graph, plan = acc.compiled.graph, acc.compiled.plan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ref = run_all(acc.graph, acc.samples[sample])
    found: list[int] = []

    def on_layer(i: int, arena: bytes) -> None:
        for name in graph.ops[i].outputs if not found else ():
            t = graph[name]
            if name in ref and name in plan.offsets:
                off = plan.offsets[name]
                got = np.frombuffer(arena[off:off + t.nbytes], NUMPY_DTYPES[t.dtype])
                if got.size != np.asarray(ref[name]).size or not np.array_equal(got, np.asarray(ref[name]).ravel()):
                    found.append(i)

    HostModel.build(acc.lib, trace=True).run_traced(acc.samples[sample], on_layer)
    return f"first differing layer #{found[0]} {graph.ops[found[0]].kind}" if found else ""


def compare(acc: Accepted, result: RunResult) -> Outcome:
    """The outcome of an accepted model from the C run's result."""
    stage = "build" if result.status == "build_error" else "run"
    if result.status != "ok":
        return Outcome(result.status, stage, "", printable(result.detail), result.where)
    for k, (got, want) in enumerate(zip(result.outputs, acc.expected)):
        if len(got) != len(want):
            return Outcome("mismatch", "run", "", f"sample {k}: C gives {len(got)} outputs, reference {len(want)}")
        for j, (c, r) in enumerate(zip(got, want)):
            r = np.asarray(r)
            if c.dtype != r.dtype or c.shape != r.shape:
                return Outcome("mismatch", "run", "", f"sample {k} output {j}: C {c.dtype}{list(c.shape)}, "
                                                      f"reference {r.dtype}{list(r.shape)}")
            if not np.array_equal(c, r, equal_nan=c.dtype.kind == "f"):
                diff = np.abs(c.astype(np.float64) - r.astype(np.float64))
                try:
                    where = first_bad_layer(acc, k) if acc.compiled is not None else ""
                except Exception as e:  # locating is a courtesy: the mismatch stands without it
                    where = f"(layer not located: {type(e).__name__})"
                return Outcome("mismatch", "run", "", f"sample {k} output {j}: {int(np.sum(diff != 0))} of "
                                                      f"{c.size} values differ, max |diff| {np.nanmax(diff):g}", where)
    return Outcome("accepted_equal", "run")


def check(items: Sequence[tuple[bytes, str]], builder: Builder, *, samples: int = 2, seed: int = 0,
          timeout: float | None = 30.0) -> list[Outcome]:
    """Outcomes of (data, name) inputs, in order; accepted ones are built and run with `builder`."""
    outs: list[Outcome | Accepted] = [front(d, n, samples=samples, seed=seed, timeout=timeout) for d, n in items]
    return [compare(o, builder.run(o.lib, o.samples)) if isinstance(o, Accepted) else o for o in outs]


def cli_outcome(data: bytes, name: str, outcome: Outcome | None = None, timeout: float = 120.0,
                memory_limit: int | None = None) -> Outcome:
    """`mcuforge compile FILE -o DIR` in a child process: "cli_ok" when the exit status is 0, 2 or 3, stderr
    is at most one line (exactly one 'error: ...' line when the status is not 0), and the status agrees
    with the in-process `outcome` (refused -> 2, accepted -> 0); otherwise cli_exit, cli_stderr,
    cli_inconsistent or cli_hang."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    def limits() -> None:
        if memory_limit:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, resource.getrlimit(resource.RLIMIT_AS)[1]))

    with tempfile.TemporaryDirectory(prefix="mcuforge-cli-") as tmp:
        path = Path(tmp) / f"{name}.tflite"
        path.write_bytes(data)
        cmd = [sys.executable, "-m", "mcuforge.cli", "compile", str(path), "-o", str(Path(tmp) / "out")]
        env = {k: v for k, v in os.environ.items() if k != "MCUFORGE_DEBUG"}
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, preexec_fn=limits)
        except subprocess.TimeoutExpired:
            return Outcome("cli_hang", "cli", "", f"over {timeout:g} s")
    err = proc.stderr.decode("utf-8", "replace")
    lines = err.rstrip("\n").split("\n") if err.strip() else []
    rc = proc.returncode
    shown = printable(" / ".join(lines[:3]), 200)
    if rc not in (0, 2, 3):
        return Outcome("cli_exit", "cli", f"exit {rc}", shown)
    if len(lines) > 1 or (rc != 0 and (not lines or not lines[0].startswith("error: "))):
        return Outcome("cli_stderr", "cli", f"exit {rc}", f"{len(lines)} stderr lines: {shown}")
    if outcome is not None:
        expect = 2 if outcome.cls in ("refused", "bad_refusal") else 0 if outcome.stage in ("run", "build") else None
        if expect is not None and rc != expect:
            return Outcome("cli_inconsistent", "cli", f"exit {rc}",
                           f"in process: {outcome.cls}; CLI: {shown or 'no stderr'}")
    return Outcome("cli_ok", "cli", f"exit {rc}")


def summary(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.cls] = counts.get(o.cls, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] not in CLEAN, kv[0])))
