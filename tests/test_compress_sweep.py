"""`mcuforge compress sweep` end to end on the built-in digits (tiny settings): every combination deployed as C
with the fake-quantized model's predictions on the whole test split, bit-exact, measured and ranked; resume,
Ray workers, mixed precision under a flash budget, a given .pt2 baseline, and one-line refusals."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.cli import main  # noqa: E402
from mcuforge.compress.quality import halvings_per_point, pareto_front  # noqa: E402
from mcuforge.engine.reference import run  # noqa: E402
from mcuforge.ir.formats import choose_formats, format_summary  # noqa: E402
from mcuforge.nas.deploy import ir_layout  # noqa: E402
from mcuforge.nas.search_data import load_search_data  # noqa: E402
from mcuforge.pipeline import load_model  # noqa: E402
from mcuforge.quant.ptq import quantize_input  # noqa: E402

from oracle import assert_one_line, run_cli  # noqa: E402

TINY = ["--data", "digits", "--preset", "quick", "--epochs", "3", "--qat-epochs", "1"]


def test_quality_metric_and_front() -> None:
    base = {"float_test_accuracy": 0.9, "float_flash_bytes": 4000}
    assert halvings_per_point({**base, "test_accuracy": 0.9, "flash_bytes": 1000}) == pytest.approx(2.0)
    assert halvings_per_point({**base, "test_accuracy": 0.89, "flash_bytes": 500}) == pytest.approx(2.0)
    assert halvings_per_point({**base, "test_accuracy": 0.95, "flash_bytes": 2000}) == pytest.approx(1.0)
    results = [{"test_accuracy": a, "flash_bytes": f} for a, f in ((0.9, 100), (0.8, 50), (0.85, 120), (0.95, 200))]
    assert pareto_front(results) == [1, 0, 3]


def test_sweep_on_digits(tmp_path, capsys) -> None:
    out = tmp_path / "sweep"
    code = main(["compress", "sweep", *TINY, "--prune", "0,0.5", "--weights", "int8,int4,ternary", "-o", str(out),
                 "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report == json.loads((out / "report.json").read_text())
    combos = {r["key"]: r for r in report["combinations"]}
    assert sorted(combos) == ["p00-int4", "p00-int8", "p00-ternary", "p50-int4", "p50-int8", "p50-ternary"]
    for r in combos.values():
        for field in ("prune", "weights", "test_accuracy", "float_test_accuracy", "flash_bytes", "float_flash_bytes",
                      "peak_sram_bytes", "latency_ms", "quality"):
            assert r[field] is not None, field
        assert r["same_predictions"] and r["bit_exact"] and r["flash_includes_code"]
        assert r["test_accuracy"] > 0.8 and r["latency_ms"] > 0
        assert r["quality"] == pytest.approx(math.log2(r["float_flash_bytes"] / r["flash_bytes"])
                                             - max(0.0, 100 * (r["float_test_accuracy"] - r["test_accuracy"])))
    assert combos["p50-int8"]["zeros"] >= 0.5 and "sparse" in combos["p50-int8"]["formats"]
    assert combos["p00-int4"]["formats"] == {"int4": 4} and combos["p00-ternary"]["formats"] == {"ternary": 4}
    assert combos["p00-int4"]["weight_bytes"] * 2 == combos["p00-int8"]["weight_bytes"]
    assert combos["p00-int8"]["flash_bytes"] > combos["p00-int4"]["flash_bytes"] > combos["p00-ternary"]["flash_bytes"]
    assert report["best"] == max(report["combinations"], key=lambda r: r["quality"])
    for name in ("pareto.png", "best.tflite", "c/model.c", "c/model.h", "runs/p50-int4.tflite"):
        assert (out / name).exists(), name
    # the reported accuracy of one combination, recomputed with the reference interpreter on its written model
    data = load_search_data("digits")
    graph = choose_formats(load_model(out / "runs" / "p50-int4.tflite"), "auto")
    assert format_summary(graph).keys() == set(combos["p50-int4"]["formats"])
    predicted = [int(np.argmax(run(graph, [quantize_input(graph, s[None])])[0])) for s in ir_layout(data.x_test)]
    assert combos["p50-int4"]["test_accuracy"] == pytest.approx(np.mean(np.array(predicted) == data.y_test))

    # resume: nothing is trained again, the report is the same apart from the wall times
    code = main(["compress", "sweep", *TINY, "--prune", "0,0.5", "--weights", "int8,int4,ternary", "-o", str(out),
                 "--resume", "--json"])
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and again["wall_seconds"]["combinations_run"] == 0
    assert again["combinations"] == report["combinations"]


def test_sweep_with_ray_workers_mixed_precision_and_a_pt2_baseline(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 64, 10)).eval()
    pt2 = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(1, 1, 8, 8),)), str(pt2))
    out = tmp_path / "sweep"
    budget = 14_000
    code = main(["compress", "sweep", *TINY, "--model", str(pt2), "--prune", "0.5", "--weights", "int8,int4,ternary",
                 "--mixed", "--flash-budget", str(budget), "--workers", "2", "-o", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["workers"] == 2 and report["baseline"] == str(pt2)
    combos = {r["key"]: r for r in report["combinations"]}
    assert sorted(combos) == ["p50-int4", "p50-int8", "p50-mixed", "p50-ternary"]
    mixed = combos["p50-mixed"]
    assert mixed["flash_bytes"] <= budget and len(set(mixed["layer_formats"].values())) >= 1
    assert all(r["same_predictions"] and r["bit_exact"] for r in combos.values())
    assert report["best"]["flash_bytes"] <= budget  # the best is taken among those that fit


def test_refusals(tmp_path, capsys) -> None:
    base = ["compress", "sweep", "--data", "digits", "-o", tmp_path / "o"]
    assert_one_line(*run_cli([*base, "--weights", "sparse"], capsys), "cannot be trained")
    assert_one_line(*run_cli([*base, "--prune", "1"], capsys), "--prune")
    assert_one_line(*run_cli([*base, "--mixed"], capsys), "--flash-budget")
    assert_one_line(*run_cli([*base, "--resume"], capsys), "no sweep to resume")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert_one_line(*run_cli([*base[:-1], tmp_path / "full"], capsys), "not empty")
    assert_one_line(*run_cli([*base, "--model", tmp_path / "none.pt2"], capsys), "no such file")
    (tmp_path / "bad.pt2").write_bytes(b"not a zip")
    assert_one_line(*run_cli([*base, "--model", tmp_path / "bad.pt2"], capsys), "not a torch.export program")
    assert not (tmp_path / "o").exists()  # nothing written
