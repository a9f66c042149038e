"""The command line's arguments: the parser and checks (the argument types are in argtypes). A mistake in
the arguments is one line on stderr and exit status 2.

Standard library only at module level, so that `mcuforge.cli.main` can import it before its signal handlers
are in place; `build_parser` imports the modules that list choices (quant.observers, targets.bench).
"""
from __future__ import annotations

import argparse
from typing import NoReturn

from .. import __version__
from ..choices import DEFAULT_STRATEGY, OBJECTIVES, STRATEGIES
from .argtypes import parse_bytes, parse_count, parse_fraction, parse_positive  # noqa: F401  (re-exported)
from ..errors import UsageError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: <what is wrong>; see 'mcuforge <command> --help'` (no usage
    block), exit status 2. Subcommand parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {printable(message)}; see '{self.prog} --help'\n")


def printable(text: str) -> str:
    """`text` on one line with control characters escaped (argparse quotes user input into its messages)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def check_samples(samples: int, given: str | None) -> None:
    """`verify` needs something to check: random samples or an --input file."""
    if samples == 0 and not given:
        raise UsageError("nothing to verify: --samples is 0 and no --input is given; use --samples N (N >= 1) "
                         "or --input X.npy")


def check_engine(engine: str, target: str) -> None:
    """`run --engine reference` runs the numpy interpreter on the host only."""
    if target != "host" and engine != "c":
        raise UsageError(f"--engine {engine} runs on the host only; leave it out with --target {target}")



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
  mcuforge validate model.tflite --data data.npz --float model_float.tflite   C vs TFLM int8 and the float model
"""


TARGETS = ("host", "cortex-m4", "cortex-m7")
OPT_LEVELS = ("O0", "O1", "O2", "O3", "Os")


def _add_target(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--target", choices=TARGETS, default="host",
                   help=f"host (default), or a Cortex-M core: {what} "
                   "(needs arm-none-eabi-gcc and qemu-system-arm)")
    p.add_argument("--opt", choices=OPT_LEVELS, default="O2",
                   help="arm-none-eabi-gcc optimisation level for --target cortex-m* (default O2)")


def _add_strategy(p: argparse.ArgumentParser) -> None:
    from ..ir.formats import CHOICES as WEIGHT_CHOICES

    p.add_argument("--strategy", choices=STRATEGIES, default=DEFAULT_STRATEGY,
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
    p.add_argument("--weights", choices=WEIGHT_CHOICES,
                   help="how the convolution and fully-connected weights are stored in flash: int8, int4 (two "
                   "values per byte; every weight must lie in -8..7), ternary (-1, 0, 1; four per byte), pow2 (0 "
                   "and +-2^k up to 64; two per byte), codebook:B (B-bit indices into a table of "
                   "2^B values per tensor; at most 2^B distinct values), sparse (a bitmap and the nonzero values) "
                   "or auto (per tensor, the format with the "
                   "fewest bytes that holds its values: a lossless saving). Default: as the model file stores them (int4 "
                   "for its INT4 tensors, int8 for the others). The results do not change; the kernels decode the "
                   "weights as they read them")


def _add_quantize_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quantize-input", action="store_true",
                   help="the --input array holds real values: quantize them with the int8 model input's scale and "
                   "zero point (as TFLite's QUANTIZE: halves away from zero, clamped to -128..127)")


def build_parser() -> argparse.ArgumentParser:
    """The `mcuforge` argument parser (imports the modules that list choices, e.g. quant.observers)."""
    p = Parser(prog="mcuforge", description="Compile int8 neural networks (.tflite) into "
                                "dependency-free C for microcontrollers, bit-exact with TensorFlow Lite Micro.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"mcuforge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="write the C library and print the memory report",
                       description="Compile MODEL into a C99 library (<name>.h, <name>.c, <name>_weights.c and "
                       "the kernels it uses) and print peak SRAM (the arena), its lower bound, flash and MACs. "
                       "Exit 3 if the model does not fit --sram/--flash.")
    c.add_argument("model", help="int8 .tflite model")
    c.add_argument("-o", "--out", required=True, help="output folder: new, empty, or one mcuforge wrote (marked "
                   "by a .mcuforge file); replaced whole, or left as it was if anything fails")
    c.add_argument("--name", help="C name prefix (default: the model file's name)")
    c.add_argument("--sram", type=parse_bytes, help="SRAM budget for the arena, e.g. 320K")
    c.add_argument("--flash", type=parse_bytes, help="flash budget, e.g. 1M: the weights and constants, and the "
                   "model's code too when built for a Cortex-M --target (or a --board with one)")
    c.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    _add_strategy(c)
    c.add_argument("--objective", choices=OBJECTIVES,
                   help="what --strategy auto optimises: latency (the default with --sram or --board: of the "
                   "plans that fit the SRAM budget, the one with the fewest predicted instructions on the "
                   "board's core, Cortex-M7 otherwise) or memory (the default without a budget: the lowest "
                   "peak SRAM)")
    _add_target(c, "also build <name>_<core>.elf into the output folder and print its code size")
    c.add_argument("--board", help="board profile (stm32f412, stm32f746, stm32f765, stm32h743, nrf52840, "
                   "rp2040): sets the target and the SRAM/flash budgets, and estimates latency")
    c.add_argument("--report", metavar="FILE", help="also write a report: FILE.html (one self-contained page) or "
                   "FILE.md (with FILE_memory.svg): the model's layers, memory plot, plan, flash, latency estimates")
    c.add_argument("--arena", choices=("static", "external"), default="static",
                   help="static (default): the library's own static buffer, the fastest; external: your buffer, "
                   "handed over with <name>_set_arena(buf, size) before the first invoke (it checks size and "
                   "alignment), so that several models can share one arena sized for the largest")
    c.add_argument("--arena-section", metavar="NAME", help="linker section of the static arena, e.g. .sram2 "
                   "(a GCC/clang section attribute)")
    c.add_argument("--weights-section", metavar="NAME", help="linker section of the weights and other const data, "
                   "e.g. .ext_flash")

    r = sub.add_parser("run", help="run a model on inputs from a .npy file",
                       description="Run MODEL on X (one input, or a stack of inputs along a new leading axis) "
                       "and save the output(s).")
    r.add_argument("model")
    r.add_argument("--input", required=True, help=".npy with one input or a stack of inputs")
    r.add_argument("--output", required=True, help=".npy for the output (.npz if the model has several), in an "
                   "existing folder")
    _add_quantize_input(r)
    r.add_argument("--engine", choices=("c", "reference"), default="c",
                   help="c: the generated C built for this host (default); reference: the numpy interpreter")
    _add_strategy(r)
    _add_target(r, "run the generated C bare-metal in QEMU (MPS2 AN386 / AN500)")

    v = sub.add_parser("verify", help="check generated C vs reference vs TFLM bit for bit",
                       description="Run random inputs (and --input samples) through the generated C, the numpy "
                       "reference and TFLM (if tflite-micro is installed). Exit 1 on any difference, naming "
                       "the first differing layer.")
    v.add_argument("model")
    v.add_argument("--samples", type=parse_count, default=20, help="random inputs (default 20)")
    v.add_argument("--input", help=".npy with extra inputs (one, or a stack)")
    _add_quantize_input(v)
    v.add_argument("--seed", type=parse_count, default=0)
    _add_strategy(v)

    i = sub.add_parser("inspect", help="per-layer table: op, shape, MACs, params, live bytes, peak")
    i.add_argument("model")
    i.add_argument("--json", action="store_true", help="print the report as one JSON object")
    i.add_argument("--plot", metavar="FILE", help="also plot live memory per layer under each strategy "
                   "(.png, .svg or .pdf, in an existing folder)")
    i.add_argument("--sram", type=parse_bytes, help="SRAM budget to draw on the plot, e.g. 64K")
    i.add_argument("--ops", action="store_true", help="list every op run (a patch stage's layers once per patch, "
                   "a fused block's slices) instead of the model's layers")
    _add_strategy(i)

    b = sub.add_parser("bench", help="exact instruction counts per inference vs TFLM; Cortex-M4/M7; code size",
                       description="Count instructions per inference exactly: our generated C on x86 and TFLM "
                       "(callgrind), Cortex-M4/M7 in QEMU (our plugin), all built at -O2; Cortex-M7 also at -Os and "
                       "-O0 (ratios to -O2); the M7 model code size at -Os and -O2.")
    from ..targets.bench import add_bench_arguments

    add_bench_arguments(b)

    _add_quantize(sub)
    _add_compress(sub)
    _add_validate(sub)
    from .nas import add_nas_parser, add_search_parser

    add_nas_parser(sub)
    add_search_parser(sub)
    from .sweep import add_sweep_parser

    add_sweep_parser(sub)

    d = sub.add_parser("demo", help="compile, verify and report the built-in example network",
                       description="Build the example int8 MobileNet-style network that ships with mcuforge, "
                       "compile it to C, verify it against the reference (and TFLM when installed), and "
                       "print its memory report and host speed.")
    d.add_argument("-o", "--out", default="mcuforge_demo", help="output folder (default ./mcuforge_demo; new, "
                   "empty, or one mcuforge wrote)")
    d.add_argument("--samples", type=parse_positive, default=20, help="random inputs to verify (default 20)")
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


VALIDATE_DESCRIPTION = """\
Run the generated C of the int8 MODEL on your samples and compare it with TFLM running the same model
(bit for bit: exit 1 on any difference, a bug of mcuforge) and, with --float, with the float model it was
made from (per output: RMSE, cosine similarity, largest error; the C's int8 outputs dequantized). With
labels: top-1 accuracy. Exit 0 when the validation ran: the numbers are a report, not a pass/fail.

DATA: an .npz with x (or x_test) and optional labels y (or y_test), or an .npy with x. Samples along the
first axis, each in the int8 model's input shape and layout (NHWC; axes of size 1 may be left out).
Floats are real values, quantized with the input's scale and zero point as TFLite's QUANTIZE does;
integers are taken as int8 codes already quantized (-128..127).
"""


def _add_validate(sub) -> None:
    v = sub.add_parser("validate", help="generated C on your data vs TFLM int8 and the float model: accuracy, "
                       "RMSE, cosine", description=VALIDATE_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog="example:\n"
                       "  mcuforge validate model.tflite --data data.npz --float model_float.tflite --samples 500")
    v.add_argument("model", help="int8 .tflite model")
    v.add_argument("--data", required=True, metavar="DATA", help=".npz (x or x_test, optional y or y_test) or "
                   ".npy (x): samples first, in the model's layout")
    v.add_argument("--float", dest="float_model", metavar="FLOAT_MODEL",
                   help="the float model: a float32 .tflite (run in TFLM; int8 'hybrid' weights are dequantized) "
                   "or a torch.export program (.pt2)")
    v.add_argument("--float-layout", choices=("nchw", "nhwc"),
                   help="the float model's input layout (default nchw for a .pt2, nhwc for a .tflite): the "
                   "samples' channel axis is moved to match, and back on its outputs")
    v.add_argument("--samples", type=parse_positive, metavar="N",
                   help="use the first N samples (default all, at most 1000)")
    v.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    v.add_argument("--strategy", choices=STRATEGIES, default=DEFAULT_STRATEGY,
                   help="how the C runs the model, as in compile (default auto)")
    v.add_argument("--max-extra-macs", type=parse_fraction, default=0.15, metavar="FRACTION",
                   help="cap on the MACs a strategy may add (default 15%%)")
    v.add_argument("--report", metavar="FILE", help="also write a report with the results: FILE.html, or FILE.md "
                   "(with FILE_memory.svg)")
    _add_target(v, "run the generated C bare-metal in QEMU (MPS2 AN386 / AN500)")


COMPRESS_DESCRIPTION = """\
Re-quantize the weights of an int8 model into a smaller format and write the result as an int8 .tflite
that TFLM runs as it is: each convolution and fully-connected weight tensor is quantized per output channel
into the format's values (int4: -8..7; ternary: -1, 0, 1; pow2: 0, +-1, +-2, .. +-64), its scale chosen
for the least squared error, and the bias re-scaled to match; codebook:B clusters each tensor's values
into 2^B. `mcuforge compile OUT.tflite --weights auto` then stores those weights in the format (int4 and
pow2: two per byte; ternary: four; codebook:B: B bits and a table). Prints the weight bytes before and after and how much the outputs move on the
--calib samples (or on random inputs): post-training, without retraining, so check the accuracy on your
data (mcuforge validate).
"""


def _add_compress(sub) -> None:
    w = sub.add_parser("compress", help="int8 .tflite -> the same model with int4, ternary, pow2 or codebook "
                       "weights (post-training)",
                       description=COMPRESS_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  mcuforge compress kws.tflite --weights int4 -o kws_int4.tflite\n"
                       "  mcuforge compile kws_int4.tflite --weights auto -o kws_c/\n\n"
                       "training into the formats, with pruning, ranked: mcuforge compress sweep --help")
    w.add_argument("model", help="int8 .tflite model")
    from ..compress.weights import TARGETS

    w.add_argument("--weights", choices=TARGETS, required=True,
                   help="the format to quantize the weights into: int4 (per output channel, -8..7), ternary (per "
                   "output channel, -1, 0, 1), pow2 (per output channel, 0 and +-2^k), codebook:B (at most 2^B "
                   "distinct values per tensor, B = 1 .. 7, clustered) or sparse (the smallest values set to 0, "
                   "--sparsity of each tensor; stored as a bitmap and the nonzero values)")
    w.add_argument("--sparsity", type=parse_fraction, default=0.5, metavar="FRACTION",
                   help="with --weights sparse: the share of each weight tensor set to 0, e.g. 0.8 or 80%% "
                   "(default 50%%)")
    w.add_argument("-o", "--out", required=True, metavar="OUT.tflite", help="the compressed model (.tflite)")
    w.add_argument("--calib", metavar="DATA", help="samples to measure the change of the outputs on: .npz (x or "
                   "x_test, optional y or y_test: then top-1 accuracy too) or .npy (x), in the model's layout")
    w.add_argument("--samples", type=parse_positive, default=32, metavar="N",
                   help="samples to compare on (default 32: the first N of --calib, else N random inputs)")


def _add_quantize(sub) -> None:
    from ..quant.observers import OBSERVERS

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


