"""`CortexMModel`: a generated model built for a Cortex-M core and run in QEMU."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ...engine.codegen import CLibrary
from ...ir import NUMPY_DTYPES
from ..host import input_bytes, output_array
from .build import Build, build
from .qemu import InvokeCount, run_records
from .size import SizeReport, size_report


def _output_bytes(lib: CLibrary) -> list[int]:
    return [int(np.prod(s.shape, dtype=np.int64)) * NUMPY_DTYPES[s.dtype].itemsize for s in lib.outputs]


@dataclass(frozen=True)
class CortexMModel:
    """A compiled model as an ELF for one Cortex-M core, run bare-metal in QEMU.

    >>> m = CortexMModel.build(compiled.lib, core="cortex-m7", opt="-O2")
    >>> m.run([x])                  # outputs, bit for bit those of the host build
    >>> m.count_instructions([x])   # instructions executed by <name>_invoke(), callees included
    >>> m.size_report()             # code / constants / weights / data / bss, from arm-none-eabi-size

    Every call of run/count starts one QEMU process; the *_batch variants run many inputs in one.
    """

    lib: CLibrary
    artifact: Build

    @classmethod
    def build(cls, lib: CLibrary, core: str = "cortex-m7", opt: str = "-O2", trace: bool = False) -> "CortexMModel":
        """Builds with arm-none-eabi-gcc (cached); `core` is 'cortex-m4' or 'cortex-m7'. `trace=True` builds
        the variant with a hook after every layer, for count_layer_instructions."""
        return cls(lib, build(lib, core, opt, trace))

    @property
    def core(self) -> str:
        return self.artifact.core.name

    def _records(self, batch: Sequence[Sequence[np.ndarray]]) -> list[bytes]:
        records = []
        for inputs in batch:
            if len(inputs) != len(self.lib.inputs):
                raise ValueError(f"'{self.lib.name}' takes {len(self.lib.inputs)} input(s), got {len(inputs)}")
            records.append(b"".join(input_bytes(s, x) for s, x in zip(self.lib.inputs, inputs)))
        return records

    def _decode(self, data: bytes) -> list[np.ndarray]:
        outs, pos = [], 0
        for spec, n in zip(self.lib.outputs, _output_bytes(self.lib)):
            outs.append(output_array(spec, data[pos:pos + n]))
            pos += n
        return outs

    def _execute(self, batch: Sequence[Sequence[np.ndarray]],
                 count: bool) -> tuple[list[list[np.ndarray]], list[InvokeCount] | None]:
        if not batch:
            return [], []
        raw, counts = run_records(self.artifact, self._records(batch), sum(_output_bytes(self.lib)), count=count)
        return [self._decode(r) for r in raw], counts

    def run_batch(self, batch: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        """One QEMU run over many inputs (each a list with one array per model input)."""
        return self._execute(batch, count=False)[0]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One inference in QEMU: the model's outputs."""
        return self.run_batch([inputs])[0]

    def count_instructions_batch(self, batch: Sequence[Sequence[np.ndarray]]
                                 ) -> tuple[list[int], list[list[np.ndarray]]]:
        """One QEMU run with the instruction-count plugin: (instructions per inference, outputs)."""
        outs, counts = self._execute(batch, count=True)
        return [c.total for c in counts or []], outs

    def count_instructions(self, inputs: Sequence[np.ndarray]) -> int:
        """Exact number of guest instructions executed by one `<name>_invoke()` on these inputs, counted by
        mcuforge's QEMU TCG plugin from the function's first instruction to its return, everything it
        calls included (the same quantity as callgrind's inclusive cost on the host). Deterministic:
        the same build and inputs always give the same number. Counts vary slightly between inputs
        (data-dependent branches in requantization, softmax and float I/O: about 0.01 % on the dev models).
        Conditional instructions count as executed; the harness enables no interrupt, so nothing else runs
        inside the interval."""
        return self.count_instructions_batch([inputs])[0][0]

    def count_layer_instructions(self, inputs: Sequence[np.ndarray]) -> list[int]:
        """Instructions of each layer of one inference, in graph order (a trace build: build(trace=True)).
        A layer's count includes a few instructions of the layer hooks (the call after it, the return of
        the one before), so the sum is the trace build's total, a little more than count_instructions of
        the normal build."""
        if self.artifact.mark_addr is None:
            raise ValueError("count_layer_instructions needs a trace build: CortexMModel.build(lib, trace=True)")
        counts = self._execute([inputs], count=True)[1] or []
        return counts[0].per_layer() if counts else []

    def size_report(self) -> SizeReport:
        return size_report(self.artifact, self.lib.name)


def build_into(lib: CLibrary, core: str, opt: str, outdir: str | os.PathLike) -> tuple[SizeReport, Path]:
    """Builds `lib` for a core and copies the ELF into outdir as <name>_<core>.elf (`mcuforge compile
    --target`); returns the code-size report and the ELF's path."""
    model = CortexMModel.build(lib, core, opt)
    elf = Path(outdir) / f"{lib.name}_{model.core}.elf"
    elf.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model.artifact.elf, elf)
    return model.size_report(), elf
