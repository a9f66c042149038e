"""The TFLM oracle (pip tflite-micro) as the tests use it."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models"
SAMPLES = SHARED / "samples"


def dev_models() -> list[Path]:
    return sorted(MODELS.glob("*.tflite"))


def negative_models() -> list[Path]:
    return sorted((MODELS / "negative").glob("*.tflite"))


def tflm_run(data: bytes, inputs: Sequence[np.ndarray], n_outputs: int = 1,
             arena_size: int = 4 << 20) -> list[np.ndarray]:
    """Runs a .tflite model once in the TFLM interpreter; returns its first n_outputs outputs."""
    runtime = pytest.importorskip("tflite_micro").runtime
    it = runtime.Interpreter.from_bytes(data, arena_size=arena_size)
    for i, x in enumerate(inputs):
        it.set_input(np.ascontiguousarray(x), i)
    it.invoke()
    return [np.array(it.get_output(i)) for i in range(n_outputs)]


def real_samples(model: Path) -> list[np.ndarray]:
    """The real inputs in ../shared/samples that fit a model, as the model's input dtype and shape."""
    stem = model.stem
    if stem.startswith("mlperf_kws"):
        x = np.load(SAMPLES / "kws_inputs_int8_49x10.npy")
        return [x.reshape(1, 49, 10, 1)]
    if stem.startswith("mlperf_ad"):
        # log-mel features, 200 frames x 128 bins; the model takes 5 consecutive frames, quantized
        # with its input parameters (scale 0.391, zero point 89 in the file)
        from mcuforge.frontends.tflite_reader import read_tflite_file

        g = read_tflite_file(model)
        q = g[g.inputs[0]].quant
        feats = np.fromfile(SAMPLES / "ad_normal_id_01_00000000_hist_librosa.bin", np.float32).reshape(200, 128)
        windows = [feats[i:i + 5].reshape(1, 640) for i in range(0, 196, 39)]
        return [np.clip(np.round(w / q.s) + q.zp, -128, 127).astype(np.int8) for w in windows]
    return []
