"""Reports use the model's own layer numbering: a patch stage's and a fused block's ops are grouped
under the layer they come from (inspect, the memory report, the budget errors)."""
from __future__ import annotations

import json

from mcuforge.cli import main
from mcuforge.pipeline import analyze, load_model
from oracle import MODELS

VWW = MODELS / "mlperf_vww_mobilenetv1_025_96_int8.tflite"


def test_inspect_numbers_layers_as_the_model_does(capsys):
    graph = load_model(VWW)
    assert main(["inspect", str(VWW), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    layers, ops = out["layers"], out["ops_run"]
    assert [r["index"] for r in layers] == list(range(len(graph.ops))) == list(range(31))
    assert [r["kind"] for r in layers] == [op.kind for op in graph.ops]
    assert len(ops) > 100 and out["model_layers"] == 31  # auto runs the first layers patch by patch
    assert sum(r["ops"] for r in layers) == len(ops)
    assert sum(r["macs"] for r in layers) == sum(r["macs"] for r in ops)
    peak = max(ops, key=lambda r: r["live_bytes"])
    assert out["peak_layer_index"] == peak["layer"] < 4 and layers[peak["layer"]]["how"].startswith("patch")
    assert max(r["live_bytes"] for r in layers) == out["lower_bound_bytes"]


def test_fused_blocks_are_counted_under_their_layers():
    graph = load_model(MODELS / "tinyengine_mcunet_vww_80_int8_floatio.tflite")
    report = analyze(graph, strategy="fused")
    fused = [r for r in report.model_layers if r.how.startswith("fused")]
    assert len(fused) >= 3 and all(r.ops > 1 for r in fused)
    assert len(report.model_layers) == len(graph.ops) < len(report.layers)


def test_sram_budget_error_names_the_model_layer(tmp_path, capsys):
    assert main(["compile", str(VWW), "-o", str(tmp_path / "o"), "--sram", "20K", "--objective", "memory"]) == 3
    err = capsys.readouterr().err
    assert "the peak is at layer 0 CONV_2D" in err


def test_compile_writes_an_html_or_markdown_report(tmp_path, capsys):
    import xml.etree.ElementTree as ET

    html = tmp_path / "r.html"
    assert main(["compile", str(VWW), "-o", str(tmp_path / "a"), "--report", str(html), "--sram", "45K"]) == 0
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "patch: 64 patches" in page and "<svg" in page
    assert page.count("<tr><td>DEPTHWISE_CONV_2D") == 0  # rows start with the layer number
    assert page.count("<tr><td>") >= 31
    md = tmp_path / "r.md"
    assert main(["compile", str(VWW), "-o", str(tmp_path / "b"), "--strategy", "layer", "--report", str(md)]) == 0
    text = md.read_text()
    svg = tmp_path / "r_memory.svg"
    assert "![live memory per layer](r_memory.svg)" in text and "| 30 | SOFTMAX |" in text
    root = ET.fromstring(svg.read_text())  # well-formed; one bar per model layer (and the background)
    assert len([e for e in root if e.tag.endswith("rect")]) == 1 + 31
    capsys.readouterr()
    out = tmp_path / "c"
    assert main(["compile", str(VWW), "-o", str(out), "--report", str(tmp_path / "r.pdf")]) == 2
    assert "the report must be a file ending in" in capsys.readouterr().err and not out.exists()


def test_validate_writes_its_results_into_the_report(tmp_path, capsys):
    import numpy as np

    hello = MODELS / "tflm_hello_world_int8.tflite"
    data = tmp_path / "d.npz"
    np.savez(data, x=np.linspace(0, 6.28, 50, dtype=np.float32).reshape(50, 1))
    md = tmp_path / "v.md"
    assert main(["validate", str(hello), "--data", str(data), "--float", str(MODELS / "negative" /
                                                                          "tflm_hello_world_float.tflite"),
                 "--report", str(md)]) == 0
    text = md.read_text()
    assert "## Validation" in text and "cosine" in text and "| 0 | FULLY_CONNECTED |" in text
    capsys.readouterr()
    assert main(["validate", str(hello), "--data", str(data), "--report", str(tmp_path / "v.txt")]) == 2
    assert "the report must be a file ending in" in capsys.readouterr().err
