"""One call from Python, with the CLI's defaults:

    import mcuforge
    m = mcuforge.compile("model.tflite", board="stm32f746")   # as `mcuforge compile --board stm32f746`
    m.write("out/")                                            # the C library (and the ELF for the board)
    y = m.run(x)                                               # the generated C on this host
    print(m.report)                                            # the memory report, as the CLI prints it
    m.report.write("report.html")                              # the report file (compile --report)

`compile` takes what `mcuforge compile` takes, by keyword: board, sram, flash, strategy ("auto", the CLI's
default), objective, max_extra_macs, name, target, opt, arena, arena_section, weights_section,
external_input. `run` takes one input or a stack along a new leading axis; `layout` says how its axes are
ordered: "nhwc" (channels last, the model's own layout: the default) or "nchw" (channels first, as torch
keeps images and signals); 4-D outputs come back in the same layout. Real values for an int8 input need
`quantize=True` (the CLI's --quantize-input), as integer codes are taken as they are.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .choices import DEFAULT_STRATEGY
from .engine.codegen import CodeOptions
from .engine.schedule import MAX_EXTRA_MACS
from .errors import UsageError
from .ir import Graph
from .pipeline import Compiled, MemoryReport, compile_model, load_model, write_library

LAYOUTS = {"nhwc": "last", "channels_last": "last", "nlc": "last", "nchw": "first", "channels_first": "first",
           "ncl": "first"}


def _channels_first_to_last(x: np.ndarray, rank: int) -> np.ndarray:
    """A sample or a stack of samples of rank `rank` (batch axis included) from channels first to last."""
    stacked = x.ndim == rank + 1
    axis = 2 if stacked else 1
    return np.moveaxis(x, axis, -1) if x.ndim >= 3 else x


def _channels_last_to_first(y: np.ndarray) -> np.ndarray:
    return np.moveaxis(y, -1, 1) if y.ndim >= 3 else y


def _layout(layout: str) -> str:
    try:
        return LAYOUTS[layout.lower()]
    except (KeyError, AttributeError):
        raise UsageError(f"layout {layout!r}: choose nhwc (channels last, the model's) or nchw (channels "
                         "first)") from None


@dataclass(frozen=True)
class Report:
    """What `compile` found: `print()` shows it as the CLI does; `.json` is `compile --json`'s object;
    `.write(path)` writes the report file (.html or .md)."""

    memory: MemoryReport
    compiled: Compiled
    sram: int | None = None
    flash: int | None = None

    def __str__(self) -> str:
        from rich.console import Console

        from .report import print_memory

        buf = io.StringIO()
        print_memory(self.memory, Console(file=buf, width=110, color_system=None, highlight=False))
        return buf.getvalue().rstrip()

    @property
    def json(self) -> dict:
        return self.memory.as_json()

    def write(self, path: str | os.PathLike) -> list[Path]:
        from .report.file import ReportContent, board_rows, layer_predictions, write_report

        predicted = layer_predictions(self.memory, self.compiled.graph, self.compiled.plan, ("cortex-m4", "cortex-m7"))
        content = ReportContent(self.memory, title=f"{self.compiled.lib.name}: compile report",
                                layer_instructions=predicted, boards=board_rows(predicted), sram_budget=self.sram,
                                flash_budget=self.flash)
        return write_report(path, content)


@dataclass
class Model:
    """A compiled model: the C library and its report; `run` builds it for this host once, then reuses it."""

    compiled: Compiled
    target: str = "host"
    opt: str = "-O2"
    sram: int | None = None
    flash: int | None = None
    _host: object = None

    @property
    def graph(self) -> Graph:
        return self.compiled.graph

    @property
    def report(self) -> Report:
        return Report(self.compiled.report, self.compiled, self.sram, self.flash)

    @property
    def files(self) -> dict[str, str]:
        """The library's files by name (text)."""
        return dict(self.compiled.lib.files)

    def write(self, out: str | os.PathLike) -> list[Path]:
        """Writes the library into the folder `out` (new, empty, or one mcuforge wrote), whole or not at
        all, with the ELF when compiled for a Cortex-M target; returns the paths written."""
        return write_library(self.compiled.lib, out, target=self.target, opt=self.opt)

    def run(self, x: np.ndarray, *, layout: str = "nhwc", quantize: bool = False,
            core: str | None = None) -> np.ndarray | list[np.ndarray]:
        """The model's output(s) for `x` (one input, or a stack along a new leading axis: then stacked
        outputs), from the generated C built for this host, or in QEMU for `core` ("cortex-m4"/"cortex-m7")."""
        from .arrays import input_batch

        first = _layout(layout) == "first"
        rank = len(self.graph[self.graph.inputs[0]].shape)
        x = np.asarray(x)
        if first:
            x = _channels_first_to_last(x, rank)
        batch, stacked = input_batch(self.graph, x, quantize=quantize, source="x")
        outs = self._runner(core)(batch)
        per_output = [np.stack([o[k] for o in outs]) if stacked else outs[0][k] for k in range(len(outs[0]))]
        if first:
            per_output = [_channels_last_to_first(y) if y.ndim - stacked >= 4 else y for y in per_output]
        return per_output[0] if len(per_output) == 1 else per_output

    def _runner(self, core: str | None):
        if core is not None:
            from .targets.cortex_m import CortexMModel

            m = CortexMModel.build(self.compiled.lib, core, self.opt)
            return lambda batch: m.run_batch([[x] for x in batch])
        if self._host is None:
            from .targets.host import HostModel

            self._host = HostModel.build(self.compiled.lib)
        return lambda batch: [self._host.run([x]) for x in batch]


def compile(model: str | os.PathLike | Graph, *, board: str | None = None, sram: int | None = None,
            flash: int | None = None, strategy: str = DEFAULT_STRATEGY, objective: str | None = None,
            max_extra_macs: float = MAX_EXTRA_MACS, name: str | None = None, target: str | None = None,
            opt: str = "-O2", arena: str = "static", arena_section: str | None = None,
            weights_section: str | None = None, external_input: bool = False, weights: str | None = None) -> Model:
    """Compiles a model (.tflite path or IR graph) as `mcuforge compile` does; raises BudgetError when it
    does not fit (see the module docstring). `weights`: how the weights are stored, as --weights says
    (int8, int4 or auto; None: as the model stores them; mcuforge.ir.formats)."""
    graph = model if isinstance(model, Graph) else load_model(model)
    if weights is not None:
        from .ir.formats import choose_formats

        graph = choose_formats(graph, weights)
    if external_input:
        graph = graph.with_external_inputs()
    core = "cortex-m7"
    if board is not None:
        from .targets.boards import get_board

        b = get_board(board)
        sram = sram if sram is not None else b.sram_bytes
        flash = flash if flash is not None else b.flash_bytes
        target = target or b.target or "host"
        core = b.core if b.target else core
    target = target or "host"
    if target != "host":
        core = target
    if not opt.startswith("-"):
        opt = "-" + opt
    compiled = compile_model(graph, name, sram=sram, flash=flash, strategy=strategy, max_extra_macs=max_extra_macs,
                             objective=objective, core=core, options=CodeOptions(arena, arena_section, weights_section),
                             target=target, opt=opt)
    return Model(compiled, target, opt, sram, flash)


__all__ = ["LAYOUTS", "Model", "Report", "compile"]
