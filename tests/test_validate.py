"""`mcuforge validate`: the generated C on the user's data against TFLM (int8, bit for bit) and against the float
model (.tflite in TFLM, or a torch.export .pt2). The expected numbers are computed here independently: TFLM
through tests/oracle.py, quantization and the metrics with a few lines of numpy. Under CI (the CI environment
variable set) a missing tflite-micro, PyTorch or Arm toolchain fails these tests instead of skipping them."""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from mcuforge.cli import main
from mcuforge.pipeline import load_model
from oracle import MODELS, real_samples, tflm_run

KWS = MODELS / "mlperf_kws_dscnn_int8.tflite"
KWS_FLOAT = MODELS / "negative" / "mlperf_kws_dscnn_float32.tflite"  # float32, its conv weights int8 ('hybrid')
HELLO = MODELS / "tflm_hello_world_int8.tflite"
HELLO_FLOAT = MODELS / "negative" / "tflm_hello_world_float.tflite"


def need(module: str, why: str):
    """The module, or a skip (a failure under CI)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the validate tests: {module} is not installed ({why})", pytrace=False)
        pytest.skip(f"needs {module} ({why})")


@pytest.fixture(autouse=True)
def tflm():
    need("tflite_micro", "TFLM is validate's oracle: pip install tflite-micro")


def validate(args: list, capsys) -> tuple[int, dict | None, str, str]:
    """Runs `mcuforge validate ... --json`: (exit status, the JSON object or None, stdout, stderr)."""
    code = main(["validate", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if code != 2 and lines else None), out, err


def quantized(graph, x: np.ndarray) -> np.ndarray:
    """TFLite's QUANTIZE, written out: float32 division, halves away from zero, clamped."""
    q = graph[graph.inputs[0]].quant
    v = x.astype(np.float32) / np.float32(q.s)
    return np.clip(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + q.zp, -128, 127).astype(np.int8)


def dequantized(graph, codes: np.ndarray) -> np.ndarray:
    q = graph[graph.outputs[0]].quant
    return (codes.astype(np.float64) - float(q.zp)) * float(q.s)


def metrics(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    a, b = ours.ravel().astype(np.float64), ref.ravel().astype(np.float64)
    return (math.sqrt(float(np.mean((a - b) ** 2))), float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)),
            float(np.abs(a - b).max()))


# ---------------------------------------------------------------- (a) KWS against its float32 model


def test_kws_on_real_samples_equals_tflm_and_follows_the_float_model(tmp_path, capsys):
    real = real_samples(KWS)[0]  # [1, 49, 10, 1] int8: a real keyword's features, already quantized
    rng = np.random.default_rng(0)
    near = [np.clip(real.astype(np.int16) + rng.integers(-s, s + 1, real.shape), -128, 127) for s in (2, 4, 8, 16)]
    np.savez(tmp_path / "kws.npz", x=np.concatenate([real, *near]).astype(np.int8))
    code, got, out, _ = validate([KWS, "--data", tmp_path / "kws.npz", "--float", KWS_FLOAT], capsys)
    assert code == 0 and got["ok"] and got["samples"] == 5
    assert got["tflm"] == {"bit_exact": 5, "max_abs_diff": 0.0, "unit": "int8 steps"}
    (o,) = got["outputs"]
    # measured: cosine 0.99893, RMSE 0.0126, max error 0.080 (softmax probabilities), top-1 the same on all 5
    assert o["cosine"] > 0.99 and o["rmse"] < 0.03 and o["max_abs_error"] < 0.2 and got["top1_agreement"] == 1.0
    assert "5/5 samples bit-exact" in out and "cosine 0.99" in out

    # uniformly random codes are far from any speech feature: still bit-exact, but the float model disagrees
    np.savez(tmp_path / "random.npz", x=rng.integers(-128, 128, (4, 49, 10, 1), dtype=np.int8))
    code, got, _, _ = validate([KWS, "--data", tmp_path / "random.npz", "--float", KWS_FLOAT], capsys)
    assert code == 0 and got["tflm"]["bit_exact"] == 4
    assert got["outputs"][0]["cosine"] < 0.9  # measured 0.34 on such inputs: the metric does discriminate


# ---------------------------------------------------------------- (b) hello world against its float model


def test_hello_world_against_its_float_model_gives_the_metrics_computed_here(tmp_path, capsys):
    x = np.linspace(0, 2 * np.pi, 60, dtype=np.float32)[:, None]
    np.savez(tmp_path / "sine.npz", x=x)
    code, got, out, _ = validate([HELLO, "--data", tmp_path / "sine.npz", "--float", HELLO_FLOAT], capsys)
    assert code == 0 and got["tflm"]["bit_exact"] == 60 and got["float_layout"] == "nhwc"
    graph = load_model(HELLO)
    codes = quantized(graph, x)
    ours = np.concatenate([tflm_run(HELLO.read_bytes(), [c.reshape(1, 1)])[0] for c in codes])
    ref = np.concatenate([tflm_run(HELLO_FLOAT.read_bytes(), [v.reshape(1, 1)])[0] for v in x])
    rmse, cosine, worst = metrics(dequantized(graph, ours), ref)
    (o,) = got["outputs"]
    assert o["rmse"] == pytest.approx(rmse, rel=1e-9) and o["cosine"] == pytest.approx(cosine, rel=1e-9)
    assert o["max_abs_error"] == pytest.approx(worst, rel=1e-9)
    assert o["rmse"] < 0.05 and o["cosine"] > 0.995  # measured: RMSE 0.0343, cosine 0.99883 (200 points)
    assert got["top1_agreement"] is None and got["accuracy"] is None  # one output value: no classes
    assert "RMSE" in out and "60/60 samples bit-exact" in out


# ---------------------------------------------------------------- (c), (d) a torch model and its int8 .tflite


@pytest.fixture(scope="module")
def torch_case(tmp_path_factory) -> Path:
    """model.pt2 (NCHW [N, 2, 10, 10] -> 5 scores, exported with a batch of 2), its int8 model.tflite
    (NHWC) from `mcuforge quantize`, data.npz (x in NHWC), nchw.npy (the same x in NCHW), and other_head.pt2
    (the same input, 4 scores)."""
    torch = need("torch", "the .pt2 float model")
    from oracle import calibration, image_model, save_program

    folder = tmp_path_factory.mktemp("validate_torch")
    save_program(image_model(), (2, 10, 10), folder / "model.pt2")
    x = calibration((2, 10, 10), folder / "calib.npy", n=40)
    with contextlib.redirect_stdout(io.StringIO()):  # not into the capsys of the test that asked first
        assert main(["quantize", str(folder / "model.pt2"), "--calib", str(folder / "calib.npy"), "-o",
                     str(folder / "model.tflite")]) == 0
    np.savez(folder / "data.npz", x=np.moveaxis(x, 1, -1))
    np.save(folder / "nchw.npy", x)
    head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(200, 4))
    torch.export.save(torch.export.export(head.eval(), (torch.randn(2, 2, 10, 10),)), folder / "other_head.pt2")
    return folder


def test_torch_float_model_takes_nchw_and_the_int8_tflite_nhwc(torch_case, capsys):
    args = [torch_case / "model.tflite", "--data", torch_case / "data.npz", "--float", torch_case / "model.pt2"]
    code, got, _, _ = validate(args, capsys)
    assert code == 0 and got["samples"] == 40 and got["tflm"]["bit_exact"] == 40 and got["float_layout"] == "nchw"
    (o,) = got["outputs"]
    assert o["cosine"] > 0.999 and got["top1_agreement"] >= 0.9  # measured: cosine 0.99995, top-1 100 %
    step = load_model(torch_case / "model.tflite")
    step = step[step.outputs[0]].quant.s
    assert o["max_abs_error"] < 6 * step  # a wrong layout would be off by whole scores
    # 5 samples: the program takes batches of exactly 2, so the last one is padded and dropped
    code, few, _, _ = validate([*args, "--samples", 5], capsys)
    assert code == 0 and few["samples"] == 5 and few["samples_in_data"] == 40 and few["tflm"]["bit_exact"] == 5
    assert few["outputs"][0]["max_abs_error"] <= o["max_abs_error"]


def test_accuracy_from_labels_matches_numpy(torch_case, tmp_path, capsys):
    torch = need("torch", "the .pt2 float model")
    x = np.load(torch_case / "data.npz")["x"][:30]
    module = torch.export.load(torch_case / "model.pt2").module()  # exported with a batch of 2
    with torch.no_grad():
        scores = [module(torch.from_numpy(np.moveaxis(x[i:i + 2], -1, 1))).numpy() for i in range(0, 30, 2)]
    labels = np.concatenate(scores).argmax(axis=1)
    labels[::3] = (labels[::3] + 1) % 5  # a third of the labels the float model gets wrong: accuracy 2/3
    graph = load_model(torch_case / "model.tflite")
    tflite = (torch_case / "model.tflite").read_bytes()
    int8_top1 = np.array([tflm_run(tflite, [c[None]])[0].argmax() for c in quantized(graph, x)])
    want = float(np.mean(int8_top1 == labels))
    np.savez(tmp_path / "labelled.npz", x=x, y=labels.astype(np.uint8))
    base = [torch_case / "model.tflite", "--data", tmp_path / "labelled.npz"]
    code, got, out, _ = validate([*base, "--float", torch_case / "model.pt2"], capsys)
    assert code == 0 and got["labels"] == 30
    assert got["float_accuracy"] == pytest.approx(2 / 3) and got["accuracy"] == pytest.approx(want)
    assert "top-1 accuracy on 30 labels" in out
    code, alone, out, _ = validate(base, capsys)  # no float model: accuracy alone
    assert code == 0 and alone["accuracy"] == pytest.approx(want) and alone["float_accuracy"] is None
    assert alone["outputs"] == [] and alone["float_model"] is None and "float model" not in out


# ---------------------------------------------------------------- (e) mistakes: one line, exit 2


def _bad_case(case: str, tmp: Path, torch_folder: Path | None) -> list:
    kws = real_samples(KWS)[0]
    if case == "missing model":
        return [tmp / "absent.tflite", "--data", HELLO]
    if case == "missing data":
        return [HELLO, "--data", tmp / "absent.npz"]
    if case == "missing float model":
        np.save(tmp / "x.npy", np.zeros((3, 1), np.float32))
        return [HELLO, "--data", tmp / "x.npy", "--float", tmp / "absent.tflite"]
    if case == "npz without x":
        np.savez(tmp / "d.npz", x_train=kws, y_train=np.zeros(1, np.uint8))
        return [KWS, "--data", tmp / "d.npz"]
    if case == "wrong shape":
        np.savez(tmp / "d.npz", x=np.zeros((3, 49, 9, 1), np.int8))
        return [KWS, "--data", tmp / "d.npz"]
    if case == "NCHW data":
        return [torch_folder / "model.tflite", "--data", torch_folder / "nchw.npy"]
    if case == "labels of wrong length":
        np.savez(tmp / "d.npz", x=np.repeat(kws, 3, axis=0), y=np.zeros(2, np.int64))
        return [KWS, "--data", tmp / "d.npz"]
    if case == "labels out of range":
        np.savez(tmp / "d.npz", x=np.repeat(kws, 2, axis=0), y=np.array([3, 12]))
        return [KWS, "--data", tmp / "d.npz"]
    if case == "codes out of range":
        np.savez(tmp / "d.npz", x=np.full((2, 49, 10, 1), 200, np.int16))
        return [KWS, "--data", tmp / "d.npz"]
    if case == "float model with other input":
        np.savez(tmp / "d.npz", x=kws)
        return [KWS, "--data", tmp / "d.npz", "--float", HELLO_FLOAT]
    if case == "float model with other output":
        return [torch_folder / "model.tflite", "--data", torch_folder / "data.npz", "--float",
                torch_folder / "other_head.pt2"]
    if case == "wrong float layout":
        return [torch_folder / "model.tflite", "--data", torch_folder / "data.npz", "--float",
                torch_folder / "model.pt2", "--float-layout", "nhwc"]
    if case == "int8 model as float":
        np.savez(tmp / "d.npz", x=kws)
        return [KWS, "--data", tmp / "d.npz", "--float", KWS]
    assert case == "layout without float"
    return [HELLO, "--data", HELLO, "--float-layout", "nchw"]


TORCH_CASES = {"NCHW data", "float model with other output", "wrong float layout"}


@pytest.mark.parametrize("case, message", [
    ("missing model", "no such file"),
    ("missing data", "no such file"),
    ("missing float model", "no such file"),
    ("npz without x", "no 'x' (or 'x_test')"),
    ("wrong shape", "expected [N, 49, 10, 1]"),
    ("NCHW data", "look transposed"),
    ("labels of wrong length", "one label per sample (3 samples)"),
    ("labels out of range", "12 classes"),
    ("codes out of range", "int8 codes"),
    ("float model with other input", "takes samples of shape [1]"),
    ("float model with other output", "output 0 has shape [4]"),
    ("wrong float layout", "wrong --float-layout"),
    ("int8 model as float", "not a float model"),
    ("layout without float", "--float-layout"),
])
def test_mistakes_give_one_line_and_exit_2(case, message, tmp_path, capsys, request):
    torch_folder = request.getfixturevalue("torch_case") if case in TORCH_CASES else None
    code, _, out, err = validate(_bad_case(case, tmp_path, torch_folder), capsys)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, (code, out, err)
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]


# ---------------------------------------------------------------- (f) the C bare-metal in QEMU


def test_cortex_m7_in_qemu_gives_the_host_numbers(tmp_path, capsys):
    from mcuforge.targets.cortex_m import toolchain_missing

    missing = toolchain_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Cortex-M validate test: {missing}", pytrace=False)
        pytest.skip(f"needs arm-none-eabi-gcc and qemu-system-arm ({missing})")
    np.save(tmp_path / "x.npy", np.linspace(0, 2 * np.pi, 40, dtype=np.float32))
    args = [HELLO, "--data", tmp_path / "x.npy", "--float", HELLO_FLOAT]
    code, host, _, _ = validate(args, capsys)
    assert code == 0
    code, m7, out, _ = validate([*args, "--target", "cortex-m7"], capsys)
    assert code == 0 and m7["target"] == "cortex-m7" and "cortex-m7 (QEMU)" in out
    assert {**m7, "target": "host"} == host and m7["tflm"]["bit_exact"] == 40


# ---------------------------------------------------------------- a difference from TFLM, the sample cap


def test_a_difference_from_tflm_exits_1_and_says_so(tmp_path, capsys, monkeypatch):
    from mcuforge.targets.host import HostModel

    run = HostModel.run

    def off_by_one_step(self, inputs):
        return [(o.astype(np.int16) + 1).clip(-128, 127).astype(o.dtype) for o in run(self, inputs)]

    monkeypatch.setattr(HostModel, "run", off_by_one_step)
    np.save(tmp_path / "x.npy", np.linspace(0, 6, 5, dtype=np.float32))
    code, got, out, _ = validate([HELLO, "--data", tmp_path / "x.npy"], capsys)
    assert code == 1 and not got["ok"] and got["tflm"]["bit_exact"] < 5 and got["tflm"]["max_abs_diff"] == 1
    assert "MISMATCH" in out


def test_at_most_1000_samples_unless_asked(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.linspace(0, 6, 1003, dtype=np.float32))
    code, got, out, _ = validate([HELLO, "--data", tmp_path / "x.npy"], capsys)
    assert code == 0 and got["samples"] == 1000 and got["samples_in_data"] == 1003 and "--samples N" in out
    code, got, _, _ = validate([HELLO, "--data", tmp_path / "x.npy", "--samples", 1003], capsys)
    assert code == 0 and got["samples"] == 1003 and got["tflm"]["bit_exact"] == 1003
