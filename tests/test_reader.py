"""The .tflite reader: every dev model reads into valid canonical IR; bad input is refused clearly."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_reader import read_tflite, read_tflite_file
from mcuforge.ir import SPECS
from mcuforge.pipeline import analyze
from oracle import dev_models, negative_models

NEGATIVE_REASONS = {
    "mlperf_ad_toycar_hybrid_dynrange": "hybrid",
    "mlperf_kws_dscnn_float32": "float32 activation",
    "tflm_hello_world_float": "not int8-quantized",
    "tflm_person_detect_vela_ethosu": "custom operator 'ethos-u'",
}


@pytest.mark.parametrize("path", dev_models(), ids=lambda p: p.stem)
def test_dev_model_reads_into_canonical_ir(path):
    g = read_tflite_file(path)
    assert g.ops and g.inputs and g.outputs
    for op in g.ops:
        assert op.kind in SPECS
        assert set(SPECS[op.kind].attrs) <= set(op.attrs), (op.kind, dict(op.attrs))
    assert not any(op.kind == "PAD" for op in g.ops), "PAD before a conv must fold into the conv"


def test_mcunet_pads_fold_into_asymmetric_conv_padding():
    g = read_tflite_file(next(p for p in dev_models() if p.stem.startswith("tinyengine_mcunet")))
    pads = {op.attrs["pad"] for op in g.ops if op.kind == "DEPTHWISE_CONV_2D"}
    assert any(p[0] != p[1] or p[2] != p[3] or max(p) > 1 for p in pads), pads


@pytest.mark.parametrize("path", negative_models(), ids=lambda p: p.stem)
def test_negative_models_are_refused_with_the_reason(path):
    with pytest.raises(ModelError) as err:
        read_tflite_file(path)
    assert NEGATIVE_REASONS[path.stem] in str(err.value)


def test_not_a_tflite_file():
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        read_tflite(b"hello world, this is not a model", "junk")


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_truncated_model_is_refused(cut):
    data = dev_models()[0].read_bytes()
    with pytest.raises(ModelError):
        read_tflite(data[: int(len(data) * cut)], "truncated")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_model_never_crashes(data):
    """Random byte flips give either a valid graph or a ModelError, never another exception."""
    path = data.draw(st.sampled_from(dev_models()))
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, min(len(raw) - 1, 4096)))  # the tables sit near the start
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        graph = read_tflite(bytes(raw), "mutated")
        analyze(graph)  # what the reader accepts, the planner must handle
    except ModelError:
        pass


def test_per_channel_quant_kept():
    g = read_tflite_file(next(p for p in dev_models() if "vww_mobilenet" in p.stem))
    conv = next(op for op in g.ops if op.kind == "CONV_2D")
    w = g[conv.inputs[1]]
    assert w.quant.scale.size == w.shape[0] and w.quant.axis == 0
    assert np.all(w.quant.scale > 0)
