"""What the tests check against and share (the one harness module besides the graph builder, netbuilder.py):
the TFLM oracle (pip tflite-micro), ../shared's models and samples, and a recorder of the const arrays the
code generator emits. No test imports another test."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence
from unittest import mock

import numpy as np
import pytest

from mcuforge.engine.codegen.context import ConstPool

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models"
PENDING = MODELS / "pending"  # public models that needed operators the engine grew later (MANIFEST there)
SAMPLES = SHARED / "samples"


def dev_models() -> list[Path]:
    return sorted(MODELS.glob("*.tflite"))


def pending_models() -> list[Path]:
    return sorted(PENDING.glob("*.tflite"))


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


def dev_model(part: str) -> Path:
    """The dev model whose file name contains `part`."""
    return next(p for p in dev_models() if part in p.stem)


C_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4, "float": 4, "int64_t": 8}


@contextmanager
def const_arrays() -> Iterator[dict[tuple[str, str, bytes], int]]:
    """Every const array the code generator asks for, by (tag, C type, content) -> bytes: before it merges
    arrays of identical content (which tiny layers can have, e.g. one-channel shift arrays)."""
    arrays: dict[tuple[str, str, bytes], int] = {}
    add = ConstPool.add

    def recording(pool: ConstPool, tag: str, values, ctype: str) -> str:
        ident = add(pool, tag, values, ctype)
        arrays[(tag, ctype, values.tobytes())] = values.size * C_BYTES[ctype]
        return ident

    with mock.patch.object(ConstPool, "add", recording):
        yield arrays


def image_model():
    """A small float torch model: NCHW [N, 2, 10, 10] -> 5 scores."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 6, 3, groups=6), nn.ReLU6(), nn.Flatten(), nn.Linear(6 * 3 * 3, 5))


def save_program(model, sample: tuple[int, ...], path: Path) -> Path:
    """`model` exported (torch.export, a batch of 2) to `path`, its batch norms given random statistics."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    torch.export.save(torch.export.export(model, (torch.randn(2, *sample),)), path)
    return path


def calibration(sample: tuple[int, ...], path: Path, n: int = 48) -> np.ndarray:
    """n seeded normal samples of shape `sample`, also saved to `path` (.npy)."""
    x = np.random.default_rng(1).standard_normal((n, *sample)).astype(np.float32)
    np.save(path, x)
    return x


def assert_qemu_equals_reference(graph, samples: int = 3, seed: int = 5) -> None:
    """The graph compiled for Cortex-M4 and M7 runs `samples` random inputs in one QEMU run each (a
    stateful model carries its state from one to the next) and equals the reference bit for bit."""
    from mcuforge.engine.reference import initial_state, run
    from mcuforge.pipeline import compile_model
    from mcuforge.targets.cortex_m import CortexMModel
    from mcuforge.verify import random_inputs

    compiled = compile_model(graph)
    batch = random_inputs(graph, samples, seed=seed)
    for core in ("cortex-m4", "cortex-m7"):
        counts, outs = CortexMModel.build(compiled.lib, core=core).count_instructions_batch(batch)
        assert len(outs) == samples and min(counts) > 0
        state = initial_state(graph)
        for xs, got in zip(batch, outs):
            for q, r in zip(got, run(graph, xs, state)):
                np.testing.assert_array_equal(q, r, err_msg=core)


def assert_sanitized_equals_reference(graph, samples: int = 2) -> None:
    """The generated C built with -fsanitize=address,undefined equals the reference on random inputs (one
    process per input: a stateful model starts each from a cleared state, as the reference is run here)."""
    from mcuforge.engine.reference import run
    from mcuforge.pipeline import compile_model
    from mcuforge.targets.host import build_executable, run_executable
    from mcuforge.verify import random_inputs

    compiled = compile_model(graph)
    exe = build_executable(compiled.lib, sanitize=True, opt="-O1")
    for xs in random_inputs(graph, samples, seed=7):
        for got, want in zip(run_executable(compiled.lib, exe, xs), run(graph, xs)):
            np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- the command line


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """`mcuforge ARGS` in this process: (exit status, stderr)."""
    from mcuforge.cli import main as _main

    try:
        code = _main([str(a) for a in args])
    except SystemExit as stop:  # argparse refuses before main's handlers
        code = stop.code
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, mention: str, status: int = 2) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == status, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert lines[0].startswith("error:") and mention in lines[0], lines[0]
