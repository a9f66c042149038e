"""Command line: parse arguments, call the library, print the report. No logic lives here.

Only the standard library is imported at module level: `main` puts its SIGINT/SIGTERM handlers in place
first, so Ctrl-C even while numpy, rich or torch load exits 130 (SIGTERM 143) with one line, after the
`finally` blocks have removed any temporary files.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .args import build_parser, check_engine, check_samples, parse_bytes, parse_fraction
from ..errors import BuildError, McuforgeError, UsageError, shown
from ..outdir import STOP_SIGNALS, pause_for_tests

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["main", "parse_bytes", "parse_fraction"]


def _load(args):
    """The model file as a graph, with external inputs when --external-input is given and its weights in the
    --weights format."""
    from ..ir.formats import choose_formats
    from ..pipeline import load_model

    graph = load_model(args.model)
    if getattr(args, "weights", None) is not None:
        graph = choose_formats(graph, args.weights)
    return graph.with_external_inputs() if getattr(args, "external_input", False) else graph


def _import_torch_pipeline():
    try:
        torch_pipeline = importlib.import_module("..pytorch.pipeline", __package__)
    except ImportError as e:
        if (e.name or "").split(".")[0] != "torch":
            raise
        raise UsageError("quantize needs PyTorch, which is not installed: pip install torch==2.13.0, then "
                         "pip install 'mcuforge[torch]'") from None
    return torch_pipeline


def _quantize(args, console: Console) -> int:
    from ..outdir import check_output_file, check_output_folder
    from ..pipeline import compile_model, write_library
    from ..report import print_memory

    check_output_file(args.out, (".tflite",), "the int8 model", make_parents=True)
    if args.c_out:
        check_output_folder(args.c_out)
    torch_pipeline = _import_torch_pipeline()
    result = torch_pipeline.quantize_exported(args.model, args.calib, observer=args.observer,
                                              progress=console.is_terminal)
    graph = result.graph
    compiled = compile_model(graph) if args.c_out else None
    torch_pipeline.write_atomic(result.tflite, args.out)
    kinds = sorted({op.kind for op in graph.ops})
    params = sum(row.params for row in result.report.layers)
    console.print(f"quantized {args.model} on {result.samples} samples ({args.observer}): {len(graph.ops)} ops "
                  f"({', '.join(kinds)}), {params:,} parameters", markup=False)
    for role, names in (("input", graph.inputs), ("output", graph.outputs)):
        for name in names:
            t = graph[name]
            console.print(f"  {role} {shown(name)} {list(t.shape)} {t.dtype}: scale {t.quant.s:.6g}, "
                          f"zero point {t.quant.zp}", markup=False)
    print_memory(result.report, console)
    console.print(f"wrote {args.out} ({len(result.tflite):,} bytes)", markup=False)
    if compiled is not None:
        files = write_library(compiled.lib, args.c_out)
        console.print(f"wrote {len(files)} files to {files[0].parent}/ ({compiled.lib.name}.h is the API)",
                      markup=False)
    return 0


def _compress(args, console: Console) -> int:
    from ..compress.run import compress_model

    return compress_model(args.model, args.weights, args.out, calib=args.calib, samples=args.samples,
                          sparsity=args.sparsity,
                          print_line=lambda line: console.print(line, markup=False, soft_wrap=True))


def _compile(args, console: Console) -> int:
    from ..engine.codegen import CodeOptions
    from ..outdir import check_output_folder
    from ..pipeline import compile_model, write_library
    from ..report import print_memory

    board = None
    if args.board:
        from ..targets.boards import get_board

        board = get_board(args.board)
        args.sram = args.sram or board.sram_bytes
        args.flash = args.flash or board.flash_bytes
        if args.target == "host" and board.target:
            args.target = board.target
    if args.objective == "latency" and args.sram is None:
        raise UsageError("--objective latency needs an SRAM budget: give --sram or --board")
    options = CodeOptions(args.arena, args.arena_section, args.weights_section)
    check_output_folder(args.out)
    if args.report:
        from ..report.file import check_report_path

        check_report_path(args.report)
    graph = _load(args)
    pause_for_tests("compile")
    core = board.core if board is not None and board.target else (args.target if args.target != "host"
                                                                   else "cortex-m7")
    compiled = compile_model(graph, args.name, sram=args.sram, flash=args.flash, strategy=args.strategy,
                             max_extra_macs=args.max_extra_macs, objective=args.objective, core=core,
                             options=options, target=args.target, opt=f"-{args.opt}")
    files = write_library(compiled.lib, args.out, target=args.target, opt=f"-{args.opt}")
    print_memory(compiled.report, console)
    console.print(f"wrote {len(files)} files to {args.out}/ ({compiled.lib.name}.h is the API)", markup=False)
    summary = compiled.report.as_json()
    size = None
    if args.target != "host":
        from ..targets.cortex_m import CortexMModel

        size = CortexMModel.build(compiled.lib, args.target, f"-{args.opt}").size_report()  # built: cached
        console.print("\n".join(size.lines()), markup=False)
        console.print(f"wrote {files[-1]}", markup=False)
        summary["code_size"] = size.as_json()
    if board is not None:
        summary.update(_board_estimate(board, compiled, args, console))
    if args.report:
        _write_compile_report(args, compiled, size, summary, console)
    if args.json:
        print(json.dumps(summary))
    return 0


def _write_compile_report(args, compiled, size, summary: dict, console: Console) -> None:
    from ..report.file import ReportContent, board_rows, layer_predictions, write_report

    predicted = layer_predictions(compiled.report, compiled.graph, compiled.plan, ("cortex-m4", "cortex-m7"))
    counted = {summary["board"]: summary["instructions"]} if "instructions" in summary else {}
    notes = [f"Predicted instructions: nas.latency's per-layer model of our kernels at -O2 (docs/latency.md); "
             f"a board's time takes one cycle per instruction, an estimate. Built at -{args.opt}."]
    if compiled.report.strategy != "layer":
        notes.append("The latency model is fitted on layer-by-layer networks: it overestimates patch stages and "
                     "fused blocks (MLPerf VWW's patch plan: 20.8 M predicted, 13.1 M counted on Cortex-M7).")
    content = ReportContent(compiled.report, title=f"{compiled.lib.name}: compile report",
                            layer_instructions=predicted, boards=board_rows(predicted, counted),
                            code_size=size.lines() if size is not None else [], sram_budget=args.sram,
                            flash_budget=args.flash, notes=notes)
    for path in write_report(args.report, content):
        console.print(f"wrote {path}", markup=False)


def _board_estimate(board, compiled, args, console: Console) -> dict:
    """Latency estimate on a board: instructions counted in QEMU / the board's clock."""
    out = {"board": board.name, "sram_budget_bytes": args.sram, "flash_budget_bytes": args.flash}
    if board.target is None:
        console.print(f"{board.mcu}: no --target for its core ({board.core}) yet; budgets checked, "
                      "no latency estimate")
        return out
    from ..targets.cortex_m import CortexMModel
    from ..verify import random_inputs

    model = CortexMModel.build(compiled.lib, board.target, f"-{args.opt}")
    count = model.count_instructions(random_inputs(compiled.graph, 1)[0])
    ms = board.cycles_to_ms(count)
    console.print(f"estimated latency on {board.mcu} at {board.clock_hz / 1e6:g} MHz: {ms:.1f} ms "
                  f"({count:,} instructions counted in QEMU, taken as one cycle each: an estimate)")
    return {**out, "instructions": count, "est_latency_ms": round(ms, 3)}


def _bench(args, console: Console) -> int:
    from ..targets.bench import run_bench

    return run_bench(args, console)


def _given_inputs(args, graph) -> tuple[list, bool]:
    from ..arrays import input_batch, load_array

    return input_batch(graph, load_array(args.input), quantize=args.quantize_input, source=shown(args.input))


def _run(args, console: Console) -> int:
    import numpy as np

    from ..arrays import check_output_path, save_outputs
    from ..pipeline import run_model

    check_engine(args.engine, args.target)
    graph = _load(args)
    check_output_path(args.output, len(graph.outputs))
    batch, stacked = _given_inputs(args, graph)
    if args.target == "host":
        outs = run_model(graph, batch, args.engine, strategy=args.strategy, max_extra_macs=args.max_extra_macs)
    else:
        from ..pipeline import compile_model
        from ..targets.cortex_m import CortexMModel

        compiled = compile_model(graph, strategy=args.strategy, max_extra_macs=args.max_extra_macs)
        outs = CortexMModel.build(compiled.lib, args.target, f"-{args.opt}").run_batch(batch)
    per_output = [np.stack([o[j] for o in outs]) if stacked else outs[0][j] for j in range(len(graph.outputs))]
    save_outputs(args.output, per_output)
    where = f"the {args.engine} engine" if args.target == "host" else f"{args.target} (QEMU)"
    console.print(f"ran {len(batch)} input(s) on {where}; wrote {args.output}", markup=False)
    return 0


def _verify(args, console: Console) -> int:
    from ..report import print_verify
    from ..verify import verify

    check_samples(args.samples, args.input)
    graph = _load(args)
    given = _given_inputs(args, graph)[0] if args.input else []
    result = verify(graph, samples=args.samples, given=given, tflite_bytes=Path(args.model).read_bytes(),
                    seed=args.seed, strategy=args.strategy, max_extra_macs=args.max_extra_macs)
    print_verify(result, console)
    return 0 if result.ok else 1


def _inspect(args, console: Console) -> int:
    from ..report.memory_plot import check_plot_path
    from ..pipeline import analyze
    from ..report import print_layers, print_memory, print_ops

    if args.plot:
        check_plot_path(args.plot)
    graph = _load(args)
    report = analyze(graph, strategy=args.strategy, max_extra_macs=args.max_extra_macs, sram=args.sram)
    if args.plot:
        from ..engine.schedule import layer_profiles
        from ..report.memory_plot import plot_memory

        path = plot_memory(graph.name, layer_profiles(graph, args.max_extra_macs), args.plot, args.sram)
        console.print(f"wrote {path}", markup=False)
    if args.json:
        print(json.dumps({**report.as_json(), "layers": [r.__dict__ for r in report.model_layers],
                          "ops_run": [{**r.__dict__, "layer": report.source[r.index]} for r in report.layers]}))
        return 0
    (print_ops if args.ops else print_layers)(report, console)
    print_memory(report, console)
    return 0


def _demo(args, console: Console) -> int:
    from ..models import tiny_mobilenet
    from ..outdir import check_output_folder
    from ..pipeline import compile_model, write_library
    from ..report import print_memory, print_verify
    from ..targets.host import HostModel
    from ..verify import random_inputs, verify

    check_output_folder(args.out)
    graph = tiny_mobilenet()
    t0 = time.perf_counter()
    compiled = compile_model(graph, "tiny_mobilenet", strategy="auto")
    compile_s = time.perf_counter() - t0
    write_library(compiled.lib, args.out)
    console.print(f"compiled the built-in tiny_mobilenet in {compile_s:.2f} s -> {args.out}/", markup=False)
    print_memory(compiled.report, console)
    result = verify(graph, samples=args.samples, compiled=compiled)
    print_verify(result, console)
    model = HostModel.build(compiled.lib)
    xs = random_inputs(graph, 1)[0]
    n, t0 = 50, time.perf_counter()
    for _ in range(n):
        model.run(xs)
    us = (time.perf_counter() - t0) / n * 1e6
    console.print(f"host speed (wall clock, this machine, -O2): {us:,.0f} us per inference, "
                  f"{compiled.report.macs / us:,.1f} MMAC/s")
    return 0 if result.ok else 1


def _search(args, console: Console) -> int:
    from .nas import run_search

    return run_search(args, console)


def _sweep(args, console: Console) -> int:
    from .sweep import run_sweep

    return run_sweep(args, console)


def _nas(args, console: Console) -> int:
    from .nas import run_nas

    return run_nas(args, console)


def _validate(args, console: Console) -> int:
    from ..validate import validate

    if args.report:
        from ..report.file import check_report_path

        check_report_path(args.report)
    result = validate(args.model, args.data, float_model=args.float_model, float_layout=args.float_layout,
                      target=args.target, opt=f"-{args.opt}", samples=args.samples, strategy=args.strategy,
                      max_extra_macs=args.max_extra_macs, progress=console.is_terminal)
    console.print("\n".join(result.lines()), markup=False, soft_wrap=True)
    if args.report:
        _write_validate_report(args, result, console)
    if args.json:
        print(json.dumps(result.as_json()))
    return 0 if result.ok else 1


def _write_validate_report(args, result, console: Console) -> None:
    from ..pipeline import compile_model, load_model
    from ..report.file import ReportContent, board_rows, layer_predictions, write_report

    compiled = compile_model(load_model(args.model), strategy=args.strategy, max_extra_macs=args.max_extra_macs)
    predicted = layer_predictions(compiled.report, compiled.graph, compiled.plan, ("cortex-m4", "cortex-m7"))
    content = ReportContent(compiled.report, title=f"{compiled.lib.name}: validation report",
                            layer_instructions=predicted, boards=board_rows(predicted), validation=result.lines())
    for path in write_report(args.report, content):
        console.print(f"wrote {path}", markup=False)


COMMANDS = {"bench": _bench, "compile": _compile, "run": _run, "verify": _verify, "inspect": _inspect, "demo": _demo,
            "quantize": _quantize, "compress": _compress, "nas": _nas, "validate": _validate,
            "search": _search, "compress-sweep": _sweep}


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: unwinds the stack, so every `finally` runs (temporary files go away),
    up to main, which exits 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, frame) -> None:
    for s in STOP_SIGNALS:  # a second signal must not cut the clean-up short
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


def _stop_on_signals() -> dict:
    """SIGINT and SIGTERM raise Interrupted from now on; returns the previous handlers ({} when this is not
    the main thread, where Python cannot set handlers)."""
    try:
        return {s: signal.signal(s, _interrupt) for s in STOP_SIGNALS}
    except ValueError:
        return {}


def _one_line(text: str) -> str:
    """A message as one printable line (names in it are escaped already; this is the last guard)."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _dispatch(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["compress", "sweep"]:  # a sub-command of compress, whose first argument is otherwise a model
        argv = ["compress-sweep", *argv[2:]]
    args = build_parser().parse_args(argv)
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
    err = Console(stderr=True, highlight=False)
    try:
        return COMMANDS[args.command](args, console)
    except McuforgeError as e:
        text = str(e) if isinstance(e, BuildError) else _one_line(str(e))  # a failed build shows cc's output
        err.print(Text.assemble(("error:", "bold red"), f" {text}"), soft_wrap=True)
        return e.exit_code
    except BrokenPipeError:  # e.g. `mcuforge inspect m.tflite | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # a bug of ours: one line, full traceback on request
        if os.environ.get("MCUFORGE_DEBUG"):
            raise
        err.print(f"internal error: {type(e).__name__}: {e} (set MCUFORGE_DEBUG=1 for the traceback "
                  "and please report it)", markup=False, soft_wrap=True)
        return 70


def main(argv: list[str] | None = None) -> int:
    """The `mcuforge` command. Exit status: 0 done, 1 verify found a difference, 2 a mistake (arguments, input
    files, output paths, a model the engine cannot take), 3 over the SRAM/flash budget, 4 the C build
    failed, 5 a bench measurement failed, 130 Ctrl-C (SIGINT), 143 SIGTERM, 70 a bug of ours.
    After a signal the handlers stay ignoring further ones: the process is meant to end."""
    previous = _stop_on_signals()
    try:
        pause_for_tests("startup")
        return _dispatch(argv)
    except (Interrupted, KeyboardInterrupt) as stop:
        previous = {}
        signum = stop.signum if isinstance(stop, Interrupted) else signal.SIGINT
        sys.stderr.write("interrupted\n" if signum == signal.SIGINT else "terminated\n")
        return 128 + int(signum)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
