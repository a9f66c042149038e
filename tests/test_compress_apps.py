"""examples/compress_apps.py on real data (ECG200 from ../shared/datasets), in its quick form: the sweep runs
through the example, every combination deploys with the fake-quantized model's predictions, and the table is
written."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from oracle import SHARED  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_ecg_example_quick(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("compress_apps", ROOT / "examples" / "compress_apps.py")
    apps = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = apps  # its dataclasses look their module up
    spec.loader.exec_module(apps)
    data = SHARED / "datasets" / "ucr_ecg200.npz"
    assert data.exists(), f"{data} is missing: the tests need ../shared"
    table = tmp_path / "tables.md"
    assert apps.main(["ecg200", "--out", str(tmp_path / "runs"), "--quick", "--table", str(table)]) == 0
    report = json.loads((tmp_path / "runs" / "ecg200" / "report.json").read_text())
    assert len(report["combinations"]) == 2 * 4  # 2 pruning levels x (int8, int4, ternary, mixed)
    assert all(r["same_predictions"] and r["bit_exact"] for r in report["combinations"])
    assert report["best"]["flash_bytes"] <= report["flash_budget"] or not any(
        r["flash_bytes"] <= report["flash_budget"] for r in report["combinations"])
    text = table.read_text()
    assert text.startswith("### ecg200") and text.count("\n| 0.") == 8 and "(best)" in text
