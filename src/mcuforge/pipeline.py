"""The user-level API behind the CLI: load, compile, check budgets, write, run, verify."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .engine.codegen import CLibrary, CodeOptions, check_c_name
from .engine.compiler import compile_graph
from .engine.opinfo import macs, params
from .engine.plan import MemoryPlan
from .engine.schedule import MAX_EXTRA_MACS, Schedule, schedule
from .errors import BudgetError, UsageError, shown
from .frontends.tflite_reader import read_tflite_file
from .ir import Graph
from .ir.formats import format_summary
from .outdir import replaced_folder
from .plan_choice import PlanChoice, choose_plan


@dataclass(frozen=True)
class LayerRow:
    index: int
    kind: str
    name: str
    out_shape: tuple[int, ...]
    macs: int
    params: int
    live_bytes: int
    inplace: bool


@dataclass(frozen=True)
class ModelLayerRow:
    """One of the model's own layers (numbered as load_model reads the model), whatever ran for it."""

    index: int
    kind: str
    name: str
    out_shape: tuple[int, ...]
    macs: int  # as run: the halos a patch stage computes again included
    params: int
    live_bytes: int  # the largest live set while any of its ops runs
    ops: int  # the ops run for it: 1 layer by layer; patches, slices, window copies, pastes
    how: str = ""  # "", "in place", "patch: 16 patches", "fused: 4 slices"


def model_layer_rows(model: Graph, chosen: Schedule, plan: MemoryPlan) -> tuple[tuple[ModelLayerRow, ...],
                                                                               tuple[int, ...]]:
    """The model's layers with what ran for each, and for each op run the model layer it belongs to."""
    from .engine.schedule.choose import source_layers

    run = chosen.graph
    source = tuple(source_layers(model, chosen))
    rows = []
    members: dict[int, list[int]] = {}
    for k, layer in enumerate(source):
        members.setdefault(layer, []).append(k)
    for i, op in enumerate(model.ops):
        ks = members.get(i, [])
        parts = [r for r in (run.ops[k].rewrite for k in ks) if r is not None]
        patches = {r.index for r in parts if r.part in ("window", "patch")}
        slices = {r.index for r in parts if r.part in ("slice", "acc")}
        if patches:
            how = f"patch: {len(patches)} patches"
        elif slices:
            how = f"fused: {len(slices)} slices"
        else:
            how = "in place" if any(k in plan.inplace_ops for k in ks) else ""
        rows.append(ModelLayerRow(i, op.kind, op.name, model[op.outputs[0]].shape, sum(macs(run.ops[k], run) for k in ks),
                                  params(op, model), max((plan.live_bytes[k] for k in ks), default=0), len(ks), how))
    return tuple(rows), source


@dataclass(frozen=True)
class MemoryReport:
    model: str
    arena_bytes: int  # peak SRAM: the one arena holds every activation and all kernel scratch
    lower_bound_bytes: int
    flash_weights_bytes: int  # the generated const data: weights, biases, requantization constants
    macs: int
    layers: tuple[LayerRow, ...]  # the executed graph's layers (a patch stage's layers once per patch)
    peak_step: int
    strategy: str = "layer"  # how the model runs: "layer", "patch", "fused" or "patch+fused"
    schedule: str = "layer by layer"  # the blocks and their strategies, in words
    blocks: tuple[dict, ...] = ()  # the parts not run layer by layer: strategy, layers, MAC overhead
    extra_macs_ratio: float = 0.0  # MACs computed beyond layer by layer (halos), a fraction of `macs`
    external_inputs: bool = False  # the inputs are read from the caller's buffers (not in the arena)
    plan_choice: dict | None = None  # auto: the objective, why this plan, the plans weighed (PlanChoice)
    param_bytes: int = 0  # the model's weights and biases as the .tflite stores them
    flash_code_bytes: int | None = None  # the model's code, its constant tables and .data on a Cortex-M build
    flash_code_build: str = ""  # which build: e.g. "cortex-m7 -O2" (arm-none-eabi-size)
    model_layers: tuple[ModelLayerRow, ...] = ()  # the model's own layers, numbered as the model is
    source: tuple[int, ...] = ()  # for each op run (`layers`), its index in `model_layers`
    state_bytes: int = 0  # state kept between invocations (SVDF, LSTM), in a buffer of its own
    # the weight tensors by format (ir.formats.format_summary): {"int4": {"tensors", "values", "bytes",
    # "int8_bytes"}, ...}; "bytes" are the packed values, before any kernel's layout or padding
    weight_formats: dict = field(default_factory=dict)

    @property
    def sram_bytes(self) -> int:
        """Peak SRAM: the arena and the persistent state."""
        return self.arena_bytes + self.state_bytes

    @property
    def peak_layer(self) -> LayerRow:
        """The op run where the live set peaks."""
        return self.layers[self.peak_step]

    @property
    def peak_model_layer(self) -> ModelLayerRow | LayerRow:
        """The model's layer that op belongs to (the op itself when the model's layers are not known)."""
        return self.model_layers[self.source[self.peak_step]] if self.model_layers else self.peak_layer

    @property
    def flash_bytes(self) -> int:
        """Flash the model takes: its const data, and its code where a Cortex-M build measured it."""
        return self.flash_weights_bytes + (self.flash_code_bytes or 0)

    def as_json(self) -> dict:
        return {"model": self.model, "peak_sram_bytes": self.sram_bytes, "arena_bytes": self.arena_bytes,
                "state_bytes": self.state_bytes,
                "lower_bound_bytes": self.lower_bound_bytes, "flash_weights_bytes": self.flash_weights_bytes,
                "macs": self.macs, "ops": len(self.layers), "model_layers": len(self.model_layers) or len(self.layers),
                "peak_layer": self.peak_model_layer.name, "peak_layer_index": self.peak_model_layer.index,
                "inplace_ops": sum(r.inplace for r in self.layers), "strategy": self.strategy,
                "schedule": self.schedule, "blocks": list(self.blocks),
                "extra_macs_ratio": round(self.extra_macs_ratio, 6), "external_inputs": self.external_inputs,
                "plan_choice": self.plan_choice, "param_bytes": self.param_bytes,
                "flash_code_bytes": self.flash_code_bytes, "flash_code_build": self.flash_code_build or None,
                "flash_bytes": self.flash_bytes, "weight_formats": self.weight_formats}


@dataclass(frozen=True)
class Compiled:
    graph: Graph  # the graph the C code runs (a strategy may have rewritten the model's)
    plan: MemoryPlan
    lib: CLibrary
    report: MemoryReport


def load_model(path: str | os.PathLike) -> Graph:
    """Reads a model file (.tflite) into the IR."""
    path = Path(path)
    if path.suffix.lower() != ".tflite":
        raise UsageError(f"{shown(str(path))}: unknown model format {shown(path.suffix)} (expected a .tflite file)")
    if path.is_dir():
        raise UsageError(f"{shown(str(path))} is a folder, not a .tflite file")
    if not path.is_file():
        raise UsageError(f"{shown(str(path))}: no such file")
    return read_tflite_file(path)


def param_bytes(graph: Graph) -> int:
    """Bytes of the model's constant tensors (weights, biases) as the model file stores them."""
    return sum(t.nbytes for t in graph.tensors.values() if t.is_const)


def memory_report(graph: Graph, plan: MemoryPlan, flash_bytes: int, chosen: Schedule | None = None,
                  choice: PlanChoice | None = None, model: Graph | None = None) -> MemoryReport:
    """Report of `graph` run with `plan`; `flash_bytes`: the generated const data; `chosen`: the schedule
    that rewrote `model` into `graph`; `choice`: why auto took it. With `model` and `chosen` the report also
    has the model's own layers."""
    rows = tuple(LayerRow(i, op.kind, op.name, graph[op.outputs[0]].shape, macs(op, graph), params(op, graph),
                          plan.live_bytes[i], i in plan.inplace_ops) for i, op in enumerate(graph.ops))
    extra = chosen.extra_macs_ratio if chosen else 0.0
    model_macs = chosen.model_macs if chosen else sum(r.macs for r in rows)
    report = MemoryReport(graph.name, plan.arena_bytes, plan.lower_bound, flash_bytes, model_macs, rows,
                        plan.peak_step, chosen.strategy if chosen else "layer",
                        chosen.describe() if chosen else "layer by layer", tuple(chosen.blocks()) if chosen else (),
                        extra, bool(graph.external), choice.as_json() if choice else None,
                        param_bytes(model if model is not None else graph), state_bytes=plan.state_bytes,
                        weight_formats=format_summary(model if model is not None else graph))
    if model is not None and chosen is not None:
        layers, source = model_layer_rows(model, chosen, plan)
        report = replace(report, model_layers=layers, source=source)
    return report


def analyze(graph: Graph, *, strategy: str = "layer", max_extra_macs: float = MAX_EXTRA_MACS,
            sram: int | None = None) -> MemoryReport:
    """The memory report of `compile_model` without writing anything: the same plan (under "auto" chosen
    for the `sram` budget, as compile_model chooses it) and flash figures (the C is generated to count its
    const data)."""
    chosen, choice = scheduled(graph, strategy, sram=sram, max_extra_macs=max_extra_macs)
    lib = compile_graph(chosen.graph, plan=chosen.plan)  # checks the plan
    return memory_report(chosen.graph, chosen.plan, lib.flash_weights_bytes, chosen, choice, graph)


def compile_model(graph: Graph, name: str | None = None, *, sram: int | None = None,
                  flash: int | None = None, strategy: str = "layer",
                  max_extra_macs: float = MAX_EXTRA_MACS, objective: str | None = None,
                  core: str = "cortex-m7", options: CodeOptions = CodeOptions(),
                  target: str = "host", opt: str = "-O2") -> Compiled:
    """Plans and generates the C library; raises BudgetError if it exceeds `sram` or `flash` bytes.

    `strategy`: "layer" (layer by layer), "fused" (inverted-residual blocks in channel slices), "patch"
    (the first layers patch by patch) or "auto", computing at most `max_extra_macs` (a fraction) more
    MACs; see engine.schedule. Under "auto", `objective` "memory" takes the lowest peak SRAM and "latency"
    the plan with the fewest predicted `core` instructions that fits `sram` (the default when `sram` is
    given; plan_choice). The CLI's default is "auto". `options`: whose arena, which linker sections
    (engine.codegen.CodeOptions). `target` "cortex-m4"/"cortex-m7" builds the library at `opt` with
    arm-none-eabi-gcc (cached) to measure its code, which the report and the flash budget then include;
    for "host" the flash is the const data alone.

    The stages, in order: read and canonicalize (load_model: the reader folds constants, lowers operators
    and validates the graph), schedule and plan (`scheduled`: how the ops run, each candidate with its
    memory plan and kernel choices), generate (engine.compile_graph, which checks the plan first), then
    the report and the budgets."""
    prefix = check_c_name(name) if name is not None else graph.name  # an explicit name must be a C identifier
    chosen, choice = scheduled(graph, strategy, sram=sram, objective=objective, core=core,
                               max_extra_macs=max_extra_macs)
    lib = compile_graph(chosen.graph, prefix, plan=chosen.plan, options=options)
    report = memory_report(chosen.graph, chosen.plan, lib.flash_weights_bytes, chosen, choice, graph)
    if target != "host":
        report = with_code_size(report, lib, target, opt)
    check_budget(report, sram, flash)
    return Compiled(chosen.graph, chosen.plan, lib, report)


def scheduled(graph: Graph, strategy: str, *, sram: int | None = None, objective: str | None = None,
              core: str = "cortex-m7", max_extra_macs: float = MAX_EXTRA_MACS) -> tuple[Schedule, PlanChoice | None]:
    """The schedule and plan stage: `strategy`'s schedule (with its memory plan), or under "auto" the one
    plan_choice weighs best, with why."""
    if strategy != "auto":
        return schedule(graph, strategy, max_extra_macs), None
    choice = choose_plan(graph, sram=sram, objective=objective, core=core, max_extra_macs=max_extra_macs)
    return choice.schedule, choice


def with_code_size(report: MemoryReport, lib: CLibrary, core: str, opt: str) -> MemoryReport:
    """`report` with the model's code measured on a Cortex-M build (arm-none-eabi-size)."""
    from .targets.cortex_m import CortexMModel

    size = CortexMModel.build(lib, core, opt).size_report()
    return replace(report, flash_code_bytes=size.model_code_bytes, flash_code_build=f"{core} {opt}")


def check_budget(report: MemoryReport, sram: int | None, flash: int | None) -> None:
    if sram is not None and report.sram_bytes > sram:
        peak = report.peak_model_layer
        state = f", with {report.state_bytes} B of state" if report.state_bytes else ""
        raise BudgetError(f"{report.model}: peak SRAM {report.sram_bytes} B{state} exceeds the budget of {sram} B "
                          f"by {report.sram_bytes - sram} B; the peak is at layer {peak.index} {peak.kind} "
                          f"'{peak.name}' ({peak.live_bytes} B live)")
    if flash is not None and report.flash_bytes > flash:
        big = max(report.model_layers or report.layers, key=lambda r: r.params)
        what = (f"code and weights need {report.flash_bytes} B of flash ({report.flash_code_bytes} B code on "
                f"{report.flash_code_build}, {report.flash_weights_bytes} B weights)"
                if report.flash_code_bytes is not None else f"weights need {report.flash_weights_bytes} B of flash")
        raise BudgetError(f"{report.model}: {what}, over the budget of {flash} B by {report.flash_bytes - flash} "
                          f"B; the largest layer is {big.index} {big.kind} '{big.name}' ({big.params} parameters)")


def write_library(lib: CLibrary, outdir: str | os.PathLike, *, target: str = "host", opt: str = "-O2"
                  ) -> list[Path]:
    """Writes the C library into the folder `outdir`, whole or not at all; returns the paths of its files.

    The files are written into a fresh folder beside `outdir` that then replaces it (`outdir.replaced_folder`):
    afterwards `outdir` holds exactly this library and the marker file `.mcuforge`, and after any failure,
    Ctrl-C or SIGTERM it keeps its previous contents. `outdir` must be new, empty, or a folder mcuforge
    wrote (it holds `.mcuforge`); anything else raises UsageError, so no file of yours is ever deleted.
    New folders get ordinary permissions (the umask applies). `target` "cortex-m4" or "cortex-m7" also
    builds `<name>_<core>.elf` into the folder with arm-none-eabi-gcc at `opt` (e.g. "-Os"), inside the
    same swap; it is the last path returned."""
    with replaced_folder(outdir) as stage:
        try:
            for fname, text in lib.files.items():
                (stage / fname).parent.mkdir(parents=True, exist_ok=True)  # zephyr/, examples/
                (stage / fname).write_text(text)
        except OSError as e:
            raise UsageError(f"cannot write the C library to {shown(os.fspath(outdir))}: {e.strerror or e}") from None
        names = list(lib.files)
        if target != "host":
            from .targets.cortex_m import build_into

            names.append(build_into(lib, target, opt, stage)[1].name)
    return [Path(outdir) / name for name in names]


def split_batch(graph: Graph, x: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """One input, or a stack of inputs along a new leading axis, as (list of single inputs, stacked?).
    An array with one more axis than the model's input is a stack, even of one."""
    t = graph[graph.inputs[0]]
    x = np.asarray(x)
    if x.size == t.size and x.ndim <= len(t.shape):
        return [x.reshape(t.shape)], False
    if x.ndim >= 1 and x.shape[0] > 0 and x[0].size == t.size:
        return [xi.reshape(t.shape) for xi in x], True
    raise UsageError(f"input array of shape {list(x.shape)} does not hold one input of shape {list(t.shape)} "
                     "nor a stack of them along a new leading axis")


def run_model(graph: Graph, batch: Sequence[np.ndarray], engine: str = "c", *, strategy: str = "layer",
              max_extra_macs: float = MAX_EXTRA_MACS) -> list[list[np.ndarray]]:
    """Runs single-input samples through the generated C (engine 'c', compiled with `strategy`) or the
    reference interpreter. A stateful model (SVDF, LSTM) runs the samples as one sequence, its state
    carried from one to the next, in both engines."""
    if engine == "reference":
        from .engine.reference import initial_state, run

        state = initial_state(graph)
        return [run(graph, [x], state) for x in batch]
    if engine != "c":
        raise ValueError(f"unknown engine {engine!r} (choose 'c' or 'reference')")
    from .targets.host import HostModel

    model = HostModel.build(compile_model(graph, strategy=strategy, max_extra_macs=max_extra_macs).lib)
    return [model.run([x]) for x in batch]
