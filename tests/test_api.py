"""The one-call Python API: mcuforge.compile(...) with the CLI's defaults, .write, .run (layouts, stacks,
quantization, QEMU), .report."""
from __future__ import annotations

import json

import numpy as np
import pytest

import mcuforge
from mcuforge.cli import main
from mcuforge.engine.reference import run
from mcuforge.pipeline import load_model
from mcuforge.quant.ptq import quantize_input
from mcuforge.targets.cortex_m import toolchain_missing
from mcuforge.verify import random_inputs
from oracle import MODELS

KWS = MODELS / "mlperf_kws_dscnn_int8.tflite"
VWW = MODELS / "mlperf_vww_mobilenetv1_025_96_int8.tflite"


def test_defaults_are_the_clis(tmp_path, capsys):
    m = mcuforge.compile(VWW)
    assert main(["compile", str(VWW), "-o", str(tmp_path / "o"), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert m.report.json["schedule"] == cli["schedule"] and m.report.json["arena_bytes"] == cli["arena_bytes"]
    assert m.report.json["strategy"] != "layer"  # auto without a budget: the lowest peak (a patch stage)


@pytest.mark.skipif(bool(toolchain_missing()), reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_board_takes_the_fastest_plan_that_fits_and_counts_the_code(tmp_path):
    m = mcuforge.compile(VWW, board="stm32f746")
    assert m.report.json["strategy"] == "layer" and m.report.json["arena_bytes"] == 55296
    assert m.report.json["flash_code_bytes"] > 10_000 and m.target == "cortex-m7"
    text = str(m.report)
    assert "peak SRAM" in text and "flash in all" in text and "plan chosen for" in text
    files = m.write(tmp_path / "out")
    assert files[-1].name.endswith("_cortex-m7.elf") and (tmp_path / "out" / f"{m.compiled.lib.name}.h").exists()
    x = random_inputs(load_model(VWW), 1, seed=4)[0][0]
    np.testing.assert_array_equal(m.run(x, core="cortex-m7"), m.run(x))
    assert m.report.write(tmp_path / "r.html")[0].read_text().startswith("<!DOCTYPE html>")


def test_run_takes_one_input_or_a_stack_in_either_layout():
    graph = load_model(KWS)
    m = mcuforge.compile(KWS)
    xs = [x[0] for x in random_inputs(graph, 3, seed=9)]  # (1, 49, 10, 1) each, NHWC
    want = [run(graph, [x])[0] for x in xs]
    np.testing.assert_array_equal(m.run(xs[0]), want[0])
    np.testing.assert_array_equal(m.run(np.stack(xs)), np.stack(want))
    nchw = np.stack([x.transpose(0, 3, 1, 2) for x in xs])  # (3, 1, 1, 49, 10)
    np.testing.assert_array_equal(m.run(nchw, layout="nchw"), np.stack(want))
    np.testing.assert_array_equal(m.run(nchw[:, 0], layout="NCHW"), np.stack(want))  # (3, 1, 49, 10)
    with pytest.raises(mcuforge.UsageError, match="layout"):
        m.run(xs[0], layout="hwc")


def test_real_values_need_quantize():
    graph = load_model(KWS)
    m = mcuforge.compile(KWS)
    t = graph[graph.inputs[0]]
    real = np.random.default_rng(0).normal(0, 20, t.shape).astype(np.float32)
    with pytest.raises(mcuforge.UsageError, match="quantize"):
        m.run(real)
    np.testing.assert_array_equal(m.run(real, quantize=True), run(graph, [quantize_input(graph, real)])[0])


def test_budget_and_bad_arguments_raise():
    with pytest.raises(mcuforge.BudgetError):
        mcuforge.compile(VWW, sram=20_000, objective="memory")
    with pytest.raises(mcuforge.UsageError):
        mcuforge.compile(KWS, arena="heap")
    with pytest.raises(mcuforge.UsageError):
        mcuforge.compile(MODELS / "nope.tflite")


def test_quantize_input_rounds_as_tflite_on_the_float32_edge():
    """0.49999997 is the float32 just below 0.5: floor(v + 0.5) rounds it up (v + 0.5 rounds to 1.0 in
    float32), roundf, as TFLite's QUANTIZE, does not. Checked on the KWS input with a scale of 1."""
    from dataclasses import replace

    from mcuforge.ir.graph import QuantParams

    graph = load_model(KWS)
    name = graph.inputs[0]
    t = graph[name]
    unit = graph.with_ops(graph.ops, {**graph.tensors, name: replace(t, quant=QuantParams.per_tensor(1.0, 0))})
    v = np.float32(0.49999997)
    assert v < 0.5 and np.floor(v + np.float32(0.5)) == 1
    q = quantize_input(unit, np.full(t.shape, v, np.float32))
    assert (q == 0).all()
    assert (quantize_input(unit, np.full(t.shape, -v, np.float32)) == 0).all()
    assert (quantize_input(unit, np.full(t.shape, np.float32(2.5), np.float32)) == 3).all()
