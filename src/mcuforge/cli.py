"""Command line: parse arguments, call the library, print the report. No logic lives here."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from . import __version__
from .errors import McuforgeError, ModelError
from .quant.observers import OBSERVERS

EXAMPLES = """examples:
  mcuforge demo                                   compile, verify and report the built-in example network
  mcuforge compile model.tflite -o out/ --sram 256K --flash 1M
  mcuforge compile model.tflite -o out/ --target cortex-m7 --opt Os   also build the ELF; code-size report
  mcuforge run model.tflite --input x.npy --output y.npy
  mcuforge run model.tflite --input x.npy --output y.npy --target cortex-m4   run in QEMU
  mcuforge verify model.tflite --samples 50
  mcuforge inspect model.tflite
  mcuforge compile model.tflite -o out/ --board stm32f746      target, budgets and a latency estimate
  mcuforge bench model.tflite --json                            instruction counts vs TFLM, Cortex-M, code size
  mcuforge quantize model.pt2 --calib x.npy -o model.tflite     PyTorch (torch.export) -> int8 .tflite
"""


def parse_bytes(text: str) -> int:
    """'320000', '320K', '320KB', '1M' -> bytes (K = 1024)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 1024, "M": 1024 * 1024}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale > 1 else t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r} (e.g. 320000, 320K, 1M)") from None
    return int(value)


TARGETS = ("host", "cortex-m4", "cortex-m7")
OPT_LEVELS = ("O0", "O1", "O2", "O3", "Os")


def _add_target(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--target", choices=TARGETS, default="host",
                   help=f"host (default), or a Cortex-M core: {what} "
                   "(needs arm-none-eabi-gcc and qemu-system-arm)")
    p.add_argument("--opt", choices=OPT_LEVELS, default="O2",
                   help="arm-none-eabi-gcc optimisation level for --target cortex-m* (default O2)")


def parse_fraction(text: str) -> float:
    """'0.15', '15%' -> 0.15."""
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a fraction: {text!r} (e.g. 0.15 or 15%)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text!r}")
    return value


def _add_strategy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strategy", choices=("auto", "layer", "fused", "patch"), default="auto",
                   help="how to run the model: auto (default: per block, whichever gives the lowest peak "
                   "SRAM), layer (layer by layer; fastest), fused (inverted-residual blocks in slices of "
                   "their expanded channels, so the expanded tensor never exists in full; no extra MACs), "
                   "patch (the first, memory-heavy layers patch by patch, recomputing the halos between "
                   "patches)")
    p.add_argument("--max-extra-macs", type=parse_fraction, default=0.15, metavar="FRACTION",
                   help="cap on the MACs a strategy may add, e.g. 0.15 or 15%% (default 15%%)")
    p.add_argument("--external-input", action="store_true",
                   help="the model reads its input(s) from your own buffer (e.g. a camera frame; "
                   "<name>_set_input) instead of the arena: peak SRAM then leaves the input out")


def _load(args):
    """The model file as a graph, with external inputs when --external-input is given."""
    from .pipeline import load_model

    graph = load_model(args.model)
    return graph.with_external_inputs() if getattr(args, "external_input", False) else graph


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcuforge", description="Compile int8 neural networks (.tflite) into "
                                "dependency-free C for microcontrollers, bit-exact with TensorFlow Lite Micro.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"mcuforge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="write the C library and print the memory report",
                       description="Compile MODEL into a C99 library (<name>.h, <name>.c, <name>_weights.c and "
                       "the kernels it uses) and print peak SRAM (the arena), its lower bound, flash and MACs. "
                       "Exit 3 if the model does not fit --sram/--flash.")
    c.add_argument("model", help="int8 .tflite model")
    c.add_argument("-o", "--out", required=True, help="output folder (created; existing files are replaced)")
    c.add_argument("--name", help="C name prefix (default: the model file's name)")
    c.add_argument("--sram", type=parse_bytes, help="SRAM budget for the arena, e.g. 320K")
    c.add_argument("--flash", type=parse_bytes, help="flash budget for the weights, e.g. 1M")
    c.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    _add_strategy(c)
    _add_target(c, "also build <name>_<core>.elf into the output folder and print its code size")
    c.add_argument("--board", help="board profile (stm32f412, stm32f746, stm32f765, stm32h743, nrf52840, "
                   "rp2040): sets the target and the SRAM/flash budgets, and estimates latency")

    r = sub.add_parser("run", help="run a model on inputs from a .npy file",
                       description="Run MODEL on X (one input, or a stack of inputs along a new leading axis) "
                       "and save the output(s).")
    r.add_argument("model")
    r.add_argument("--input", required=True, help=".npy with one input or a stack of inputs")
    r.add_argument("--output", required=True, help=".npy for the output (.npz if the model has several)")
    r.add_argument("--engine", choices=("c", "reference"), default="c",
                   help="c: the generated C built for this host (default); reference: the numpy interpreter")
    _add_strategy(r)
    _add_target(r, "run the generated C bare-metal in QEMU (MPS2 AN386 / AN500)")

    v = sub.add_parser("verify", help="check generated C vs reference vs TFLM bit for bit",
                       description="Run random inputs (and --input samples) through the generated C, the numpy "
                       "reference and TFLM (if tflite-micro is installed). Exit 1 on any difference, naming "
                       "the first differing layer.")
    v.add_argument("model")
    v.add_argument("--samples", type=int, default=20, help="random inputs (default 20)")
    v.add_argument("--input", help=".npy with extra inputs (one, or a stack)")
    v.add_argument("--seed", type=int, default=0)
    _add_strategy(v)

    i = sub.add_parser("inspect", help="per-layer table: op, shape, MACs, params, live bytes, peak")
    i.add_argument("model")
    i.add_argument("--json", action="store_true", help="print the report as one JSON object")
    i.add_argument("--plot", metavar="PNG", help="also plot live memory per layer under each strategy")
    i.add_argument("--sram", type=parse_bytes, help="SRAM budget to draw on the plot, e.g. 64K")
    _add_strategy(i)

    b = sub.add_parser("bench", help="exact instruction counts per inference vs TFLM; Cortex-M4/M7; code size",
                       description="Count instructions per inference exactly: our generated C on x86 and TFLM "
                       "(callgrind), Cortex-M4/M7 in QEMU (our plugin); and the M7 model code size at -Os.")
    from .bench import add_bench_arguments

    add_bench_arguments(b)

    _add_quantize(sub)

    d = sub.add_parser("demo", help="compile, verify and report the built-in example network",
                       description="Build the example int8 MobileNet-style network that ships with mcuforge, "
                       "compile it to C, verify it against the reference (and TFLM when installed), and "
                       "print its memory report and host speed.")
    d.add_argument("-o", "--out", default="mcuforge_demo", help="output folder (default ./mcuforge_demo)")
    d.add_argument("--samples", type=int, default=20)
    return p


QUANTIZE_DESCRIPTION = """\
Quantize a PyTorch model to int8 (post-training: activation ranges calibrated on your data) and write
it as a .tflite that mcuforge compile, TFLM and other TFLite runtimes take.

MODEL is a torch.export program of the model in eval mode:
    torch.export.save(torch.export.export(model.eval(), (example_batch,)), "model.pt2")
DATA.npy holds calibration inputs in the torch model's own layout (NCHW images, NCL signals, NF
features), batch first. The .tflite is laid out as TFLite expects: images NHWC, 1-D signals [N, L, C];
its input and output are int8 (the report gives their scale and zero point).
"""


def _add_quantize(sub) -> None:
    q = sub.add_parser("quantize", help="PyTorch model (torch.export .pt2) -> int8 .tflite, calibrated on data",
                       description=QUANTIZE_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog="example:\n"
                       "  mcuforge quantize model.pt2 --calib calib.npy -o model.tflite --observer mse --c-out out/")
    q.add_argument("model", help="torch.export program (.pt2, from torch.export.save) of a model in eval mode")
    q.add_argument("--calib", required=True, metavar="DATA.npy",
                   help="calibration inputs in the torch model's own layout (NCHW, NCL or NF), batch first; "
                   "a few hundred representative samples")
    q.add_argument("-o", "--out", required=True, metavar="MODEL.tflite",
                   help="the int8 .tflite to write (written whole or not at all)")
    q.add_argument("--observer", choices=tuple(OBSERVERS), default="minmax",
                   help="how activation ranges are taken from the data: minmax (default), ema (moving "
                   "average), percentile (clips outliers), mse (least quantization error)")
    q.add_argument("--c-out", metavar="DIR", help="also compile the int8 model and write its C library into DIR")


def _quantize(args, console: Console) -> int:
    from .pipeline import compile_model, write_library
    from .report import print_memory
    from .torch_pipeline import quantize_exported, write_atomic

    result = quantize_exported(args.model, args.calib, observer=args.observer, progress=console.is_terminal)
    graph = result.graph
    compiled = compile_model(graph, graph.name) if args.c_out else None
    write_atomic(result.tflite, args.out)
    kinds = sorted({op.kind for op in graph.ops})
    params = sum(row.params for row in result.report.layers)
    console.print(f"quantized {args.model} on {result.samples} samples ({args.observer}): {len(graph.ops)} ops "
                  f"({', '.join(kinds)}), {params:,} parameters", markup=False)
    for role, names in (("input", graph.inputs), ("output", graph.outputs)):
        for name in names:
            t = graph[name]
            console.print(f"  {role} '{name}' {list(t.shape)} {t.dtype}: scale {t.quant.s:.6g}, "
                          f"zero point {t.quant.zp}")
    print_memory(result.report, console)
    console.print(f"wrote {args.out} ({len(result.tflite):,} bytes)", markup=False)
    if compiled is not None:
        files = write_library(compiled.lib, args.c_out)
        console.print(f"wrote {len(files)} files to {files[0].parent}/ ({compiled.lib.name}.h is the API)")
    return 0


def _compile(args, console: Console) -> int:
    from .pipeline import compile_model, load_model, write_library
    from .report import print_memory

    board = None
    if args.board:
        from .targets.boards import get_board

        board = get_board(args.board)
        args.sram = args.sram or board.sram_bytes
        args.flash = args.flash or board.flash_bytes
        if args.target == "host" and board.target:
            args.target = board.target
    graph = _load(args)
    compiled = compile_model(graph, args.name or Path(args.model).stem, sram=args.sram, flash=args.flash,
                             strategy=args.strategy, max_extra_macs=args.max_extra_macs)
    files = write_library(compiled.lib, args.out)
    print_memory(compiled.report, console)
    console.print(f"wrote {len(files)} files to {args.out}/ ({compiled.lib.name}.h is the API)")
    summary = compiled.report.as_json()
    if args.target != "host":
        from .targets.cortex_m import build_into

        size, elf = build_into(compiled.lib, args.target, f"-{args.opt}", args.out)
        console.print("\n".join(size.lines()), markup=False)
        console.print(f"wrote {elf}")
        summary["code_size"] = size.as_json()
    if board is not None:
        summary.update(_board_estimate(board, compiled, args, console))
    if args.json:
        print(json.dumps(summary))
    return 0


def _board_estimate(board, compiled, args, console: Console) -> dict:
    """Latency estimate on a board: instructions counted in QEMU / the board's clock."""
    out = {"board": board.name, "sram_budget_bytes": args.sram, "flash_budget_bytes": args.flash}
    if board.target is None:
        console.print(f"{board.mcu}: no --target for its core ({board.core}) yet; budgets checked, "
                      "no latency estimate")
        return out
    from .targets.cortex_m import CortexMModel
    from .verify import random_inputs

    model = CortexMModel.build(compiled.lib, board.target, f"-{args.opt}")
    count = model.count_instructions(random_inputs(compiled.graph, 1)[0])
    ms = board.cycles_to_ms(count)
    console.print(f"estimated latency on {board.mcu} at {board.clock_hz / 1e6:g} MHz: {ms:.1f} ms "
                  f"({count:,} instructions counted in QEMU, taken as one cycle each: an estimate)")
    return {**out, "instructions": count, "est_latency_ms": round(ms, 3)}


def _bench(args, console: Console) -> int:
    from .bench import run_bench

    return run_bench(args, console)


def _run(args, console: Console) -> int:
    from .pipeline import load_model, run_model, split_batch

    graph = _load(args)
    try:
        x = np.load(args.input)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {args.input}: {e}") from None
    batch, stacked = split_batch(graph, x)
    if args.target == "host":
        outs = run_model(graph, batch, args.engine, strategy=args.strategy, max_extra_macs=args.max_extra_macs)
    elif args.engine != "c":
        raise McuforgeError(f"--engine {args.engine} runs on the host only; leave it out with "
                            f"--target {args.target}")
    else:
        from .pipeline import compile_model
        from .targets.cortex_m import CortexMModel

        compiled = compile_model(graph, strategy=args.strategy, max_extra_macs=args.max_extra_macs)
        outs = CortexMModel.build(compiled.lib, args.target, f"-{args.opt}").run_batch(batch)
    per_output = [np.stack([o[j] for o in outs]) if stacked else outs[0][j] for j in range(len(graph.outputs))]
    if len(per_output) == 1:
        np.save(args.output, per_output[0])
    else:
        np.savez(args.output, *per_output)
    where = f"the {args.engine} engine" if args.target == "host" else f"{args.target} (QEMU)"
    console.print(f"ran {len(batch)} input(s) on {where}; wrote {args.output}")
    return 0


def _verify(args, console: Console) -> int:
    from .pipeline import load_model, split_batch
    from .report import print_verify
    from .verify import verify

    graph = _load(args)
    given = split_batch(graph, np.load(args.input))[0] if args.input else []
    result = verify(graph, samples=args.samples, given=given, tflite_bytes=Path(args.model).read_bytes(),
                    seed=args.seed, strategy=args.strategy, max_extra_macs=args.max_extra_macs)
    print_verify(result, console)
    return 0 if result.ok else 1


def _inspect(args, console: Console) -> int:
    from .pipeline import analyze, load_model
    from .report import print_layers, print_memory

    graph = _load(args)
    report = analyze(graph, strategy=args.strategy, max_extra_macs=args.max_extra_macs)
    if args.plot:
        from .engine.schedule import layer_profiles
        from .memory_plot import plot_memory

        path = plot_memory(graph.name, layer_profiles(graph, args.max_extra_macs), args.plot, args.sram)
        console.print(f"wrote {path}", markup=False)
    if args.json:
        print(json.dumps({**report.as_json(), "layers": [r.__dict__ for r in report.layers]}))
        return 0
    print_layers(report, console)
    print_memory(report, console)
    return 0


def _demo(args, console: Console) -> int:
    from .models import tiny_mobilenet
    from .pipeline import compile_model, write_library
    from .report import print_memory, print_verify
    from .targets.host import HostModel
    from .verify import random_inputs, verify

    graph = tiny_mobilenet()
    t0 = time.perf_counter()
    compiled = compile_model(graph, "tiny_mobilenet", strategy="auto")
    compile_s = time.perf_counter() - t0
    write_library(compiled.lib, args.out)
    console.print(f"compiled the built-in tiny_mobilenet in {compile_s:.2f} s -> {args.out}/")
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


COMMANDS = {"bench": _bench, "compile": _compile, "run": _run, "verify": _verify, "inspect": _inspect, "demo": _demo,
            "quantize": _quantize}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
    err = Console(stderr=True, highlight=False)
    try:
        return COMMANDS[args.command](args, console)
    except McuforgeError as e:
        err.print(f"[bold red]error:[/] {e}", markup=True, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug of ours: one line, full traceback on request
        if os.environ.get("MCUFORGE_DEBUG"):
            raise
        err.print(f"internal error: {type(e).__name__}: {e} (set MCUFORGE_DEBUG=1 for the traceback "
                  "and please report it)", markup=False, soft_wrap=True)
        return 70


if __name__ == "__main__":
    sys.exit(main())
