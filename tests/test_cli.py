"""The command line: reports, exit codes, clean refusals, no partial output."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mcuforge.cli import main, parse_bytes
from mcuforge.engine.reference import run
from mcuforge.pipeline import load_model
from oracle import dev_model, negative_models

VWW = dev_model("vww_mobilenet")
KWS = dev_model("mlperf_kws")


def test_compile_writes_library_and_json(tmp_path, capsys):
    out = tmp_path / "vww"
    assert main(["compile", str(VWW), "-o", str(out), "--name", "vww", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("peak_sram_bytes", "arena_bytes", "lower_bound_bytes", "flash_weights_bytes", "macs", "ops"):
        assert key in report
    assert report["peak_sram_bytes"] <= 0.6 * 103_680  # TFLM's minimum arena for this model
    assert report["macs"] == 7_489_664
    assert {"vww.h", "vww.c", "vww_weights.c", "mcu_common.h"} <= {p.name for p in out.iterdir()}
    header = (out / "vww.h").read_text()
    assert "#define VWW_ARENA_BYTES" in header and "int vww_invoke(void);" in header


def test_generated_library_builds_standalone(tmp_path):
    """The written files build with plain cc and strict warnings, with no flags of ours."""
    out = tmp_path / "kws"
    assert main(["compile", str(KWS), "-o", str(out), "--name", "kws"]) == 0
    (out / "main.c").write_text('#include "kws.h"\nint main(void) { return kws_invoke(); }\n')
    cmd = ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o", "m", "main.c", "kws.c", "kws_weights.c"]
    subprocess.run(cmd, cwd=out, check=True)
    subprocess.run(["./m"], cwd=out, check=True)


@pytest.mark.parametrize("engine", ["c", "reference"])
def test_run_single_and_stacked_inputs(tmp_path, engine):
    graph = load_model(KWS)
    rng = np.random.default_rng(1)
    stack = rng.integers(-128, 128, size=(3, 1, 49, 10, 1), dtype=np.int8)
    np.save(tmp_path / "x.npy", stack)
    assert main(["run", str(KWS), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"),
                 "--engine", engine]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (3, 1, 12)
    for i in range(3):
        np.testing.assert_array_equal(y[i], run(graph, [stack[i]])[0])
    np.save(tmp_path / "x1.npy", stack[0])
    assert main(["run", str(KWS), "--input", str(tmp_path / "x1.npy"), "--output", str(tmp_path / "y1.npy"),
                 "--engine", engine]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y1.npy"), y[0])


def test_verify_and_inspect(capsys):
    assert main(["verify", str(KWS), "--samples", "3"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    assert main(["inspect", str(VWW)]) == 0
    assert "peak" in capsys.readouterr().out


@pytest.mark.parametrize("path", negative_models(), ids=lambda p: p.stem)
def test_negative_model_exit_2_one_line_no_output(tmp_path, path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "mcuforge.cli", "compile", str(path), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error:")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir()], "no temporary folder may be left behind"


def test_truncated_model_exit_2(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(VWW.read_bytes()[:5000])
    assert main(["compile", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_over_budget_exit_3_names_peak_layer(tmp_path, capsys):
    assert main(["compile", str(VWW), "-o", str(tmp_path / "o"), "--sram", "40K", "--strategy", "layer"]) == 3
    err = capsys.readouterr().err
    assert "exceeds the budget of 40960 B by 14336 B" in err and "CONV_2D" in err
    assert not (tmp_path / "o").exists()
    # the default strategy runs the first layers patch by patch and fits
    assert main(["compile", str(VWW), "-o", str(tmp_path / "o"), "--sram", "40K", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["strategy"] == "patch" and report["peak_sram_bytes"] <= 40960
    assert 0 < report["extra_macs_ratio"] <= 0.15
    assert main(["compile", str(VWW), "-o", str(tmp_path / "o"), "--flash", "100K"]) == 3


def test_missing_file_and_wrong_format(tmp_path):
    assert main(["inspect", str(tmp_path / "nope.tflite")]) == 2
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert main(["inspect", str(tmp_path / "m.onnx")]) == 2


def test_parse_bytes():
    assert parse_bytes("320K") == 327_680 and parse_bytes("1M") == 1_048_576 and parse_bytes("1000") == 1000
    assert parse_bytes("256KiB") == 262_144


def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "demo"), "--samples", "3"]) == 0
    out = capsys.readouterr().out
    assert "bit-exact" in out and "peak SRAM" in out


def test_board_sets_budgets_and_refuses_unknown_boards(tmp_path, capsys):
    assert main(["compile", str(KWS), "-o", str(tmp_path / "a"), "--board", "rp2040", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["board"] == "rp2040" and report["sram_budget_bytes"] == 264 * 1024
    assert main(["compile", str(VWW), "-o", str(tmp_path / "b"), "--board", "stm32f746", "--sram", "30K"]) == 3
    assert main(["compile", str(KWS), "-o", str(tmp_path / "c"), "--board", "esp32"]) == 2
    assert "stm32f746" in capsys.readouterr().err


def test_board_estimates_latency_on_cortex_m(tmp_path, capsys):
    import shutil

    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
        pytest.skip("Cortex-M toolchain (arm-none-eabi-gcc, qemu-system-arm) not installed")
    assert main(["compile", str(KWS), "-o", str(tmp_path / "a"), "--board", "stm32f746", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["code_size"]["core"] == "cortex-m7"
    assert report["instructions"] > report["macs"] / 4
    assert report["est_latency_ms"] == pytest.approx(report["instructions"] / 216e6 * 1e3, rel=1e-3)
