"""Low-bit quantization-aware training (quant.weight_grids, qat's `weights`): int4, ternary, power-of-two and
codebook weights trained on digits deploy into their formats, and the C's predictions equal the
fake-quantized model's on the whole test split (C = reference = TFLM on every test image)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.compress.prune import MagnitudePruner  # noqa: E402
from mcuforge.data import load_digits  # noqa: E402
from mcuforge.engine.reference import run  # noqa: E402
from mcuforge.errors import ModelError, UsageError  # noqa: E402
from mcuforge.frontends.tflite_writer import write_tflite  # noqa: E402
from mcuforge.ir.formats import POW2, format_summary, holds, weight_tensors  # noqa: E402
from mcuforge.quant.ptq import dequantize_output, quantize_input  # noqa: E402
from mcuforge.quant.qat import convert, prepare_qat  # noqa: E402
from mcuforge.quant.quantize_graph import layer_weight_scales, quantize_symmetric  # noqa: E402
from mcuforge.quant.weight_grids import quantize_layer  # noqa: E402
from mcuforge.verify import verify  # noqa: E402

from netbuilder import small_cnn, train_steps  # noqa: E402


def test_grids_of_each_format() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 5))  # CONV_2D [out, kh, kw, in]
    bias = rng.standard_normal(4)
    # int8 is the PTQ path's rule, written independently there
    int8 = quantize_layer("int8", "CONV_2D", w, bias, 0.02)
    scales = layer_weight_scales("CONV_2D", w, bias, 0.02)
    assert np.array_equal(int8.scales, scales) and np.array_equal(int8.codes, quantize_symmetric(w, scales))
    int4 = quantize_layer("int4", "CONV_2D", w, bias, 0.02)
    peak = np.abs(w).reshape(4, -1).max(1)
    assert np.allclose(int4.scales, peak / 7, rtol=1e-6) and int4.codes.min() >= -8 and int4.codes.max() <= 7
    assert np.array_equal(np.abs(int4.codes).reshape(4, -1).max(1), [7, 7, 7, 7])
    tern = quantize_layer("ternary", "CONV_2D", w, bias, 0.02)
    flat = w.reshape(4, -1)
    kept = np.abs(flat) > 0.7 * np.abs(flat).mean(1, keepdims=True)
    assert np.array_equal(tern.codes.reshape(4, -1), (np.sign(flat) * kept).astype(np.int8))
    assert np.allclose(tern.scales, (np.abs(flat) * kept).sum(1) / kept.sum(1), rtol=1e-6)
    pow2 = quantize_layer("pow2", "FULLY_CONNECTED", w.reshape(4, -1), None, 0.02)
    assert pow2.axis == 0 and np.isin(pow2.codes, POW2).all()
    assert np.array_equal(np.abs(pow2.codes).max(1), [64] * 4)
    dw = quantize_layer("int4", "DEPTHWISE_CONV_2D", w.reshape(1, 3, 3, 20), None, 0.02)
    assert dw.axis == 3 and dw.scales.shape == (20,)
    table = np.array([0.0, -40.2, 11.0, 90.6])
    book = quantize_layer("codebook:2", "CONV_2D", w, bias, 0.02, table)
    assert set(np.unique(book.codes)) <= {0, -40, 11, 91}
    assert np.array_equal(book.codes, np.array([0, -40, 11, 91])[book.index])
    assert np.array_equal(book.scales, int8.scales)  # the int8 scales; the table shares the codes


@pytest.fixture(scope="module")
def digits_model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    digits = load_digits(seed=0)
    torch.manual_seed(0)
    model = small_cnn()
    train_steps(model, torch.from_numpy(digits.x_train).permute(0, 3, 1, 2), torch.from_numpy(digits.y_train), 60, 1e-2)
    yield digits, model
    torch.set_num_threads(threads)


def _qat(digits, model, weights, pruner_sparsity: float = 0.0):
    qat = prepare_qat(copy.deepcopy(model), torch.zeros(1, 1, 8, 8), calibration=digits.x_train[:256],
                      weights=weights)
    pruner = MagnitudePruner(qat.weight_parameters(), pruner_sparsity, end=40, every=5) if pruner_sparsity else None
    train_steps(qat, torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train), 60, 1e-3, pruner)
    return qat


def _deployed_predictions(graph, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    given = [quantize_input(graph, xi[None]) for xi in x]
    return given, np.array([dequantize_output(graph, run(graph, [q])[0])[0].argmax() for q in given])


BYTES = {"int4": 0.5, "ternary": 0.25, "pow2": 0.5, "codebook:4": 0.51, "codebook:2": 0.26}


@pytest.mark.parametrize("fmt", list(BYTES))
def test_trained_format_deploys_with_the_fake_quantized_predictions(digits_model, fmt: str) -> None:
    digits, model = digits_model
    qat = _qat(digits, model, fmt)
    graph = convert(qat)
    summary = format_summary(graph)
    assert list(summary) == [fmt]
    assert summary[fmt]["bytes"] <= BYTES[fmt] * summary[fmt]["int8_bytes"]
    assert all(holds(fmt, graph[n].data) for n in weight_tensors(graph))
    given, deployed = _deployed_predictions(graph, digits.x_test)
    result = verify(graph, given=given, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.lines()  # C = reference = TFLM, every test image
    with torch.no_grad():
        fake = qat(torch.from_numpy(digits.x_test)).numpy().argmax(1)
    assert np.array_equal(fake, deployed)  # the whole test split
    assert np.mean(deployed == digits.y_test) >= 0.85


def test_codebook_tables_train_and_keep_zeros(digits_model) -> None:
    digits, model = digits_model
    qat = prepare_qat(copy.deepcopy(model), torch.zeros(1, 1, 8, 8), calibration=digits.x_train[:256],
                      weights="codebook:4")
    before = {k: v.detach().clone() for k, v in qat.tables.items()}
    pruner = MagnitudePruner(qat.weight_parameters(), 0.5, scope="layer", end=20, every=5)
    train_steps(qat, torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train), 30, 1e-3, pruner)
    assert all(not torch.equal(before[k], v.detach()) for k, v in qat.tables.items())  # the centroids moved
    graph = convert(qat)
    for name in weight_tensors(graph):
        w = graph[name].data
        assert len(np.unique(w)) <= 16 and (w == 0).mean() >= 0.5  # pruned weights map to the pinned 0
    given, deployed = _deployed_predictions(graph, digits.x_test[:100])
    with torch.no_grad():
        assert np.array_equal(qat(torch.from_numpy(digits.x_test[:100])).numpy().argmax(1), deployed)


def test_formats_per_layer_and_refusals(digits_model) -> None:
    digits, model = digits_model
    qat = prepare_qat(copy.deepcopy(model), torch.zeros(1, 1, 8, 8), calibration=digits.x_train[:256])
    names = list(qat.weight_parameters())
    mixed = prepare_qat(copy.deepcopy(model), torch.zeros(1, 1, 8, 8), calibration=digits.x_train[:256],
                        weights={names[0]: "ternary", names[2]: "int4"})
    graph = convert(mixed.eval())
    assert [graph[n].format for n in weight_tensors(graph)] == ["ternary", "int8", "int4"]
    given, deployed = _deployed_predictions(graph, digits.x_test[:50])
    with torch.no_grad():
        assert np.array_equal(mixed(torch.from_numpy(digits.x_test[:50])).numpy().argmax(1), deployed)
    with pytest.raises(UsageError, match="cannot be trained"):
        prepare_qat(copy.deepcopy(model), torch.zeros(1, 1, 8, 8), weights="sparse")
    with pytest.raises(ModelError, match="no layer has the weights"):
        prepare_qat(copy.deepcopy(model), torch.zeros(1, 1, 8, 8), weights={"nope": "int4"})
