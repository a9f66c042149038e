"""Every dev model end to end: generated C == numpy reference == TFLM, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcuforge.engine.reference import run
from mcuforge.models import GraphBuilder, tiny_mobilenet
from mcuforge.pipeline import compile_model, load_model
from mcuforge.targets.host import build_executable, run_executable
from mcuforge.verify import random_inputs, verify
from oracle import dev_models, pending_models, real_samples, tflm_run

pytest.importorskip("tflite_micro")


@pytest.mark.parametrize("path", dev_models(), ids=lambda p: p.stem)
def test_dev_model_c_equals_reference_and_tflm(path):
    graph = load_model(path)
    given_samples = real_samples(path)
    result = verify(graph, samples=20, given=given_samples, tflite_bytes=path.read_bytes())
    assert result.tflm_checked
    assert result.samples == 20 + len(given_samples)
    assert result.ok, result.mismatches[:3]


# The pending models the engine runs so far (the folder keeps models that needed new operators; issue 16)
PENDING_RUN = ("st_ic_fdmobilenet_025_128_flowers_uint8in", "st_ic_stmnist_v1_uint8in",
               "tflm_keyword_scrambled_8bit_svdf", "tflm_mnist_lstm_int8")


def test_pending_models_are_there():
    assert set(PENDING_RUN) <= {p.stem for p in pending_models()}


@pytest.mark.parametrize("path", [p for p in pending_models() if p.stem in PENDING_RUN], ids=lambda p: p.stem)
def test_pending_model_c_equals_reference_and_tflm(path):
    """uint8 inputs through QUANTIZE, shape subgraphs folded away, SVDF's state over the sequence of
    samples, int16 input and int32 output, the LSTM's hidden and cell states: C == reference == TFLM."""
    graph = load_model(path)
    result = verify(graph, samples=12, tflite_bytes=path.read_bytes())
    assert result.tflm_checked and result.samples == 12
    assert result.ok, result.mismatches[:3]


def test_run_model_carries_the_state_in_both_engines():
    """`mcuforge run` on a stateful model: the samples are one sequence in the C and in the reference."""
    from mcuforge.pipeline import run_model

    graph = load_model(next(p for p in pending_models() if p.stem == "tflm_mnist_lstm_int8"))
    rng = np.random.default_rng(0)
    batch = [rng.integers(-128, 128, (1, 28, 28), dtype=np.int8) for _ in range(4)]
    c, ref = run_model(graph, batch, "c"), run_model(graph, batch, "reference")
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(c, ref))
    assert not np.array_equal(ref[1][0], run_model(graph, batch[1:2], "reference")[0][0])  # state mattered


def test_real_samples_are_used():
    kws = next(p for p in dev_models() if p.stem.startswith("mlperf_kws"))
    ad = next(p for p in dev_models() if p.stem.startswith("mlperf_ad"))
    assert len(real_samples(kws)) == 1 and len(real_samples(ad)) == 6


@pytest.mark.parametrize("path", [p for p in dev_models() if not p.stem.startswith("tinyengine")]
                         + [p for p in pending_models() if p.stem in PENDING_RUN], ids=lambda p: p.stem)
def test_dev_model_under_sanitizers(path):
    graph = load_model(path)
    compiled = compile_model(graph)
    exe = build_executable(compiled.lib, sanitize=True, opt="-O1")
    for xs in random_inputs(graph, 2, seed=7):
        got = run_executable(compiled.lib, exe, xs)
        for a, b in zip(got, run(graph, xs)):
            np.testing.assert_array_equal(a, b)


def test_tiny_mobilenet_equals_tflm():
    from mcuforge.frontends.tflite_writer import write_tflite

    graph = tiny_mobilenet()
    result = verify(graph, samples=5, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked


LAYERS = [
    lambda b, x: b.conv2d(x, 6, kernel=3, stride=2, padding="same", activation="RELU6"),
    lambda b, x: b.conv2d(x, 5, kernel=1, padding="valid"),
    lambda b, x: b.depthwise_conv2d(x, kernel=3, padding="same", activation="RELU"),
    lambda b, x: b.depthwise_conv2d(x, kernel=(3, 3), stride=(2, 2), padding="same"),
    lambda b, x: b.add(x, b.relu(x)),
    lambda b, x: b.mul(x, x),
    lambda b, x: b.max_pool(x, filter=2, stride=1, padding="same"),
    lambda b, x: b.avg_pool(x, filter=3, stride=1, padding="same"),
    lambda b, x: b.concat([x, b.hard_swish(x)], axis=3),
    lambda b, x: b.logistic(x),
    lambda b, x: b.tanh(x),
]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(LAYERS) - 1), min_size=1, max_size=6), st.integers(0, 2**16))
def test_random_graphs_c_equals_reference_and_tflm(layers, seed):
    from mcuforge.frontends.tflite_writer import write_tflite

    b = GraphBuilder(seed=seed)
    x = b.input((1, 9, 9, 3), scale=0.05, zero_point=seed % 7 - 3)
    for i in layers:
        x = LAYERS[i](b, x)
    graph = b.build([b.softmax(b.fully_connected(b.reshape(x, (1, -1)), 4))], name="random")
    data = write_tflite(graph)
    result = verify(graph, samples=3, tflite_bytes=data, seed=seed)
    assert result.ok, result.mismatches[:3]
    xs = random_inputs(graph, 1, seed=seed + 1)[0]
    np.testing.assert_array_equal(tflm_run(data, xs)[0], run(graph, xs)[0])


def test_verify_names_the_first_differing_layer():
    """Corrupt a requantization constant of layer 0 in the generated C (the folded bias of its first live
    channel, one whose multiplier is not 0, in its requantization table): verify must name that layer."""
    import dataclasses
    import re

    path = next(p for p in dev_models() if p.stem.startswith("mlperf_kws"))
    graph = load_model(path)
    compiled = compile_model(graph, "kws")
    weights = compiled.lib.files["kws_weights.c"]
    layer0 = compiled.lib.files["kws.c"].split("/* 0:")[1].split("/* 1:")[0]
    table = re.search(r"\.channel = (\w+)", layer0).group(1)
    body = re.search(r"const int32_t " + table + r"\[\d+\] = \{([^}]*)\}", weights)
    values = [int(v) for v in body.group(1).replace("\n", " ").split(",") if v.strip()]
    live = next(c for c in range(len(values) // 4) if values[4 * c + 1] != 0)  # bias, multiplier, ...
    values[4 * live] -= 1 << 20
    broken_body = "\n    " + ", ".join(map(str, values)) + "\n"
    broken = weights[:body.start(1)] + broken_body + weights[body.end(1):]
    bad_lib = dataclasses.replace(compiled.lib, files={**compiled.lib.files, "kws_weights.c": broken})
    result = verify(graph, samples=3, use_tflm=False, compiled=dataclasses.replace(compiled, lib=bad_lib))
    assert not result.ok
    assert result.mismatches[0].engines == "c vs reference"
    assert result.mismatches[0].layer.startswith("#0 CONV_2D")


def test_depthwise_without_bias_runs_in_tflm_and_matches():
    """The writer gives a bias-less depthwise an all-zero bias (TFLM's kernel crashes without one)."""
    import dataclasses

    from mcuforge.frontends.tflite_writer import write_tflite

    b = GraphBuilder(seed=3)
    x = b.input((1, 7, 7, 4), scale=0.05, zero_point=2)
    y = b.depthwise_conv2d(x, kernel=(3, 3), stride=(2, 2), padding="same", activation="RELU6")
    graph = b.build([y], name="dw_nobias")
    op = graph.ops[0]
    graph = graph.with_ops([dataclasses.replace(op, inputs=(op.inputs[0], op.inputs[1], ""))])
    result = verify(graph, samples=4, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked
