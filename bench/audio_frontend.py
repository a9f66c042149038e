"""The audio front-end's numbers for docs/audio.md: numpy batch time, error against float64, and the C on
Cortex-M4/M7 (instructions per second of audio, code, tables, scratch).

    taskset -c 0 python bench/audio_frontend.py [--data ../shared/datasets/speech_commands8.npz]

numpy: wall time of `features` on every clip of the data set (train + test, 2,000 one-second clips), best of
two runs, on however many cores the process may use (pin it with taskset for one). Error: |to_float(codes) -
log_mel_float| in natural-log units over all clips, and over full-scale synthetic signals. Cortex-M: the
default config as `frontend_library` builds it, instructions of one `<name>_invoke` (one whole clip, one
second) counted by our QEMU plugin, for a speech clip and for silence; sizes as linked (SizeReport).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mcuforge.audio import FrontendConfig, features, frontend_library, log_mel_float, to_float  # noqa: E402
from mcuforge.audio.emit import scratch_bytes, table_bytes  # noqa: E402
from mcuforge.targets.cortex_m import CortexMModel  # noqa: E402


def synthetic(samples: int) -> np.ndarray:
    n = np.arange(samples)
    chirp = np.sin(2 * np.pi * (50 * n / 16000 + 3950 * (n / 16000) ** 2 / 2))
    clips = [np.full(samples, 32767), np.full(samples, -32768), np.where(n % 2, 32767, -32768),
             np.round(32767 * chirp), np.round(32767 * np.sin(2 * np.pi * 1000 * n / 16000)),
             *(np.where((n // k) % 2 == 0, 32767, -32768) for k in (3, 7, 16, 40, 101))]
    return np.stack(clips).astype(np.int16)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "speech_commands8.npz")
    args = ap.parse_args()
    config = FrontendConfig()
    with np.load(args.data) as data:
        clips = np.concatenate([data["x_train"], data["x_test"]])
    features(clips[:8], config)  # tables built
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        codes = features(clips, config)
        best = min(best, time.perf_counter() - start)
    print(f"numpy: {len(clips)} clips of {clips.shape[1]} samples -> {codes.shape}: {best:.2f} s")
    speech_error = np.abs(to_float(codes, np.float64) - log_mel_float(clips, config))
    tones = synthetic(clips.shape[1])
    tone_error = np.abs(to_float(features(tones, config), np.float64) - log_mel_float(tones, config))
    print(f"max |error| vs float64 (ln units): speech {speech_error.max():.5f} (mean {speech_error.mean():.6f}), "
          f"full-scale synthetic {tone_error.max():.5f}; output step ln(2)/1024 = {np.log(2) / 1024:.5f}")
    print(f"scratch {scratch_bytes(config)} B, tables {table_bytes(config)} B")
    lib = frontend_library(config, "fe")
    print("| core | -O | instructions / s of speech | / s of silence | per frame | code (B) | tables (B) | bss (B) |")
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    frames = config.frames(clips.shape[1])
    for core in ("cortex-m4", "cortex-m7"):
        for opt in ("-O2", "-Os"):
            model = CortexMModel.build(lib, core, opt)
            counts, outs = model.count_instructions_batch([[clips[0]], [np.zeros_like(clips[0])]])
            assert np.array_equal(outs[0][0], codes[0]), "the C differs from numpy"
            size = model.size_report()
            print(f"| {core} | {opt} | {counts[0]:,} | {counts[1]:,} | {counts[0] // frames:,} | {size.code_bytes:,} "
                  f"| {size.const_bytes:,} | {size.bss_bytes - 2 * clips.shape[1] - 2 * codes[0].size:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
