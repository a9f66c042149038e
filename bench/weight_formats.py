"""Weight formats benchmark: each dev model's weights re-quantized into a format (`mcuforge compress`: int4,
ternary, ternary:base3, pow2, codebook:4, codebook:2, and sparse and sparse:int4 at 80 % zeros), then the
same model compiled with int8 weights and in the format: weight bytes, flash of all constants, peak SRAM,
Cortex-M7 instructions per inference (QEMU plugin, exact, one seeded random input) and the output change;
and, as the anchor for "no decoded copy in SRAM", TFLM's minimum arena on the same model written with int8
and with INT4 convolution weights (its kernels unpack an INT4 filter into the arena first).

    python bench/weight_formats.py [--models DIR] [--formats int4,ternary,...] [--sparsity 0.8]
                                   [--out docs/weight_formats.md]

Both builds compute the same bits (tests/test_weight_formats.py checks C = reference = TFLM); the int8 build
of the compressed model is the fair baseline, since its weights and scales are the int4 model's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from memory import tflm_arena  # noqa: E402

from mcuforge.compress.weights import compress_weights, output_changes, weight_bytes  # noqa: E402
from mcuforge.frontends.tflite_writer import write_tflite  # noqa: E402
from mcuforge.ir.formats import choose_formats, weight_tensors  # noqa: E402
from mcuforge.pipeline import compile_model, load_model  # noqa: E402
from mcuforge.targets.cortex_m import CortexMModel  # noqa: E402
from mcuforge.verify import random_inputs  # noqa: E402

MODELS = ("mlperf_kws_dscnn_int8", "mlperf_ic_resnet8_int8", "mlperf_vww_mobilenetv1_025_96_int8",
          "mlperf_ad_fc_autoencoder_int8", "ambiq_har_conv1d_int8")


def measure(path: Path, fmt: str, sparsity: float) -> dict:
    original = load_model(path)
    graph, _ = compress_weights(original, fmt, sparsity)
    x = random_inputs(graph, 1, seed=3)[0]
    row = {"model": path.stem, "tensors": len(weight_tensors(graph))}
    row["weights_new"], row["weights_int8"] = weight_bytes(graph)
    for tag, g in (("int8", choose_formats(graph, "int8")), ("new", graph)):
        compiled = compile_model(g)
        row[f"flash_{tag}"] = compiled.lib.flash_weights_bytes
        row[f"sram_{tag}"] = compiled.plan.arena_bytes
        row[f"m7_{tag}"] = CortexMModel.build(compiled.lib, core="cortex-m7").count_instructions(x)
        data = write_tflite(g)
        row[f"tflite_{tag}"] = len(data)
        row[f"tflm_{tag}"] = tflm_arena(data, x)[0]
    change = output_changes(original, graph, [xs[0] for xs in random_inputs(original, 16, seed=0)])[0]
    row["mean_steps"] = change.mean_steps
    return row


def table(rows: list[dict], fmt: str) -> str:
    lines = [f"| model | weight tensors | weights int8 -> {fmt} (B) | ratio | flash, all constants (B) | peak SRAM (B) "
             f"| Cortex-M7 instructions int8 -> {fmt} | ratio | output change (mean steps) | .tflite (B) "
             "| TFLM arena (B) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['tensors']} | {r['weights_int8']:,} -> {r['weights_new']:,} | "
                     f"{r['weights_new'] / r['weights_int8']:.2f}x | {r['flash_int8']:,} -> {r['flash_new']:,} | "
                     f"{r['sram_int8']:,} -> {r['sram_new']:,} | {r['m7_int8']:,} -> {r['m7_new']:,} | "
                     f"{r['m7_new'] / r['m7_int8']:.2f}x | {r['mean_steps']:.1f} | "
                     f"{r['tflite_int8']:,} -> {r['tflite_new']:,} | {r['tflm_int8']:,} -> {r['tflm_new']:,} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=str(ROOT.parent / "shared" / "models"))
    p.add_argument("--formats", default="int4,ternary,ternary:base3,pow2,codebook:4,codebook:2,sparse,sparse:int4",
                   help="comma-separated formats")
    p.add_argument("--sparsity", type=float, default=0.8, help="share of zeros for the sparse formats (default 0.8)")
    p.add_argument("--out", help="write the tables into this markdown file (replaced whole)")
    args = p.parse_args()
    tables = []
    for fmt in args.formats.split(","):
        rows = []
        for name in MODELS:
            rows.append(measure(Path(args.models) / f"{name}.tflite", fmt, args.sparsity))
            print(fmt, rows[-1], flush=True)
        title = f"{fmt} ({100 * args.sparsity:g} % zeros)" if fmt.startswith("sparse") else fmt
        tables.append(f"### {title}\n\n{table(rows, fmt)}")
    text = "\n\n".join(tables)
    print(text)
    if args.out:
        Path(args.out).write_text(
            "# Weight formats\n\nMeasured with `python bench/weight_formats.py --out docs/weight_formats.md`"
            " (this machine; instruction counts are exact and do not depend on it). Each model's weights are "
            "re-quantized into the format (`mcuforge compress --weights FORMAT`: int4, ternary and pow2 per output "
            "channel, codebooks clustered per tensor, sparse by magnitude pruning (sparse:int4: pruned, then int4); "
            "post-training, no retraining: ternary and pruned weights need training, the next issue), then the "
            "same model is compiled with int8 weights and in the format; both compute the same bits. The output "
            "change compares the compressed model with the original on 16 random inputs, in steps of the output's "
            "quantization: without retraining on real data it says little about accuracy. The int8 baseline is "
            "the compressed model stored as int8, so its instructions differ a little between formats (ternary's "
            "larger per-channel scales take the general requantization).\n\n"
            f"{text}\n\nDepthwise convolutions run on the plane kernel in every format (each channel's taps decoded "
            "once, then as for int8). With int4, ternary, pow2, codebook:4 and codebook:2 weights, fully-connected "
            "layers, pointwise convolutions whose depth is a multiple of a weight word (8 or 16 values) and im2col "
            "convolutions run on the fast low-bit kernels (`mcu_gemm_s4.h`: a word of weights per load, decoded in "
            "registers, or for pow2 and codebooks looked up four codes at a time in a table; four pixels at a time "
            "where the column fits); with sparse weights, on kernels that skip the zeros (`mcu_sparse_s8.h`). "
            "Other convolution and fully-connected layers, and every one in base 3, run on the plain kernels, "
            "which decode each weight as they read it (`mcu_weights.h`): hence their instruction ratios. Peak "
            "SRAM is planned as for the int8 build. The "
            ".tflite columns are the model written with int8 weights and with INT4 convolution weights (the pip "
            "tflite-micro refuses INT4 fully-connected filters, so those stay INT8 in the file); TFLM's minimum "
            "arena (bisection to 16 bytes) grows with INT4 filters, which its kernels unpack into the arena.\n")


if __name__ == "__main__":
    main()
