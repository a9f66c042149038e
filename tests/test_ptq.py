"""Post-training quantization: observers, the float -> int8 graph pass, calibration, end to end."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

from mcuforge.engine.reference import run
from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, Op, Tensor
from mcuforge.quant.observers import (OBSERVERS, MovingAverageMinMaxObserver, MseObserver,
                                      Observer, PercentileObserver, make_observer)
from mcuforge.quant.ptq import calibrate, calibration_batches, dequantize_output, quantize, quantize_input
from mcuforge.quant.quantize_graph import activation_quant, quantize_with_ranges, weight_scales
from mcuforge.verify import verify

try:
    import torch
except ImportError:  # the torch-free parts (observers on numpy, quantize_with_ranges) still run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
WITH_TORCH = [False, pytest.param(True, marks=needs_torch)]

# ---------------------------------------------------------------- observers


def _heavy_tailed(seed: int = 0, n: int = 20000) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    batches = [rng.laplace(0.3, 0.5 * s, n).astype(np.float32) for s in (1.0, 2.0, 0.5, 1.5)]
    batches[1][:5] = [40.0, -25.0, 33.0, 60.0, -18.0]  # rare outliers
    return batches


def _observed(name: str, batches: list[np.ndarray], as_torch: bool = False) -> Observer:
    obs = make_observer(name)
    for b in batches:
        obs.update(torch.from_numpy(b) if as_torch else b)
    return obs


def _int8_mse(x: np.ndarray, lo: float, hi: float) -> float:
    q = activation_quant(lo, hi)
    codes = np.clip(np.round(x / q.s) + q.zp, -128, 127)
    return float(np.mean(((codes - q.zp) * q.s - x) ** 2))


@pytest.mark.parametrize("as_torch", WITH_TORCH)
def test_minmax_is_exact_and_includes_zero(as_torch):
    batches = _heavy_tailed()
    whole = np.concatenate(batches)
    assert _observed("minmax", batches, as_torch).range() == (float(whole.min()), float(whole.max()))
    positive = [np.abs(b) + 1.0 for b in batches]
    assert _observed("minmax", positive, as_torch).range() == (0.0, float(np.concatenate(positive).max()))


def test_ema_follows_pytorch_formula():
    batches = _heavy_tailed()
    lo, hi = float(batches[0].min()), float(batches[0].max())
    for b in batches[1:]:
        lo += 0.01 * (float(b.min()) - lo)
        hi += 0.01 * (float(b.max()) - hi)
    got = _observed("ema", batches).range()
    assert got == pytest.approx((lo, hi), rel=1e-12)
    fast = MovingAverageMinMaxObserver(averaging_constant=1.0)
    for b in batches:
        fast.update(b)
    assert fast.range() == (float(batches[-1].min()), float(batches[-1].max()))


@pytest.mark.parametrize("as_torch", WITH_TORCH)
def test_percentile_close_to_numpy(as_torch):
    batches = _heavy_tailed()
    obs = _observed("percentile", batches, as_torch)
    lo, hi = np.percentile(np.concatenate(batches), [0.01, 99.99])
    got = obs.range()
    assert abs(got[0] - lo) <= 2 * obs.width and abs(got[1] - hi) <= 2 * obs.width
    assert obs.width < 0.1  # the outliers widened the bins, yet they stay fine
    assert PercentileObserver(99.0).bins == 2048


def test_histogram_grows_by_merging_bins_exactly():
    batches = _heavy_tailed()
    obs = PercentileObserver(bins=256)
    for b in batches:
        obs.update(b)
    whole = np.concatenate(batches)
    assert obs.counts.sum() == whole.size
    assert obs.lo <= whole.min() and obs.hi >= whole.max() and obs.lo <= 0.0
    direct, _ = np.histogram(whole, bins=obs.edges)
    assert np.abs(direct - obs.counts).sum() <= 4  # only values on a bin edge may land in a neighbour
    only_positive = PercentileObserver(bins=64)
    only_positive.update(np.array([0.0, 1.0]))
    only_positive.update(np.array([100.0]))
    assert only_positive.lo == 0.0 and only_positive.hi >= 100.0


@pytest.mark.parametrize("heavy", ["laplace", "student-t"])
def test_mse_range_is_near_the_best_clipping(heavy):
    rng = np.random.default_rng(1)
    batches = (_heavy_tailed() if heavy == "laplace"
               else [rng.standard_t(2, 20000).astype(np.float32) for _ in range(4)])
    whole = np.concatenate(batches)
    lo, hi = _observed("mse", batches).range()
    assert whole.min() <= lo <= 0.0 <= hi <= whole.max()
    best = min(_int8_mse(whole, a, b) for a in np.linspace(whole.min(), 0, 25) for b in np.linspace(0, whole.max(), 25))
    assert _int8_mse(whole, lo, hi) <= min(_int8_mse(whole, whole.min(), whole.max()), 1.02 * best)


@pytest.mark.parametrize("name", sorted(OBSERVERS))
def test_observers_on_empty_and_zero_data(name):
    assert make_observer(name).range() == (0.0, 0.0)
    obs = make_observer(name)
    obs.update(np.zeros((2, 3), np.float32))
    obs.update(np.zeros(0, np.float32))
    assert obs.range() == (0.0, 0.0)
    q = activation_quant(*obs.range())
    assert q.zp == -128 and q.s == pytest.approx(1 / 255)


@pytest.mark.parametrize("name", sorted(OBSERVERS))
def test_observers_refuse_nan(name):
    with pytest.raises(ValueError, match="NaN or infinity"):
        make_observer(name).update(np.array([0.0, np.nan, 1.0], np.float32))


def test_make_observer_names_the_choices():
    assert isinstance(make_observer("mse"), MseObserver)
    with pytest.raises(ValueError, match="minmax, ema, percentile, mse"):
        make_observer("kl")


# ---------------------------------------------------------------- hand-built float graphs


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """(output size, pad before, pad after) of TFLite's SAME padding."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


class FloatNet:
    """Builds float IR graphs as from_torch emits them (NHWC, float32 weights and bias, batch 1)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self.inputs: list[str] = []

    def _tensor(self, base: str, shape: Sequence[int], data: np.ndarray | None = None) -> str:
        name = f"{base}_{len(self.tensors)}"
        self.tensors[name] = Tensor(name, tuple(int(d) for d in shape), "float32", None, data)
        return name

    def shape(self, x: str) -> tuple[int, ...]:
        return self.tensors[x].shape

    def op(self, kind: str, inputs: Sequence[str], shape: Sequence[int] | None = None, **attrs: object) -> str:
        out = self._tensor(kind.lower(), self.shape(inputs[0]) if shape is None else shape)
        self.ops.append(Op(kind, tuple(inputs), (out,), attrs))
        return out

    def input(self, shape: Sequence[int]) -> str:
        self.inputs.append(self._tensor("input", shape))
        return self.inputs[-1]

    def _const(self, base: str, shape: Sequence[int], std: float) -> str:
        return self._tensor(base, shape, self.rng.normal(0.0, std, shape).astype(np.float32))

    def _windowed(self, kind: str, x: str, weights: str, out_c: int, k: int, stride: int, activation: str,
                  **attrs: object) -> str:
        n, h, w, _ = self.shape(x)
        (oh, top, bottom), (ow, left, right) = same_pads(h, k, stride), same_pads(w, k, stride)
        bias = self._const("bias", (out_c,), 0.2)
        return self.op(kind, (x, weights, bias), (n, oh, ow, out_c), stride=(stride, stride), dilation=(1, 1),
                       pad=(top, bottom, left, right), activation=activation, **attrs)

    def conv(self, x: str, out_c: int, k: int = 3, stride: int = 1, activation: str = "NONE") -> str:
        c = self.shape(x)[-1]
        weights = self._const("weights", (out_c, k, k, c), np.sqrt(2.0 / (k * k * c)))
        return self._windowed("CONV_2D", x, weights, out_c, k, stride, activation)

    def depthwise(self, x: str, k: int = 3, stride: int = 1, multiplier: int = 1, activation: str = "NONE") -> str:
        out_c = self.shape(x)[-1] * multiplier
        weights = self._const("weights", (1, k, k, out_c), np.sqrt(2.0 / (k * k)))
        return self._windowed("DEPTHWISE_CONV_2D", x, weights, out_c, k, stride, activation, multiplier=multiplier)

    def fc(self, x: str, units: int, activation: str = "NONE") -> str:
        n, depth = self.shape(x)
        weights = self._const("weights", (units, depth), np.sqrt(1.0 / depth))
        bias = self._const("bias", (units,), 0.2)
        return self.op("FULLY_CONNECTED", (x, weights, bias), (n, units), activation=activation, keep_num_dims=False)

    def pool(self, kind: str, x: str, k: int = 2) -> str:
        n, h, w, c = self.shape(x)
        return self.op(kind, (x,), (n, h // k, w // k, c), filter=(k, k), stride=(k, k), pad=(0, 0, 0, 0),
                       activation="NONE")

    def flatten(self, x: str) -> str:
        return self.op("RESHAPE", (x,), (self.shape(x)[0], int(np.prod(self.shape(x)[1:]))))

    def concat(self, xs: Sequence[str]) -> str:
        shape = (*self.shape(xs[0])[:-1], sum(self.shape(x)[-1] for x in xs))
        return self.op("CONCATENATION", xs, shape, axis=len(shape) - 1, activation="NONE")

    def build(self, outputs: Sequence[str], name: str = "float_net") -> Graph:
        return Graph(self.tensors, self.ops, self.inputs, tuple(outputs), name)


def zoo_graph(seed: int = 0) -> Graph:
    """conv + relu6, depthwise, add, concat, pools, mean, fc, softmax, and the standalone activations."""
    f = FloatNet(seed)
    x = f.input((1, 12, 12, 3))
    a = f.conv(x, 8, stride=2, activation="RELU6")
    b = f.depthwise(a, activation="RELU")
    s = f.op("ADD", (a, b), activation="NONE")
    h = f.op("HARD_SWISH", (f.conv(s, 8, k=1),))
    c = f.concat([s, f.op("LEAKY_RELU", (h,), alpha=0.1), f.op("RELU", (f.depthwise(s),))])
    p = f.pool("AVERAGE_POOL_2D", f.pool("MAX_POOL_2D", c))
    t = f.op("TRANSPOSE", (f.op("TANH", (p,)),), perm=(0, 2, 1, 3))
    m = f.op("MEAN", (f.op("RELU6", (f.op("LOGISTIC", (p,)),)),), (1, 1, 1, 24), axes=(1, 2), keep_dims=True)
    y = f.fc(f.flatten(f.concat([t, p])), 6, activation="RELU")
    logits = f.fc(f.op("ADD", (y, f.fc(f.flatten(m), 6)), activation="NONE"), 4)
    return f.build([f.op("SOFTMAX", (logits,), beta=1.0)], name="zoo")


def _guessed_ranges(graph: Graph) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(0)
    return {n: (-float(rng.uniform(0, 4)), float(rng.uniform(0.5, 6))) for n in graph.activations()}


def _kind_outputs(graph: Graph, kind: str) -> list[str]:
    return [op.outputs[0] for op in graph.ops if op.kind == kind]


def test_quantize_with_ranges_is_bit_exact_with_reference_and_tflm():
    graph = quantize_with_ranges(zoo_graph(), _guessed_ranges(zoo_graph()))
    assert {graph[n].dtype for n in graph.activations()} == {"int8"}
    result = verify(graph, samples=8, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.mismatches[:3]


def test_parameters_follow_tflite_rules():
    float_graph = zoo_graph()
    graph = quantize_with_ranges(float_graph, _guessed_ranges(float_graph))

    def quant(name: str) -> tuple[float, int]:
        return graph[name].quant.s, graph[name].quant.zp

    for op in graph.ops:
        if op.kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "TRANSPOSE", "RELU6", "CONCATENATION"):
            assert all(quant(n) == quant(op.outputs[0]) for n in op.inputs), op.kind
        if op.kind == "HARD_SWISH":
            assert quant(op.outputs[0])[0] > quant(op.inputs[0])[0] / 128
    for kind, fixed in (("SOFTMAX", (1 / 256, -128)), ("LOGISTIC", (1 / 256, -128)), ("TANH", (1 / 128, 0))):
        assert all(quant(n) == fixed for n in _kind_outputs(graph, kind))
    conv = next(op for op in graph.ops if op.kind == "CONV_2D")
    w, b = graph[conv.inputs[1]], graph[conv.inputs[2]]
    real = float_graph[conv.inputs[1]].data
    np.testing.assert_allclose(w.quant.scale, np.abs(real).max(axis=(1, 2, 3)) / 127, rtol=1e-6)
    assert w.quant.axis == 0 and np.abs(w.data).max() == 127 and w.dtype == "int8"
    assert b.dtype == "int32" and np.all(b.quant.zero_point == 0)
    np.testing.assert_array_equal(b.quant.scale, np.float32(graph[conv.inputs[0]].quant.s) * w.quant.scale)
    np.testing.assert_allclose(b.data * b.quant.scale, float_graph[conv.inputs[2]].data, atol=b.quant.scale.max())
    dw = next(op for op in graph.ops if op.kind == "DEPTHWISE_CONV_2D")
    assert graph[dw.inputs[1]].quant.axis == 3 and graph[dw.inputs[1]].quant.scale.size == 8
    fc = next(op for op in graph.ops if op.kind == "FULLY_CONNECTED")
    assert graph[fc.inputs[1]].quant.axis is None and graph[fc.inputs[1]].quant.scale.size == 1


def test_activation_parameters():
    q = activation_quant(-1.0, 3.0)
    assert q.s == pytest.approx(4 / 255) and q.zp == round(-128 + 1 / (4 / 255))
    assert activation_quant(0.0, 6.0).zp == -128 and activation_quant(-2.0, 0.0).zp == 127
    assert activation_quant(1.0, 2.0).zp == -128  # 0 joins the range
    dead = activation_quant(0.0, 0.0)
    assert (dead.s, dead.zp) == (np.float32(1 / 255), -128)


def test_zero_channel_and_large_bias_get_usable_scales():
    scales = weight_scales(np.array([[0.0, 0.0], [1.27, -0.5], [1e-9, 0.0]]), np.array([0.0, 0.1, 5.0]), 0.01)
    assert scales[0] > 0 and scales[1] == np.float32(0.01)
    assert 5.0 / (0.01 * scales[2]) <= 2 ** 30 * 1.0001  # the bias fits in int32 with headroom


def test_concat_with_fixed_inputs():
    f = FloatNet(2)
    x = f.input((1, 4, 4, 3))
    a, b = f.op("LOGISTIC", (x,)), f.op("TANH", (x,))
    conv = f.conv(x, 2)
    shared = f.concat([a, f.op("LOGISTIC", (conv,))])  # all fixed alike: keeps 1/256, -128
    mixed = f.concat([shared, b, conv])  # the fixed inputs are requantized to the output's parameters
    float_graph = f.build([mixed])
    graph = quantize_with_ranges(float_graph, {n: (-3.0, 3.0) for n in float_graph.activations()})
    assert (graph[shared].quant.s, graph[shared].quant.zp) == (1 / 256, -128)
    requantized = [op for op in graph.ops if op.kind == "QUANTIZE"]
    assert [op.inputs[0] for op in requantized] == [shared, b]
    concat = graph.ops[graph.producer(mixed)]
    assert concat.inputs == (requantized[0].outputs[0], requantized[1].outputs[0], conv)
    assert all(graph[n].quant.s == graph[mixed].quant.s for n in concat.inputs)
    result = verify(graph, samples=4, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.mismatches[:3]


def test_scale_floors_widen_tiny_ranges():
    f = FloatNet(3)
    x = f.input((1, 4, 4, 2))
    s = f.op("ADD", (x, x), activation="NONE")
    h = f.op("HARD_SWISH", (f.op("RELU", (s,)),))
    float_graph = f.build([f.op("SOFTMAX", (h,), beta=1.0)])
    ranges = {n: (-100.0, 100.0) for n in float_graph.activations()}
    ranges[s], ranges[h] = (0.0, 1e-5), (-1e-4, 1e-4)
    graph = quantize_with_ranges(float_graph, ranges)
    assert graph[s].quant.s > 2 * graph[x].quant.s / 2 ** 20
    assert graph[h].quant.s > graph[f.ops[1].outputs[0]].quant.s / 128
    assert verify(graph, samples=3, tflite_bytes=write_tflite(graph)).ok


def test_bad_graphs_get_clear_errors():
    f = FloatNet()
    x = f.input((1, 4))
    float_graph = f.build([f.op("SQUARED_DIFFERENCE", (x, x))])
    with pytest.raises(ModelError, match="does not support"):
        quantize_with_ranges(float_graph, {})
    f = FloatNet()
    float_graph = f.build([f.fc(f.input((1, 4)), 3)])
    with pytest.raises(ModelError, match="no calibration range"):
        quantize_with_ranges(float_graph, {float_graph.inputs[0]: (-1.0, 1.0)})


# ---------------------------------------------------------------- calibration and end to end


def _float_outputs(float_graph: Graph, x: np.ndarray) -> np.ndarray:
    from mcuforge.quant.torch_graph import TorchGraph

    with torch.no_grad():
        return TorchGraph(float_graph)(torch.from_numpy(x))[0].numpy()


def _int8_outputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Dequantized outputs of the reference interpreter, one sample at a time."""
    return np.stack([dequantize_output(graph, run(graph, [quantize_input(graph, xi[None])])[0])[0] for xi in x])


def _calibration(shape: Sequence[int], n: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, *shape[1:])).astype(np.float32)


def test_calibration_batches_accept_arrays_iterables_and_single_samples():
    float_graph = zoo_graph()
    x = _calibration(float_graph[float_graph.inputs[0]].shape, n=12)
    batches, count = calibration_batches(float_graph, x, batch_size=5)
    assert count == 3 and [len(b[0]) for b in batches] == [5, 5, 2]
    batches, count = calibration_batches(float_graph, iter([x[:4], (x[4:6],), x[7]]))
    assert count is None and [b[0].shape[0] for b in batches] == [4, 2, 1]
    with pytest.raises(ValueError, match=r"must be \[N, 12, 12, 3\]"):
        calibration_batches(float_graph, x[:, :8], batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        calibration_batches(float_graph, x, batch_size=0)


@needs_torch
def test_calibrate_observes_every_activation():
    float_graph = zoo_graph()
    x = _calibration(float_graph[float_graph.inputs[0]].shape, n=10)
    ranges = calibrate(float_graph, x, "minmax", batch_size=3, progress=True)
    assert set(ranges) == set(float_graph.activations())
    assert ranges[float_graph.inputs[0]] == (float(x.min()), float(x.max()))
    assert all(lo <= 0.0 <= hi for lo, hi in ranges.values())
    with pytest.raises(ValueError, match="choose one of"):
        calibrate(float_graph, x, "histogram")
    x[3, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=f"tensor '{float_graph.inputs[0]}': values include NaN or infinity"):
        calibrate(float_graph, x, "mse")


@needs_torch
def test_calibrated_zoo_is_close_to_float_and_bit_exact():
    float_graph = zoo_graph(seed=5)
    x = _calibration(float_graph[float_graph.inputs[0]].shape)
    graph = quantize(float_graph, x, observer="minmax", progress=False)
    result = verify(graph, samples=4, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.mismatches[:3]
    error = np.abs(_int8_outputs(graph, x[:8]) - _float_outputs(float_graph, x[:8]))
    assert error.max() <= 4 * graph[graph.outputs[0]].quant.s


def test_quantize_input_and_dequantize_output():
    f = FloatNet()
    x = f.input((1, 4))
    float_graph = f.build([f.fc(x, 2)])
    graph = quantize_with_ranges(float_graph, {x: (-1.0, 2.0), float_graph.outputs[0]: (-3.0, 1.0)})
    q = graph[x].quant
    values = np.array([[-1.0, 0.0, 2.0, 5.0]], np.float32)
    codes = quantize_input(graph, values)
    assert codes.dtype == np.int8 and codes[0, 1] == q.zp and codes[0, 3] == 127
    np.testing.assert_allclose((codes[0, :3].astype(int) - q.zp) * q.s, values[0, :3], atol=q.s / 2)
    y = dequantize_output(graph, np.array([[-128, 127]], np.int8))
    out = graph[graph.outputs[0]].quant
    assert y.dtype == np.float32
    assert y[0, 0] == pytest.approx(-3.0, abs=out.s) and y[0, 1] == pytest.approx(1.0, abs=out.s)
    with pytest.raises(IndexError):
        quantize_input(graph, values, i=1)


def tiny_net() -> torch.nn.Module:
    """Conv + BN + ReLU6, depthwise, a residual add, hard-swish, pools, a concatenation with a sigmoid
    branch, global mean, Linear and softmax."""
    nn, F = torch.nn, torch.nn.functional

    class TinyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU6())
            self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.BatchNorm2d(8), nn.ReLU())
            self.pw = nn.Conv2d(8, 8, 1)
            self.head = nn.Linear(16, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            x = F.hardswish(x + self.pw(self.dw(x)))
            x = torch.cat([F.max_pool2d(x, 2), torch.sigmoid(F.avg_pool2d(x, 2))], 1)
            return torch.softmax(self.head(x.mean((2, 3))), -1)

    torch.manual_seed(0)
    model = TinyNet().eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def tiny_float_graph() -> Graph:
    from mcuforge.frontends.torch_capture import from_torch

    return from_torch(tiny_net(), torch.randn(1, 3, 16, 16))


@needs_torch
@pytest.mark.parametrize("observer", sorted(OBSERVERS))
def test_torch_model_end_to_end(tiny_float_graph, observer):
    x = _calibration(tiny_float_graph[tiny_float_graph.inputs[0]].shape, n=40, seed=1)
    graph = quantize(tiny_float_graph, x, observer=observer, batch_size=16, progress=False)
    assert [op.kind for op in graph.ops].count("QUANTIZE") == 1  # the sigmoid branch joins the concatenation
    result = verify(graph, samples=4, given=[quantize_input(graph, x[:1])], tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.mismatches[:3]
    error = np.abs(_int8_outputs(graph, x[:8]) - _float_outputs(tiny_float_graph, x[:8]))
    assert error.max() <= 3 * graph[graph.outputs[0]].quant.s


@needs_torch
def test_calibration_in_channels_first_layout_gives_the_same_model(tiny_float_graph):
    x = _calibration(tiny_float_graph[tiny_float_graph.inputs[0]].shape, n=24, seed=2)  # NHWC
    nhwc = quantize(tiny_float_graph, x, batch_size=8, progress=False)
    nchw = quantize(tiny_float_graph, np.ascontiguousarray(x.transpose(0, 3, 1, 2)), batch_size=8, progress=False,
                    layout="nchw")
    assert write_tflite(nhwc) == write_tflite(nchw)
    with pytest.raises(ValueError, match="layout"):
        quantize(tiny_float_graph, x, progress=False, layout="hwc")


def test_weights_shared_by_two_ops():
    f = FloatNet(4)
    x = f.input((1, 4, 4, 3))
    a = f.conv(x, 3, k=1)
    twice = f.op("CONV_2D", f.ops[0].inputs, f.shape(a), **f.ops[0].attrs)
    again = f.op("CONV_2D", (a, *f.ops[0].inputs[1:]), f.shape(a), **f.ops[0].attrs)
    float_graph = f.build([f.op("ADD", (twice, again), activation="NONE")])
    ranges = {n: (-1.0, 1.0) for n in float_graph.activations()}
    ranges[a] = (-3.0, 2.0)
    graph = quantize_with_ranges(float_graph, ranges)
    first, second, third = (op.inputs[1:] for op in graph.ops[:3])
    assert first == second == f.ops[0].inputs[1:]  # same input scale: one copy
    assert third[0] == first[0] and third[1] != first[1]  # the bias depends on the input scale
    assert verify(graph, samples=2, tflite_bytes=write_tflite(graph)).ok
