"""Every mistake on the command line: one line on stderr, exit status 2, nothing written, nothing touched.

Each case runs `main` in-process in a scratch folder holding a few prepared files (a folder mcuforge wrote,
a folder of the user's, a plain file, arrays of every kind) and checks that the folder's contents are
byte for byte the same afterwards.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcuforge.cli import main
from mcuforge.outdir import MARKER
from oracle import MODELS, assert_one_line, run_cli

HELLO = MODELS / "tflm_hello_world_int8.tflite"  # input int8 [1, 1], one output
FLOATIO = MODELS / "st_har_gmp_wl24_wisdm_int8_floatio.tflite"  # input float32 [1, 24, 3, 1]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `folder`, hidden ones included."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """The current folder for a case: out/ (written by mcuforge), user/ (a user's files), a plain file,
    inputs of every kind, an earlier output y.npy, a folder named like a model."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MARKER).write_text("written by mcuforge\n")
    (tmp_path / "out" / "old.h").write_text("/* an earlier library */\n")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "mine.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "afile").write_text("a file\n")
    (tmp_path / "x.tflite").mkdir()
    (tmp_path / "folder.npy").mkdir()
    (tmp_path / "plot.png").mkdir()
    (tmp_path / "model.tflite").mkdir()
    arrays = {"x_float": np.array([[0.5]], np.float32), "x_int32_big": np.array([[300]], np.int32),
              "x_int64_low": np.array([[-129]], np.int64), "x_bool": np.array([[True]]),
              "x_complex": np.array([[1 + 2j]]), "x_nan": np.array([[np.nan]], np.float32),
              "x_shape": np.zeros((2, 3), np.int8), "x_har_nan": np.zeros((1, 24, 3, 1), np.float32)}
    for name, x in arrays.items():
        np.save(tmp_path / f"{name}.npy", x)
    np.save(tmp_path / "x_object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "x.npz", np.zeros((1, 1), np.int8))
    (tmp_path / "corrupt.npy").write_bytes(b"not an array at all")
    good = (tmp_path / "x_float.npy").read_bytes()
    (tmp_path / "truncated.npy").write_bytes(good[:-2])
    np.save(tmp_path / "y.npy", np.array([7], np.int8))
    return tmp_path


RUN = ["run", HELLO, "--output", "y.npy", "--input"]
COMPILE = ["compile", HELLO, "-o"]
BUDGETS = ["inf", "-inf", "nan", "0", "-1", "0.5", "1e400", "lots", "", "K"]

CASES = {
    # budgets and numbers
    **{f"sram {v!r}": (COMPILE + ["new", "--sram", v], "--sram") for v in BUDGETS},
    **{f"flash {v!r}": (COMPILE + ["new", "--flash", v], "--flash") for v in ("inf", "nan", "0", "-5", "1M1")},
    "inspect sram inf": (["inspect", HELLO, "--sram", "inf"], "--sram"),
    **{f"extra macs {v}": (COMPILE + ["new", "--max-extra-macs", v], "--max-extra-macs")
       for v in ("nan", "inf", "-1", "x%")},
    # compile: model and output folder
    "model is a folder": (["compile", "x.tflite", "-o", "new"], "is a folder"),
    "model missing": (["compile", "nope.tflite", "-o", "new"], "no such file"),
    "model not tflite": (["compile", "afile", "-o", "new"], "expected a .tflite"),
    "out is a file": (COMPILE + ["afile"], "is a file"),
    "out holds user files": (COMPILE + ["user"], "did not write"),
    "out under a file": (COMPILE + ["afile/sub"], "is a file, not a folder"),
    "out is the current folder": (COMPILE + ["."], "current folder"),
    "name collides with the runtime": (COMPILE + ["new", "--name", "mcu_common"], "runtime's own files"),
    "name not ASCII": (COMPILE + ["new", "--name", "\u0130"], "not a C identifier"),
    "name starts with a digit": (COMPILE + ["new", "--name", "1x"], "not a C identifier"),
    "quantize c-out holds user files": (["quantize", "m.pt2", "--calib", "c.npy", "-o", "q.tflite", "--c-out",
                                          "user"], "did not write"),
    # run: inputs
    "float input, int8 model": (RUN + ["x_float.npy"], "--quantize-input"),
    "int32 above int8": (RUN + ["x_int32_big.npy"], "outside the int8 range"),
    "int64 below int8": (RUN + ["x_int64_low.npy"], "outside the int8 range"),
    "bool input": (RUN + ["x_bool.npy"], "bool"),
    "complex input": (RUN + ["x_complex.npy"], "complex"),
    "object input": (RUN + ["x_object.npy"], "cannot read"),
    "corrupt input": (RUN + ["corrupt.npy"], "not a .npy file"),
    "truncated input": (RUN + ["truncated.npy"], "cannot read"),
    "missing input": (RUN + ["missing.npy"], "no such file"),
    "input is a folder": (RUN + ["folder.npy"], "is a folder"),
    "input is npz": (RUN + ["x.npz"], "expected a .npy"),
    "input wrong shape": (RUN + ["x_shape.npy"], "does not hold one input"),
    "quantize NaN": (RUN + ["x_nan.npy", "--quantize-input"], "NaN"),
    "quantize float model": (["run", FLOATIO, "--output", "y.npy", "--input", "x_har_nan.npy", "--quantize-input"],
                             "leave out --quantize-input"),
    "reference on cortex-m": (RUN + ["x_int32_big.npy", "--engine", "reference", "--target", "cortex-m4"],
                              "host only"),
    # run: outputs
    "output without suffix": (["run", HELLO, "--input", "x_float.npy", "--quantize-input", "--output", "y_noext"],
                              ".npy or .npz"),
    "output in missing folder": (["run", HELLO, "--input", "x_float.npy", "--quantize-input", "--output",
                                  "nodir/y.npy"], "does not exist"),
    "output is a folder": (["run", HELLO, "--input", "x_float.npy", "--quantize-input", "--output", "folder.npy"],
                           "is a folder"),
    # verify
    "verify nothing": (["verify", HELLO, "--samples", "0"], "nothing to verify"),
    "verify negative samples": (["verify", HELLO, "--samples", "-3"], "--samples"),
    "verify samples garbage": (["verify", HELLO, "--samples", "many"], "--samples"),
    "verify negative seed": (["verify", HELLO, "--seed", "-1"], "--seed"),
    "verify missing input": (["verify", HELLO, "--input", "missing.npy"], "no such file"),
    "verify float input": (["verify", HELLO, "--input", "x_float.npy"], "--quantize-input"),
    # inspect --plot
    "plot in missing folder": (["inspect", HELLO, "--plot", "nodir/p.png"], "does not exist"),
    "plot extension": (["inspect", HELLO, "--plot", "p.jpg"], ".png, .svg or .pdf"),
    "plot is a folder": (["inspect", HELLO, "--plot", "plot.png"], "is a folder"),
    # quantize
    "quantize to onnx": (["quantize", "m.pt2", "--calib", "c.npy", "-o", "q.onnx"], ".tflite"),
    "quantize onto a folder": (["quantize", "m.pt2", "--calib", "c.npy", "-o", "model.tflite"], "is a folder"),
    # bench, demo, the parser
    "bench model folder": (["bench", "x.tflite", "--no-cortex-m"], "is a folder"),
    "bench model missing": (["bench", "nope.tflite"], "no such file"),
    "bench tflm invokes": (["bench", HELLO, "--tflm-invokes", "0"], "--tflm-invokes"),
    "demo into user folder": (["demo", "-o", "user"], "did not write"),
    "demo into a file": (["demo", "-o", "afile"], "is a file"),
    "demo no samples": (["demo", "-o", "new", "--samples", "0"], "--samples"),
    "unknown command": (["compiel", HELLO], "invalid choice"),
    "missing -o": (["compile", HELLO], "required"),
}


@pytest.mark.parametrize("args, mention", CASES.values(), ids=CASES.keys())
def test_mistake_gives_one_line_exit_2_and_touches_nothing(args, mention, scratch, capsys):
    before = snapshot(scratch)
    code, err = run_cli(args, capsys)
    assert_one_line(code, err, mention)
    assert snapshot(scratch) == before


def test_quantize_model_folder_is_named(scratch, capsys):
    pytest.importorskip("torch")
    (scratch / "m.pt2").mkdir()
    np.save(scratch / "c.npy", np.zeros((4, 3), np.float32))
    before = snapshot(scratch)
    assert_one_line(*run_cli(["quantize", "m.pt2", "--calib", "c.npy", "-o", "q.tflite"], capsys), "is a folder")
    assert snapshot(scratch) == before


def test_quantize_without_torch_says_how_to_install(scratch, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if it were not installed
    monkeypatch.delitem(sys.modules, "mcuforge.pytorch.pipeline", raising=False)
    before = snapshot(scratch)
    code, err = run_cli(["quantize", "m.pt2", "--calib", "c.npy", "-o", "q.tflite"], capsys)
    assert_one_line(code, err, "pip install torch==2.13.0, then pip install 'mcuforge[torch]'")
    assert snapshot(scratch) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="not applicable: root may write anywhere")
def test_unwritable_output_folder(scratch, capsys):
    (scratch / "locked").mkdir(mode=0o555)
    before = snapshot(scratch)
    assert_one_line(*run_cli(COMPILE + ["locked/out"], capsys), "no permission")
    assert_one_line(*run_cli(RUN + ["x_float.npy", "--quantize-input", "--output", "locked/y.npy"], capsys),
                    "no permission")
    assert snapshot(scratch) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("args", [COMPILE + ["/proc/mcuforge_out"], ["demo", "-o", "/proc/mcuforge_demo"],
                                  RUN + ["x_float.npy", "--quantize-input", "--output", "/proc/y.npy"],
                                  ["inspect", HELLO, "--plot", "/proc/memory.png"]],
                         ids=["compile", "demo", "run", "plot"])
def test_unwritable_place_even_for_root(args, scratch, capsys):
    before = snapshot(scratch)
    assert_one_line(*run_cli(args, capsys), "cannot write")
    assert snapshot(scratch) == before


@pytest.mark.parametrize("args", [COMPILE + ["new", "--sram", "inf"], RUN + ["x_float.npy"]], ids=["sram inf", "float"])
def test_mistakes_in_a_real_process(args, scratch):
    """The same refusals from the command itself: no traceback at interpreter level either."""
    proc = subprocess.run([sys.executable, "-m", "mcuforge.cli", *map(str, args)], capture_output=True, text=True)
    assert_one_line(proc.returncode, proc.stderr, "error")


# ------------------------------------------------------------------- what the rules accept


def test_integer_inputs_of_any_type_in_range(scratch, capsys):
    np.save(scratch / "x8.npy", np.array([[-77]], np.int8))
    np.save(scratch / "x64.npy", np.array([[-77]], np.int64))
    np.save(scratch / "xu16.npy", np.array([[100]], np.uint16))
    np.save(scratch / "x8b.npy", np.array([[100]], np.int8))
    for x, y in (("x8", "y8"), ("x64", "y64"), ("xu16", "yu16"), ("x8b", "y8b")):
        assert main(["run", str(HELLO), "--input", f"{x}.npy", "--output", f"{y}.npy", "--engine", "reference"]) == 0
    assert np.array_equal(np.load("y8.npy"), np.load("y64.npy"))
    assert np.array_equal(np.load("y8b.npy"), np.load("yu16.npy"))


def test_quantize_input_rounds_half_away_from_zero_and_clamps(scratch):
    from mcuforge.arrays import model_input
    from mcuforge.pipeline import load_model

    graph = load_model(HELLO)
    q = graph[graph.inputs[0]].quant
    s = np.float32(q.s)
    x = np.array([(k + 0.5) * s for k in range(-140, 140)] + [1e9, -1e9, np.inf, -np.inf], np.float32)
    v = x / s
    ties = np.isfinite(v)
    ties[ties] = np.abs(v[ties]) % 1 == 0.5
    assert ties.sum() > 20 and (np.round(v[ties]) != np.sign(v[ties]) * np.floor(np.abs(v[ties]) + 0.5)).any()
    want = np.clip(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + q.zp, -128, 127).astype(np.int8)
    got = model_input(graph, x, quantize=True)
    assert got.dtype == np.int8 and np.array_equal(got, want)
    assert got[-4:].tolist() == [127, -128, 127, -128]


def test_run_quantize_input_equals_run_on_codes(scratch, capsys):
    from mcuforge.quant.ptq import quantize_input
    from mcuforge.pipeline import load_model

    real = np.linspace(-3, 4, 9, dtype=np.float32).reshape(9, 1, 1)
    np.save(scratch / "real.npy", real)
    np.save(scratch / "codes.npy", quantize_input(load_model(HELLO), real))
    assert main(["run", str(HELLO), "--input", "real.npy", "--quantize-input", "--output", "a.npy"]) == 0
    assert main(["run", str(HELLO), "--input", "codes.npy", "--output", "b.npy"]) == 0
    assert np.array_equal(np.load("a.npy"), np.load("b.npy")) and np.load("a.npy").shape == (9, 1, 1)


def test_float_model_takes_float_and_integer_inputs(scratch):
    xi = np.arange(72, dtype=np.int16).reshape(1, 24, 3, 1)
    np.save(scratch / "xi.npy", xi)
    np.save(scratch / "xf.npy", xi.astype(np.float64))
    for x in ("xi", "xf"):
        assert main(["run", str(FLOATIO), "--input", f"{x}.npy", "--output", f"{x}_y.npy", "--engine",
                     "reference"]) == 0
    assert np.array_equal(np.load("xi_y.npy"), np.load("xf_y.npy"))


def test_output_npz_and_npy_names_as_given(scratch):
    np.save(scratch / "x.npy", np.array([[3]], np.int8))
    assert main(["run", str(HELLO), "--input", "x.npy", "--output", "y.npz"]) == 0
    assert main(["run", str(HELLO), "--input", "x.npy", "--output", "y.npy"]) == 0  # replaces an earlier y.npy
    with np.load("y.npz") as z:
        assert np.array_equal(z["arr_0"], np.load("y.npy"))
    assert not list(scratch.glob("y.np?.npy")) and not list(scratch.glob(".*mcuforge*"))


def test_verify_given_inputs_only(scratch, capsys):
    np.save(scratch / "x.npy", np.array([[3]], np.int8))
    assert main(["verify", str(HELLO), "--samples", "0", "--input", "x.npy"]) == 0
    assert "bit-exact" in capsys.readouterr().out


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_plot_formats(suffix, magic, scratch):
    pytest.importorskip("matplotlib")
    assert main(["inspect", str(HELLO), "--plot", f"memory{suffix}"]) == 0
    assert (scratch / f"memory{suffix}").read_bytes().startswith(magic)
    assert not list(scratch.glob(".*mcuforge*"))


def test_budget_overrun_keeps_the_old_folder(scratch, capsys):
    before = snapshot(scratch)
    assert_one_line(*run_cli(COMPILE + ["out", "--sram", "1"], capsys), "exceeds the budget", status=3)
    assert snapshot(scratch) == before


# ------------------------------------------------------------------- output folders, whole or not at all


KWS = MODELS / "mlperf_kws_dscnn_int8.tflite"


def test_reused_folder_holds_only_the_new_library(scratch):
    assert main(["compile", str(KWS), "-o", "out", "--name", "kws"]) == 0
    names = {p.name for p in (scratch / "out").iterdir()}
    assert "old.h" not in names and {MARKER, "kws.h", "kws.c", "kws_weights.c"} <= names
    assert main(["compile", str(HELLO), "-o", "out", "--name", "hello"]) == 0
    again = {p.name for p in (scratch / "out").iterdir()}
    assert not any(n.startswith("kws") for n in again) and {MARKER, "hello.h"} <= again
    (scratch / "empty").mkdir()
    assert main(["compile", str(HELLO), "-o", "empty"]) == 0 and (scratch / "empty" / MARKER).is_file()
    assert not list(scratch.glob(".*mcuforge*"))


def test_failure_while_writing_keeps_the_old_folder(scratch, capsys, monkeypatch):
    import mcuforge.targets.cortex_m as cortex_m
    from mcuforge.errors import BuildError

    def broken_build(lib, core, opt, folder):
        (Path(folder) / "half.elf").write_bytes(b"\x7fELF")
        raise BuildError("arm-none-eabi-gcc failed")

    monkeypatch.setattr(cortex_m, "build_into", broken_build)
    before = snapshot(scratch)
    assert_one_line(*run_cli(COMPILE + ["out", "--target", "cortex-m4"], capsys), "failed", status=4)
    assert_one_line(*run_cli(COMPILE + ["new/lib", "--target", "cortex-m4"], capsys), "failed", status=4)
    assert snapshot(scratch) == before  # no half library, no temporary folder, no new parent folder


def test_elf_is_part_of_the_swap(scratch, capsys):
    from mcuforge.targets.cortex_m import toolchain_missing

    if toolchain_missing():
        pytest.skip(toolchain_missing())
    assert main(["compile", str(HELLO), "-o", "out", "--name", "hello", "--target", "cortex-m4"]) == 0
    names = {p.name for p in (scratch / "out").iterdir()}
    assert "hello_cortex-m4.elf" in names and "old.h" not in names and MARKER in names
    assert "hello_cortex-m4.elf" in capsys.readouterr().out


def test_written_files_get_ordinary_permissions(scratch):
    np.save(scratch / "x.npy", np.array([[3]], np.int8))
    old = os.umask(0o027)
    try:
        assert main(["run", str(HELLO), "--input", "x.npy", "--output", "fresh.npy"]) == 0
    finally:
        os.umask(old)
    assert (scratch / "fresh.npy").stat().st_mode & 0o777 == 0o640  # not mkstemp's 0o600
