"""The speed benchmark's machinery (exact instruction counts) and the board profiles. No timings."""
from __future__ import annotations

import argparse
import io
import json
import shutil
from contextlib import redirect_stdout

import pytest
from rich.console import Console

from mcuforge.targets import bench
from mcuforge.pipeline import compile_model, load_model
from mcuforge.targets.boards import BOARDS, BoardError, get_board
from mcuforge.verify import random_inputs
from oracle import dev_models

needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
HELLO = next(p for p in dev_models() if p.stem.startswith("tflm_hello_world"))
SPEECH = next(p for p in dev_models() if p.stem.startswith("tflm_micro_speech"))


@needs_valgrind
@pytest.mark.parametrize("path", [HELLO, SPEECH], ids=lambda p: p.stem)
def test_x86_count_is_exact_and_repeatable(path):
    graph = load_model(path)
    lib = compile_model(graph, path.stem).lib
    xs = random_inputs(graph, 1, seed=3)[0]
    first = bench.x86_instructions(lib, xs)
    assert first > 0
    assert bench.x86_instructions(lib, xs) == first


@needs_valgrind
def test_tflm_count_per_invoke_is_consistent():
    """Calibration: each of several invokes costs the same, so dividing by their number is sound."""
    pytest.importorskip("tflite_micro")
    graph = load_model(HELLO)
    xs = random_inputs(graph, 1)[0]
    costs = bench.tflm_invoke_costs(HELLO.read_bytes(), xs, invokes=3)
    assert len(costs) == 3 and min(costs) > 0
    assert max(costs) - min(costs) <= 0.001 * min(costs)


@needs_valgrind
def test_bench_model_reports_every_field():
    pytest.importorskip("tflite_micro")
    row = bench.bench_model(HELLO, cortex_m=False)
    for key in bench.JSON_FIELDS:
        assert key in row
    assert row["macs"] == 288
    assert row["x86_instructions"] > 0 and row["tflm_x86_instructions"] > 0
    assert row["ratio"] == pytest.approx(row["tflm_x86_instructions"] / row["x86_instructions"])
    assert row["m4_instructions"] is None and row["m7_code_bytes"] is None
    json.dumps(row)


def test_bench_counts_cortex_m4_and_m7_when_the_toolchain_is_present():
    cortex_m = pytest.importorskip("mcuforge.targets.cortex_m")
    if cortex_m.toolchain_missing():
        pytest.skip(cortex_m.toolchain_missing())
    result = bench.bench_graph(load_model(HELLO), None, name="hello")
    assert result.m4_instructions > 0 and result.m7_instructions > 0
    assert 0 < result.m7_code_bytes < 20 * 1024 and 0 < result.m7_code_bytes_o2 < 20 * 1024
    assert result.m7_instructions_os > 0 and result.m7_instructions_o0 > 0
    assert result.as_json()["m7_per_mac"] == result.m7_instructions / 288


def test_missing_valgrind_gives_none_with_a_note(monkeypatch):
    which = shutil.which
    monkeypatch.setattr(bench.shutil, "which", lambda name: None if name == "valgrind" else which(name))
    result = bench.bench_graph(load_model(HELLO), HELLO.read_bytes(), cortex_m=False)
    assert result.x86_instructions is None and result.ratio is None
    assert any("valgrind" in note for note in result.notes)
    with pytest.raises(bench.MissingTool, match="valgrind"):
        bench.valgrind()


@needs_valgrind
def test_cli_json_is_one_object_per_model_per_line(monkeypatch):
    monkeypatch.setattr(bench, "tflm_x86_instructions", lambda *args: 6854)  # TFLM is measured above
    parser = argparse.ArgumentParser()
    bench.add_bench_arguments(parser)
    args = parser.parse_args([str(HELLO), str(HELLO), "--json", "--no-cortex-m"])
    out = io.StringIO()
    with redirect_stdout(out):
        assert bench.run_bench(args, Console(file=io.StringIO())) == 0
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 2
    rows = [json.loads(line) for line in lines]
    assert all(r["model"] == HELLO.stem and r["tflm_x86_instructions"] == 6854 for r in rows)
    assert rows[0]["x86_instructions"] == rows[1]["x86_instructions"] > 0


def test_boards():
    f746 = get_board("STM32F746")
    assert (f746.core, f746.sram_bytes, f746.flash_bytes, f746.clock_hz, f746.dsp) == \
        ("cortex-m7", 320 * 1024, 1024 * 1024, 216_000_000, True)
    assert get_board("stm32f746ng").name == "stm32f746"
    assert get_board("pico") is BOARDS["rp2040"]
    assert not BOARDS["rp2040"].dsp and BOARDS["rp2040"].target is None
    assert BOARDS["nrf52840"].target == "cortex-m4"
    h7 = BOARDS["stm32h743"]
    assert h7.sram_bytes == 512 * 1024 < h7.total_sram_bytes == 1024 * 1024
    with pytest.raises(BoardError, match="known boards: stm32f412") as e:
        get_board("esp32")
    assert all(name in str(e.value) for name in BOARDS)
