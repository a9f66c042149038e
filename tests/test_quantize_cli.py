"""`mcuforge quantize`: a saved torch.export program and calibration data -> an int8 .tflite."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from mcuforge.cli import main
from mcuforge.engine.reference import run
from mcuforge.pipeline import load_model
from mcuforge.quant.ptq import dequantize_output, quantize_input
from oracle import calibration, image_model, save_program, tflm_run


def signal_model() -> nn.Module:
    """NCL [N, 4, 20] -> 3 scores (a 1-D signal: the .tflite takes it as [1, 20, 4])."""
    return nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.ReLU(), nn.AvgPool1d(2), nn.Flatten(),
                         nn.Linear(8 * 10, 3))


MODELS = {"image": (image_model, (2, 10, 10), (1, 10, 10, 2)), "signal": (signal_model, (4, 20), (1, 20, 4))}


def to_ir(x: np.ndarray) -> np.ndarray:
    """torch's channel-first batch -> the IR's channels-last one."""
    return np.moveaxis(x, 1, -1)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_quantize_writes_a_tflite_that_tflm_and_reference_agree_on(kind, tmp_path, capsys):
    make, sample, ir_shape = MODELS[kind]
    model = make()
    program = save_program(model, sample, tmp_path / "model.pt2")
    x = calibration(sample, tmp_path / "calib.npy")
    out, c_out = tmp_path / "out" / "model.tflite", tmp_path / "c"
    assert main(["quantize", str(program), "--calib", str(tmp_path / "calib.npy"), "-o", str(out),
                 "--observer", "mse", "--c-out", str(c_out)]) == 0
    report = capsys.readouterr().out
    assert "scale" in report and "zero point" in report and "peak SRAM" in report and "wrote" in report
    assert (c_out / "model.h").is_file() and not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    graph = load_model(out)
    assert graph[graph.inputs[0]].shape == ir_shape and graph[graph.inputs[0]].dtype == "int8"
    codes = quantize_input(graph, to_ir(x[:4]))
    with torch.no_grad():
        expected = model(torch.from_numpy(x[:4])).numpy()
    for code, want in zip(codes, expected):
        ours = run(graph, [code[None]])[0]
        np.testing.assert_array_equal(tflm_run(out.read_bytes(), [code[None]])[0], ours)
        step = graph[graph.outputs[0]].quant.s
        assert np.abs(dequantize_output(graph, ours)[0] - want).max() <= 6 * step  # the layout was right


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("quantize")
    save_program(image_model(), (2, 10, 10), folder / "model.pt2")
    calibration((2, 10, 10), folder / "calib.npy", n=8)
    return folder


def _bad_data(folder: Path, name: str, x: np.ndarray) -> Path:
    np.save(folder / name, x)
    return folder / name


@pytest.mark.parametrize("case, message", [
    ("missing model", "no such file"),
    ("missing data", "no such file"),
    ("not a program", "not a torch.export program"),
    ("NHWC data", "expected [N, 2, 10, 10]"),
    ("one sample", "expected [N, 2, 10, 10]"),
    ("empty", "N >= 1"),
    ("NaN", "NaN"),
])
def test_bad_inputs_give_one_line_and_exit_2(case, message, saved, tmp_path, capsys):
    model, calib = saved / "model.pt2", saved / "calib.npy"
    good = np.load(calib)
    if case == "missing model":
        model = tmp_path / "absent.pt2"
    elif case == "missing data":
        calib = tmp_path / "absent.npy"
    elif case == "not a program":
        model = calib
    elif case == "NHWC data":
        calib = _bad_data(tmp_path, "nhwc.npy", to_ir(good))
    elif case == "one sample":
        calib = _bad_data(tmp_path, "one.npy", good[0])
    elif case == "empty":
        calib = _bad_data(tmp_path, "empty.npy", good[:0])
    else:
        good[0, 0, 0, 0] = np.nan
        calib = _bad_data(tmp_path, "nan.npy", good)
    out = tmp_path / "model.tflite"
    assert main(["quantize", str(model), "--calib", str(calib), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.glob("*.tflite")) == [] and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unknown_observer_is_refused_by_argparse(saved, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["quantize", str(saved / "model.pt2"), "--calib", str(saved / "calib.npy"), "-o",
              str(tmp_path / "m.tflite"), "--observer", "kl"])
    assert stop.value.code == 2 and "minmax" in capsys.readouterr().err


class Square(nn.Module):
    """A [N, 6, 6] signal (C == L) and a [N, 5] feature vector."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(6, 4, 3)
        self.fc = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(-1) + self.fc(v)


@pytest.mark.parametrize("make, samples, channels_last", [
    (image_model, [(2, 10, 10)], [True]), (signal_model, [(4, 20)], [True]), (Square, [(6, 6), (5,)], [True, False]),
    (lambda: nn.Sequential(nn.Linear(7, 3), nn.ReLU()), [(7,)], [False]),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(15, 2)), [(3, 5)], [False]),  # 3-D but not a signal
])
def test_calibration_is_moved_into_the_ir_layout(make, samples, channels_last, tmp_path):
    from mcuforge.frontends.torch_capture import from_torch
    from mcuforge.pytorch.pipeline import (example_inputs, exported_module, input_layout, load_exported, to_ir_layout,
                                         user_input_nodes)

    examples = tuple(torch.randn(2, *s) for s in samples)
    torch.export.save(torch.export.export(make().eval(), examples), tmp_path / "m.pt2")
    program = load_exported(tmp_path / "m.pt2")
    graph = from_torch(exported_module(program), example_inputs(program))
    for node, name, x, last in zip(user_input_nodes(program), graph.inputs, examples, channels_last, strict=True):
        got = to_ir_layout(x.numpy(), input_layout(node, graph[name].shape))
        np.testing.assert_array_equal(got, to_ir(x.numpy()) if last else x.numpy())
