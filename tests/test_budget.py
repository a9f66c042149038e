"""The flash budget covers the model's code when it is built for a Cortex-M core (arm-none-eabi-size),
and `inspect` reports the same flash as `compile` under the same label."""
from __future__ import annotations

import json
import os

import pytest

from mcuforge.cli import main
from mcuforge.errors import BudgetError
from mcuforge.pipeline import compile_model, load_model
from mcuforge.targets.cortex_m import toolchain_missing
from oracle import MODELS

KWS = MODELS / "mlperf_kws_dscnn_int8.tflite"
MISSING = toolchain_missing()


def _needs_toolchain():
    if MISSING:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Cortex-M tests: {MISSING}", pytrace=False)
        pytest.skip(MISSING)


def test_flash_budget_counts_the_code_on_cortex_m():
    _needs_toolchain()
    graph = load_model(KWS)
    host = compile_model(graph, strategy="layer")
    m7 = compile_model(graph, strategy="layer", target="cortex-m7", opt="-Os")
    weights = host.report.flash_weights_bytes
    assert host.report.flash_code_bytes is None and host.report.flash_bytes == weights
    code = m7.report.flash_code_bytes
    assert 1000 < code < 64 * 1024 and m7.report.flash_code_build == "cortex-m7 -Os"
    assert m7.report.flash_bytes == weights + code
    budget = weights + code // 2  # the weights fit, the weights and the code do not
    compile_model(graph, strategy="layer", flash=budget)
    with pytest.raises(BudgetError, match="code and weights need"):
        compile_model(graph, strategy="layer", flash=budget, target="cortex-m7", opt="-Os")
    compile_model(graph, strategy="layer", flash=weights + code, target="cortex-m7", opt="-Os")


def test_compile_exits_3_over_the_flash_budget_with_code(tmp_path, capsys):
    _needs_toolchain()
    out = tmp_path / "out"
    weights = compile_model(load_model(KWS)).report.flash_weights_bytes
    args = ["compile", str(KWS), "-o", str(out), "--strategy", "layer", "--flash", str(weights + 100)]
    assert main([*args, "--target", "cortex-m7"]) == 3
    assert "code and weights need" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["flash_code_bytes"] is None


def test_inspect_and_compile_report_the_same_flash(tmp_path, capsys):
    assert main(["inspect", str(KWS), "--json"]) == 0
    inspected = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["compile", str(KWS), "-o", str(tmp_path / "o"), "--json"]) == 0
    compiled = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("flash_weights_bytes", "param_bytes", "arena_bytes", "macs"):
        assert inspected[key] == compiled[key], key
    assert inspected["flash_weights_bytes"] > inspected["param_bytes"]  # requantization constants on top
