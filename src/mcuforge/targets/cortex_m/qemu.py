"""Running Cortex-M builds bare-metal in QEMU (qemu-system-arm, MPS2 boards, semihosting for file I/O
and the exit status), and counting their instructions with mcuforge's own TCG plugin."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

from ...errors import BuildError
from ..host import compiler
from .build import Build, cache_dir, tool

QEMU = "qemu-system-arm"
PLUGIN_SOURCES = ("plugin/insn_count.c", "plugin/qemu_plugin_v1.h")
HARNESS_STATUS = {10: "the harness could not open its input or output file",
                  11: "the input file ended inside a record",
                  12: "invoke returned an error",
                  13: "the harness could not write its output"}


@dataclass(frozen=True)
class InvokeCount:
    """Instructions of one inference: the total and, in a trace build, the count at each layer mark
    (instructions from the start of <name>_invoke to the hook call after that layer)."""

    total: int
    marks: tuple[int, ...] = ()

    def per_layer(self) -> list[int]:
        """Instructions of each layer (mark to mark); the last layer's count runs up to the return."""
        edges = [0, *self.marks[:-1], self.total] if self.marks else []
        return [b - a for a, b in zip(edges, edges[1:])]


def _parse_counts(text: str) -> list[InvokeCount]:
    counts: list[InvokeCount] = []
    marks: list[int] = []
    for line in text.splitlines():
        if line.startswith("m "):
            marks.append(int(line[2:]))
        elif line.strip():
            counts.append(InvokeCount(int(line), tuple(marks)))
            marks = []
    return counts


def plugin_path() -> Path:
    """The instruction-count plugin, built from the project's source with the host C compiler (cached)."""
    texts = {f: resources.files(__package__).joinpath(f).read_text() for f in PLUGIN_SOURCES}
    cc = compiler()
    flags = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-fvisibility=hidden")
    key = hashlib.sha256("\0".join([cc, *flags, *(f"{k}\0{v}" for k, v in sorted(texts.items()))])
                         .encode()).hexdigest()[:20]
    target = cache_dir() / f"plugin-{key}" / "insn_count.so"
    if target.exists():
        return target
    cache_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="plugin-", dir=cache_dir()))
    try:
        for fname, text in texts.items():
            (work / Path(fname).name).write_text(text)
        cmd = [cc, *flags, "-o", "insn_count.so", "insn_count.c"]
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"building the QEMU plugin failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        try:
            work.rename(target.parent)
        except OSError:  # built by another process meanwhile
            pass
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def qemu_command(build: Build, plugin_args: str | None = None) -> list[str]:
    cmd = [tool(QEMU), "-M", build.core.machine, "-cpu", build.core.name, "-nographic", "-monitor", "none",
           "-serial", "none", "-semihosting-config", "enable=on,target=native", "-kernel", str(build.elf)]
    if plugin_args is not None:
        cmd += ["-plugin", plugin_args]
    return cmd


def run_records(build: Build, records: Sequence[bytes], record_out_bytes: int, *, count: bool = False,
                timeout: float = 900.0) -> tuple[list[bytes], list[InvokeCount] | None]:
    """Runs the build once in QEMU over all records (each: the bytes of every input). Returns each record's
    output bytes and, with count=True, each inference's instruction count (with per-layer marks in a
    trace build)."""
    with tempfile.TemporaryDirectory(prefix="mcuforge-qemu-") as tmp:
        folder = Path(tmp)
        (folder / "mcu_in.bin").write_bytes(b"".join(records))
        plugin_args = None
        if count:
            plugin = plugin_path()
            if "," in str(folder) + str(plugin):
                raise BuildError(f"QEMU's -plugin option cannot take paths with commas ({folder}, {plugin}): "
                                 "set TMPDIR or MCUFORGE_CACHE to a folder without one")
            plugin_args = (f"file={plugin},start={build.invoke_addr:#x},end={build.done_addr:#x},"
                           f"out={folder / 'counts.txt'}")
            if build.mark_addr is not None:
                plugin_args += f",mark={build.mark_addr:#x}"
        cmd = qemu_command(build, plugin_args)
        try:
            proc = subprocess.run(cmd, cwd=folder, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BuildError(f"{QEMU} did not finish within {timeout:.0f} s ({' '.join(cmd)})") from None
        if proc.returncode != 0:
            status = proc.returncode
            why = HARNESS_STATUS.get(status) or (f"CPU exception {status - 64} (3: HardFault, 4: MemManage, "
                                                 "5: BusFault, 6: UsageFault)" if 64 < status < 128 else
                                                 "QEMU failed")
            raise BuildError(f"{QEMU} exited with {status}: {why} ({' '.join(cmd)}):\n"
                             + proc.stderr.decode(errors="replace")[-4000:])
        data = (folder / "mcu_out.bin").read_bytes()
        if len(data) != record_out_bytes * len(records):
            raise BuildError(f"the QEMU run wrote {len(data)} output bytes, expected "
                             f"{record_out_bytes * len(records)}")
        outs = [data[i * record_out_bytes:(i + 1) * record_out_bytes] for i in range(len(records))]
        counts = None
        if count:
            counts = _parse_counts((folder / "counts.txt").read_text())
            if len(counts) != len(records):
                raise BuildError(f"the instruction-count plugin saw {len(counts)} inferences, expected "
                                 f"{len(records)}")
        return outs, counts
