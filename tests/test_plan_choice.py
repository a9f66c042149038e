"""The plan auto compiles (plan_choice): the lowest peak SRAM without a budget or with objective memory;
with a budget, the plan with the fewest predicted instructions among those that fit, and that ranking
agrees with the instructions QEMU's plugin counts."""
from __future__ import annotations

import json

import pytest

from mcuforge.targets.bench import cortex_m_instructions
from mcuforge.cli import main
from mcuforge.engine.schedule import schedule
from mcuforge.pipeline import compile_model, load_model
from mcuforge.plan_choice import choose_plan
from mcuforge.verify import random_inputs
from oracle import dev_model

VWW = dev_model("vww_mobilenet")
KWS = dev_model("mlperf_kws")


@pytest.fixture(scope="module")
def vww():
    return load_model(VWW)


def test_a_roomy_budget_gets_the_faster_layer_plan(vww):
    choice = choose_plan(vww, sram=320 * 1024)
    assert choice.schedule.strategy == "layer" and choice.objective == "latency"
    plans = {s: (arena, n) for s, arena, n in choice.predicted}
    assert set(plans) == {"layer", "patch"}  # VWW (MobileNetV1) has no inverted-residual block to fuse
    assert plans["layer"][1] < plans["patch"][1] and plans["patch"][0] < plans["layer"][0] <= 320 * 1024
    assert "fewest predicted cortex-m7 instructions" in choice.reason


def test_a_tight_budget_or_objective_memory_gets_the_smallest_plan(vww):
    smallest = schedule(vww, "auto")
    tight = choose_plan(vww, sram=40 * 1024)
    assert tight.schedule.strategy == smallest.strategy == "patch"
    assert "layer" in tight.reason and "needs 55,296 B" in tight.reason
    assert choose_plan(vww, sram=320 * 1024, objective="memory").schedule.strategy == "patch"
    assert choose_plan(vww).objective == "memory"  # no budget: the smallest peak
    nothing = choose_plan(vww, sram=1024)
    assert nothing.schedule.plan.arena_bytes == smallest.plan.arena_bytes and "nothing fits" in nothing.reason


def test_cli_board_compiles_vww_with_the_layer_plan(tmp_path, capsys):
    assert main(["compile", str(VWW), "-o", str(tmp_path / "a"), "--board", "stm32f746", "--target", "host",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["strategy"] == "layer" and out["plan_choice"]["objective"] == "latency"
    assert main(["compile", str(VWW), "-o", str(tmp_path / "b"), "--sram", "320K", "--objective", "memory",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["strategy"] == "patch"


def test_cli_objective_latency_needs_a_budget(tmp_path, capsys):
    assert main(["compile", str(KWS), "-o", str(tmp_path / "a"), "--objective", "latency"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sram or --board" in err[0] and not (tmp_path / "a").exists()


def test_predicted_ranking_agrees_with_qemu(toolchain):  # noqa: F811
    graph = load_model(KWS)
    choice = choose_plan(graph, sram=1 << 20)
    inputs = random_inputs(graph, 1)[0]
    predicted = {s: n for s, _, n in choice.predicted}
    assert set(predicted) == {"layer", "patch"}
    counted = {s: cortex_m_instructions(compile_model(graph, strategy=s).lib, inputs, "cortex-m7")
               for s in predicted}
    assert choice.schedule.strategy == min(counted, key=counted.get) == "layer"
    for s in predicted:  # the model is fitted on layer-by-layer networks: patched graphs within 25 %
        assert abs(predicted[s] - counted[s]) <= 0.25 * counted[s], (s, predicted[s], counted[s])
