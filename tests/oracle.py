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
