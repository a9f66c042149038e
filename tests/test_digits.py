"""PyTorch to C end to end: the digits example (train, PTQ, QAT, compile) and a Conv1d signal model.

Both check the generated C against the reference interpreter and TFLM on every sample."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from mcuforge.engine.reference import run
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.frontends.torch_capture import from_torch
from mcuforge.pipeline import load_model
from mcuforge.quant.ptq import quantize, quantize_input
from mcuforge.verify import verify

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits.py"
KEYS = {"float_acc", "ptq_acc", "qat_acc", "c_acc", "c_model", "test_samples", "train_seconds", "total_seconds"}


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mcuforge_digits_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tflm_outputs(tflite: bytes, xs: np.ndarray) -> np.ndarray:
    """TFLM's output for every sample of xs (one interpreter, reused)."""
    runtime = pytest.importorskip("tflite_micro").runtime
    interpreter = runtime.Interpreter.from_bytes(tflite, arena_size=1 << 20)
    outs = []
    for x in xs:
        interpreter.set_input(np.ascontiguousarray(x[None]), 0)
        interpreter.invoke()
        outs.append(np.array(interpreter.get_output(0)))
    return np.stack(outs)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("digits")
    stdout, threads = io.StringIO(), torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(stdout):
            summary = _example().main(["--out", str(out), "--epochs", "2", "--qat-epochs", "1"])
    finally:
        torch.set_num_threads(threads)  # the example sets its own
    return out, summary, stdout.getvalue()


def test_digits_example_writes_its_files_and_summary(digits_run):
    out, summary, stdout = digits_run
    assert json.loads(stdout.strip().splitlines()[-1]) == summary
    assert KEYS <= set(summary)
    x, y = np.load(out / "test_x.npy"), np.load(out / "test_y.npy")
    assert x.dtype == np.int8 and x.shape == (summary["test_samples"], 8, 8, 1)
    assert y.dtype == np.int64 and y.shape == (len(x),) and set(np.unique(y)) <= set(range(10))
    assert (out / "c" / "digits.h").is_file() and (out / "c" / "digits.c").is_file()
    int8_acc = summary["qat_acc"] if summary["c_model"] == "qat" else summary["ptq_acc"]
    assert summary["c_acc"] == int8_acc  # the example also asserts equal predictions sample by sample
    assert summary["float_acc"] > 80.0 and summary["c_acc"] > 80.0  # two epochs are plenty for a start


def test_digits_int8_model_is_bit_exact_with_tflm(digits_run):
    out, summary, _ = digits_run
    tflite = (out / "model_int8.tflite").read_bytes()
    graph = load_model(out / "model_int8.tflite")
    x, y = np.load(out / "test_x.npy"), np.load(out / "test_y.npy")
    assert graph[graph.inputs[0]].dtype == "int8" and graph[graph.inputs[0]].shape == (1, 8, 8, 1)
    reference = np.stack([run(graph, [xi[None]])[0][0] for xi in x])
    tflm = _tflm_outputs(tflite, x).reshape(reference.shape)
    np.testing.assert_array_equal(tflm, reference)
    tflm_acc = round(100.0 * float(np.mean(tflm.argmax(-1) == y)), 2)
    assert tflm_acc == summary["c_acc"]


class Signal(torch.nn.Module):
    """[N, 3, 32] -> 4 scores: Conv1d + BN + ReLU, depthwise Conv1d + BN + ReLU6, pools, Linear."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.features = nn.Sequential(nn.Conv1d(3, 8, 5, padding=2, bias=False), nn.BatchNorm1d(8), nn.ReLU(),
                                      nn.MaxPool1d(2), nn.Conv1d(8, 8, 3, padding=1, groups=8),
                                      nn.BatchNorm1d(8), nn.ReLU6(), nn.Conv1d(8, 12, 1), nn.AvgPool1d(2))
        self.head = nn.Linear(12 * 8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def signal_data(n: int, seed: int = 0) -> np.ndarray:
    """Noisy sines, [N, 3, 32] (torch's NCL)."""
    rng = np.random.default_rng(seed)
    t = np.arange(32, dtype=np.float32)
    phase = rng.uniform(0, 2 * np.pi, (n, 3, 1))
    freq = rng.uniform(0.1, 0.6, (n, 3, 1))
    return (np.sin(freq * t + phase) + 0.2 * rng.standard_normal((n, 3, 32))).astype(np.float32)


def test_conv1d_model_c_reference_and_tflm_agree():
    torch.manual_seed(0)
    model = Signal().eval()
    x_ncl = signal_data(64)
    float_graph = from_torch(model, torch.from_numpy(x_ncl[:2]))
    x_nlc = x_ncl.transpose(0, 2, 1)
    graph = quantize(float_graph, x_nlc, observer="minmax", progress=False)
    given = [quantize_input(graph, x_nlc[i:i + 1]) for i in range(6)]
    result = verify(graph, samples=4, given=given, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.mismatches[:3]
    with torch.no_grad():
        expected = model(torch.from_numpy(x_ncl[:6])).numpy()
    got = np.stack([run(graph, [g])[0][0] for g in given])
    q = graph[graph.outputs[0]].quant
    assert np.abs((got.astype(np.int32) - q.zp) * q.s - expected).max() <= 4 * q.s
