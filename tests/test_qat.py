"""Quantization-aware training (quant.qat, quant.fake_quant): the fake-quantized model must be the int8 model."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from mcuforge.data import Split, load_digits
from mcuforge.engine.reference import run, run_all
from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.frontends.torch_capture import from_torch
from mcuforge.ir import Graph, QuantParams
from mcuforge.quant.fake_quant import Rounding, fake_quantize
from mcuforge.quant.ptq import dequantize_output, quantize, quantize_input
from mcuforge.quant.qat import QATModel, channels_last, convert, prepare_qat
from mcuforge.verify import verify


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models train far faster on one thread than on threads fighting over two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> Split:
    return load_digits(seed=0)


class ResidualNet(nn.Module):
    """Conv+BN+ReLU, depthwise+BN+ReLU, pointwise+BN, residual add, average pool, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.depthwise = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8),
                                       nn.ReLU())
        self.pointwise = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        y = F.relu(s + self.pointwise(self.depthwise(s)))
        return self.head(torch.flatten(self.pool(y), 1))


class ZooNet(nn.Module):
    """ReLU6, hard swish, concatenation, max pool, leaky ReLU, global average (MEAN), softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
        self.b = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Hardswish())
        self.c = nn.Conv2d(16, 12, 1)
        self.head = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        y = self.c(F.max_pool2d(torch.cat([a, self.b(a)], 1), 2))
        y = F.adaptive_avg_pool2d(F.leaky_relu(y, 0.1), 1).flatten(1)
        return torch.softmax(self.head(y), -1)


def _probabilities_loss(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.nll_loss(torch.log(p + 1e-6), y)


LOSSES = {ResidualNet: F.cross_entropy, ZooNet: _probabilities_loss}  # ZooNet ends in a softmax


def _train(model: nn.Module, x: np.ndarray, y: np.ndarray, steps: int, lr: float, seed: int,
           layout=lambda x: x, loss_fn=F.cross_entropy) -> nn.Module:
    """Adam over random batches of 64; x in IR layout, passed through `layout`."""
    gen = torch.Generator().manual_seed(seed)
    xs, ys = layout(torch.from_numpy(x)), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(xs), (64,), generator=gen)
        loss = loss_fn(model(xs[idx]), ys[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _from_nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _float_model(cls: type[nn.Module], digits: Split, steps: int = 60) -> nn.Module:
    torch.manual_seed(0)
    return _train(cls(), digits.x_train, digits.y_train, steps, 1e-2, seed=0, layout=_from_nchw,
                  loss_fn=LOSSES[cls])


def _qat_trained(cls: type[nn.Module], digits: Split) -> QATModel:
    qat = prepare_qat(_float_model(cls, digits), torch.zeros(1, 1, 8, 8), calibration=digits.x_train[:256])
    return _train(qat, digits.x_train, digits.y_train, 30, 1e-3, seed=1, loss_fn=LOSSES[cls])


def _int8_outputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    return np.stack([dequantize_output(graph, run(graph, [quantize_input(graph, xi[None])])[0])[0] for xi in x])


def _fake_outputs(qat: QATModel, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return qat.eval()(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def residual_qat(digits: Split) -> QATModel:
    return _qat_trained(ResidualNet, digits)


# ---------------------------------------------------------------- fake quantization


def test_fake_quantize_straight_through_inside_range_only():
    q = QuantParams.per_tensor(0.1, -28)  # codes -128..127 hold reals [-10.0, 15.5]
    x = torch.tensor([-12.0, -10.04, -10.0, -3.33, 0.0, 0.05, 7.26, 15.5, 15.54, 20.0], requires_grad=True)
    y = fake_quantize(x, q)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), [-10.0, -10.0, -10.0, -3.3, 0.0, 0.1, 7.3, 15.5, 15.5, 15.5],
                               atol=1e-5)
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_fake_quantize_rounds_as_the_integer_path():
    q = QuantParams.per_tensor(1.0, -3)
    halves = torch.tensor([-2.5, -0.5, 0.5, 2.5], dtype=torch.float64)
    assert fake_quantize(halves, q).tolist() == [-3.0, -1.0, 1.0, 3.0]  # halves away from zero
    assert fake_quantize(halves, q, Rounding.POOL).tolist() == [-3.0, -1.0, 0.0, 2.0]  # codes -5.5 .. -0.5
    below_half = torch.tensor([2.4995], dtype=torch.float64)
    assert fake_quantize(below_half, q, steps_per_code=2.0 ** 8).item() == 3.0  # double rounding, shift 8
    assert fake_quantize(below_half, q).item() == 2.0


# ---------------------------------------------------------------- ranges


def test_ranges_track_in_training_and_freeze(digits: Split):
    model = _float_model(ResidualNet, digits, steps=0)
    qat = prepare_qat(model, torch.zeros(1, 1, 8, 8))
    with pytest.raises(ModelError, match="no range yet"):
        qat.eval()(torch.from_numpy(digits.x_test[:4]))
    with pytest.raises(ModelError, match="no range yet"):
        convert(qat)
    qat.train()(torch.from_numpy(digits.x_train[:32]))  # the first batch seeds every range
    assert not qat.missing_ranges()
    x = torch.from_numpy(digits.x_train[:32] * 3.0)
    before = qat.ranges()
    qat.eval()(x)
    assert qat.ranges() == before
    qat.train().freeze_ranges()(x)
    assert qat.ranges() == before
    qat.freeze_ranges(False)(x)
    name = qat.graph.inputs[0]
    assert qat.ranges()[name][1] == pytest.approx(before[name][1] + 0.01 * (3.0 - before[name][1]))


def test_channels_last_and_bad_layouts():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    assert channels_last(x).shape == (2, 4, 5, 3) and channels_last(x)[1, 2, 3, 0] == x[1, 0, 2, 3]
    assert tuple(channels_last(torch.from_numpy(x[:, :, 0])).shape) == (2, 5, 3)
    assert channels_last(x[:, :, 0, 0]).shape == (2, 3)
    qat = prepare_qat(ResidualNet().eval(), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="IR layout"):
        qat(torch.zeros(2, 1, 8, 8))


# ---------------------------------------------------------------- the int8 graph is the QAT model


def test_converted_graph_agrees_with_qat_model(residual_qat: QATModel, digits: Split):
    graph = convert(residual_qat)
    assert [op.kind for op in graph.ops] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD",
                                             "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]
    x = digits.x_test[:300]
    fake, integer = _fake_outputs(residual_qat, x), _int8_outputs(graph, x)
    assert np.array_equal(fake.argmax(1), integer.argmax(1))
    assert np.abs(fake - integer).max() <= 1e-6 * graph[graph.outputs[0]].quant.s  # the same codes
    assert np.mean(integer.argmax(1) == digits.y_test[:300]) >= 0.85


def test_every_activation_matches_its_int8_codes(residual_qat: QATModel, digits: Split):
    graph = convert(residual_qat)
    seen: dict[str, np.ndarray] = {}

    def record(name: str, value: torch.Tensor) -> torch.Tensor:
        out = residual_qat._fake_quantize_activation(name, value)
        seen[name] = out.detach().numpy()
        return out

    x = digits.x_test[:40]
    residual_qat._current = residual_qat._quantization()
    try:
        with torch.no_grad():
            residual_qat.net(torch.from_numpy(x), observe=record, weight_hook=residual_qat._fake_quantize_constant)
    finally:
        residual_qat._current = None
    values = [run_all(graph, [quantize_input(graph, xi[None])]) for xi in x]
    for name in graph.activations():
        q = graph[name].quant
        codes = np.stack([v[name][0] for v in values])
        fake_codes = np.round(seen[name] / q.s) + q.zp
        assert np.array_equal(fake_codes, codes), name  # the residual add's rounding too


def test_converted_graph_compiles_bit_exact(residual_qat: QATModel, digits: Split):
    graph = convert(residual_qat)
    samples = [quantize_input(graph, x[None]) for x in digits.x_test[:3]]
    result = verify(graph, samples=2, given=samples, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.mismatches[:3]


def test_zoo_of_operators_agrees(digits: Split):
    qat = _qat_trained(ZooNet, digits)
    graph = convert(qat)
    assert {"HARD_SWISH", "CONCATENATION", "MAX_POOL_2D", "LEAKY_RELU", "MEAN", "SOFTMAX"} <= {
        op.kind for op in graph.ops}
    x = digits.x_test[:100]
    fake, integer = _fake_outputs(qat, x), _int8_outputs(graph, x)
    assert np.abs(fake - integer).max() <= 2 * graph[graph.outputs[0]].quant.s
    assert np.mean(fake.argmax(1) == integer.argmax(1)) >= 0.99


def test_shared_weights_are_refused():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(F.relu(self.fc(x)))

    graph = from_torch(Twice().eval(), torch.zeros(1, 4))  # one copy of the weights per use
    first, second = graph.ops
    tied = graph.with_ops([first, second.with_(inputs=(second.inputs[0], *first.inputs[1:]))])
    with pytest.raises(ModelError, match="own its weights"):
        QATModel(tied)


def test_qat_keeps_or_improves_ptq_accuracy(digits: Split):
    float_model = _float_model(ResidualNet, digits, steps=40)
    calibration = digits.x_train[:256]
    ptq_graph = quantize(from_torch(float_model, torch.zeros(1, 1, 8, 8)), calibration, progress=False)
    qat = prepare_qat(float_model, torch.zeros(1, 1, 8, 8), calibration=calibration)
    qat_graph = convert(_train(qat, digits.x_train, digits.y_train, 40, 2e-3, seed=2))
    x, y = digits.x_test, digits.y_test

    def accuracy(graph: Graph) -> float:
        return float(np.mean(_int8_outputs(graph, x).argmax(1) == y))

    assert accuracy(qat_graph) >= accuracy(ptq_graph) - 0.005
