"""Magnitude pruning while training (compress.prune): the schedule, the masks, and a pruned QAT model that
deploys with sparse weights whose C predictions are the fake-quantized model's."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from mcuforge.compress.prune import MagnitudePruner  # noqa: E402
from mcuforge.data import load_digits  # noqa: E402
from mcuforge.errors import UsageError  # noqa: E402
from mcuforge.frontends.tflite_writer import write_tflite  # noqa: E402
from mcuforge.ir.formats import choose_formats, format_summary, weight_tensors  # noqa: E402
from mcuforge.engine.reference import run  # noqa: E402
from mcuforge.quant.ptq import dequantize_output, quantize_input  # noqa: E402
from mcuforge.quant.qat import convert, prepare_qat  # noqa: E402
from mcuforge.verify import verify  # noqa: E402

from netbuilder import small_cnn, train_steps  # noqa: E402


def test_schedule_and_masks() -> None:
    a = nn.Parameter(torch.arange(1.0, 101.0).reshape(10, 10))
    b = nn.Parameter(torch.arange(1.0, 11.0) * 100)
    pruner = MagnitudePruner({"a": a, "b": b}, 0.5, begin=0, end=4)
    assert [round(pruner.target(t), 4) for t in range(6)] == [0.0, 0.2891, 0.4375, 0.4922, 0.5, 0.5]
    for _ in range(4):
        pruner.step()
    # global: the 55 smallest of the 110 magnitudes are a's 1 .. 55; b keeps every value
    assert int((a == 0).sum()) == 55 and float(a.detach()[5, 5]) == 56 and int((b == 0).sum()) == 0
    layer = MagnitudePruner({"a": nn.Parameter(torch.arange(1.0, 101.0)), "b": b}, 0.3, scope="layer")
    layer.step()
    assert layer.zeros() == {"a": 0.3, "b": 0.3}
    with pytest.raises(UsageError):
        MagnitudePruner({"a": a}, 1.0)
    # a cap per tensor: a and c give at most 60 % of their values each, the rest comes from b
    a, b, c = (nn.Parameter(torch.arange(1.0, 11.0)), nn.Parameter(torch.arange(1.0, 11.0) * 100),
               nn.Parameter(torch.arange(1.0, 11.0) * 10))
    capped = MagnitudePruner({"a": a, "b": b, "c": c}, 0.5, max_share=0.6)
    capped.step()
    assert capped.zeros() == {"a": 0.6, "b": 0.3, "c": 0.6}
    with pytest.raises(UsageError):
        MagnitudePruner({"a": a}, 0.5, max_share=0.4)


def test_pruned_qat_model_deploys_sparse_with_its_predictions() -> None:
    """75 % of the weights pruned during QAT on digits (global scope, gradual): the int8 model stores them in
    a sparse format at under half the bytes; C = reference = TFLM and the deployed predictions equal the
    fake-quantized model's, on the whole test split."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        digits = load_digits(seed=0)
        torch.manual_seed(0)
        model = small_cnn()
        train_steps(model, torch.from_numpy(digits.x_train).permute(0, 3, 1, 2), torch.from_numpy(digits.y_train), 60,
               1e-2)
        qat = prepare_qat(model, torch.zeros(1, 1, 8, 8), calibration=digits.x_train[:256])
        pruner = MagnitudePruner(qat.weight_parameters(), 0.75, end=40, every=5)
        train_steps(qat, torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train), 60, 1e-3, pruner)
        graph = convert(qat)
    finally:
        torch.set_num_threads(threads)
    weights = [graph[n].data for n in weight_tensors(graph)]
    assert sum(int((w == 0).sum()) for w in weights) >= 0.75 * sum(w.size for w in weights)
    deployed = choose_formats(graph, "auto")
    summary = format_summary(deployed)
    assert "sparse" in summary or "sparse:int4" in summary
    assert sum(r["bytes"] for r in summary.values()) < 0.5 * sum(r["int8_bytes"] for r in summary.values())
    x = digits.x_test
    given = [quantize_input(deployed, xi[None]) for xi in x]
    result = verify(deployed, given=given, tflite_bytes=write_tflite(deployed))
    assert result.ok and result.tflm_checked, result.lines()  # C = reference = TFLM on every test image
    with torch.no_grad():
        fake = qat(torch.from_numpy(x)).numpy().argmax(1)
    deployed_labels = np.array([dequantize_output(deployed, run(deployed, [q])[0])[0].argmax() for q in given])
    assert np.array_equal(fake, deployed_labels)  # every test image
    assert np.mean(deployed_labels == digits.y_test) >= 0.8
