"""Cortex-M7 instructions and model code of one inference at each optimisation level (runtime/mcu_build.h).

    python bench/optlevels.py [--models DIR] [--core cortex-m7]

For MLPerf VWW and KWS (layer by layer, the same seeded random input): instructions inside <name>_invoke
counted by our QEMU plugin, and the model's flash without weights (SizeReport.model_code_bytes), built at
-O2, -Os, -O1, -O0 and -Os -DMCU_SMALL_CODE (the compiler's own inlining choices: one shared copy of each
kernel). Prints a markdown table; docs/c_api.md quotes it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mcuforge.targets.bench import SEED, cortex_m_code_bytes, cortex_m_instructions  # noqa: E402
from mcuforge.pipeline import compile_model, load_model  # noqa: E402
from mcuforge.verify import random_inputs  # noqa: E402

MODELS = ("mlperf_vww_mobilenetv1_025_96_int8", "mlperf_kws_dscnn_int8")
LEVELS = ("-O2", "-Os", "-O1", "-O0", "-Os -DMCU_SMALL_CODE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models")
    ap.add_argument("--core", default="cortex-m7", choices=("cortex-m4", "cortex-m7"))
    args = ap.parse_args()
    print(f"| model | flags | {args.core} instructions | vs -O2 | model code (B) |")
    print("|---|---|--:|--:|--:|")
    for stem in MODELS:
        graph = load_model(args.models / f"{stem}.tflite")
        lib = compile_model(graph, strategy="layer").lib
        x = random_inputs(graph, 1, seed=SEED)[0]
        base = None
        for opt in LEVELS:
            n = cortex_m_instructions(lib, x, args.core, opt)
            base = base or n
            print(f"| {stem} | {opt} | {n:,} | {n / base:.2f} | {cortex_m_code_bytes(lib, args.core, opt):,} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
