"""torch capture (frontends.torch_capture) and the torch executor of the float IR (quant.torch_graph).

Every model is captured, run by TorchGraph on the same input in IR layout, and compared with PyTorch.
"""
from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from mcuforge.errors import ModelError
from mcuforge.frontends.torch_capture import from_torch
from mcuforge.frontends.torch_layout import Layout, conversion_steps
from mcuforge.ir import Graph
from mcuforge.ir.passes import validate
from mcuforge.quant.torch_graph import TorchGraph

# ---------------------------------------------------------------- helpers


def _randomize_batchnorm(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so folding is really tested."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) * 2 - 1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.data.copy_(torch.rand(c, generator=gen) - 0.5)
    return model.eval()


def _to_ir(x: torch.Tensor, ir_shape: tuple[int, ...]) -> torch.Tensor:
    """A torch tensor in the IR layout of a tensor of shape `ir_shape` (batch aside)."""
    if x.dim() == 4:
        return x.permute(0, 2, 3, 1)
    if x.dim() == 3 and tuple(x.shape[1:]) != tuple(ir_shape[1:]):
        return x.permute(0, 2, 1)
    return x


def _kinds(graph: Graph) -> list[str]:
    return [op.kind for op in graph.ops]


def _capture_and_compare(model: nn.Module, *shapes: tuple[int, ...], batch: int = 3) -> Graph:
    """Capture on one batch, run on another; outputs must match PyTorch's."""
    torch.manual_seed(0)
    model = _randomize_batchnorm(model)
    graph = from_torch(model, tuple(torch.randn(2, *s) for s in shapes))
    validate(graph, allow_float=True)
    xs = [torch.randn(batch, *s) for s in shapes]
    with torch.no_grad():
        expected = model(*xs)
        got = TorchGraph(graph)(*(_to_ir(x, graph[n].shape) for x, n in zip(xs, graph.inputs)))
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(got) == len(expected)
    for name, g, e in zip(graph.outputs, got, expected):
        assert tuple(g.shape[1:]) == graph[name].shape[1:]
        torch.testing.assert_close(g, _to_ir(e, graph[name].shape), rtol=1e-5, atol=1e-5)
    for t in graph.tensors.values():
        assert t.dtype == "float32" and t.quant is None
        assert t.is_const or t.shape[0] == 1
    return graph


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
             act: type[nn.Module] = nn.ReLU6) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), act())


# ---------------------------------------------------------------- models


class InvertedResidual(nn.Module):
    def __init__(self, c: int, expand: int = 4) -> None:
        super().__init__()
        hidden = c * expand
        self.block = nn.Sequential(_conv_bn(c, hidden, 1), _conv_bn(hidden, hidden, 3, groups=hidden),
                                   nn.Conv2d(hidden, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class MobileNetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv_bn(3, 8, 3, stride=2)
        self.blocks = nn.Sequential(InvertedResidual(8), InvertedResidual(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class Branches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(4, 6, 1)
        self.right = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.fuse = nn.Conv2d(10, 8, 3, padding="same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.left(x), self.right(x)], dim=1))


class FlattenLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(_conv_bn(3, 8, 3, stride=2), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                  nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Pools(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = self.conv(x)  # 7x7
        return (F.max_pool2d(y, 3, 2, 1), F.avg_pool2d(y, 3, 1, 1, count_include_pad=False),
                F.max_pool2d(y, 2, ceil_mode=True), F.avg_pool2d(y, 2, ceil_mode=True),
                F.avg_pool2d(y, 3, 2, 1, ceil_mode=True, count_include_pad=False))


class Adaptive(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (F.adaptive_avg_pool2d(x, 1), F.adaptive_avg_pool2d(x, (2, 4)), F.adaptive_max_pool2d(x, 2),
                x.mean(dim=(2, 3)), x.mean(dim=1, keepdim=True))


class Activations(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.acts = nn.Sequential(nn.Hardswish(), nn.LeakyReLU(0.1))
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = self.acts(self.conv(x))
        z = y.mean(dim=(2, 3))
        return torch.sigmoid(y), torch.tanh(z), F.relu6(y) * torch.sigmoid(z[:, :, None, None]), \
            torch.softmax(self.fc(z), dim=-1)


class Signal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
                                      nn.MaxPool1d(2), nn.Conv1d(8, 8, 3, padding="same", groups=8),
                                      nn.BatchNorm1d(8), nn.ReLU6())
        self.fc = nn.Linear(8 * 8, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.features(x)
        return self.fc(y.flatten(1)), F.adaptive_avg_pool1d(y, 1)


class BatchNormFirst(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn_features = nn.BatchNorm1d(5)

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.conv(self.bn(x)), self.bn_features(v)


# ---------------------------------------------------------------- equivalence


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv_bn_relu6_folds_and_fuses() -> None:
    model = nn.Sequential(_conv_bn(3, 8), _conv_bn(8, 16, 3, stride=2, act=nn.ReLU),
                          nn.Conv2d(16, 4, 3, dilation=2, padding=2), nn.Conv2d(4, 4, (2, 4), padding="same"))
    graph = _capture_and_compare(model, (3, 12, 12))
    assert _kinds(graph) == ["CONV_2D"] * 4
    assert [op.attrs["activation"] for op in graph.ops] == ["RELU6", "RELU", "NONE", "NONE"]
    assert graph.ops[3].attrs["pad"] == (0, 1, 1, 2)  # PyTorch's "same": the odd pad goes after
    assert graph[graph.inputs[0]].shape == (1, 12, 12, 3)
    assert graph["0.0.weight"].shape == (8, 3, 3, 3) and graph["0.0.bias"].shape == (8,)


def test_inverted_residual() -> None:
    graph = _capture_and_compare(MobileNetLike(), (3, 16, 16))
    kinds = _kinds(graph)
    assert kinds.count("DEPTHWISE_CONV_2D") == 2 and kinds.count("ADD") == 2
    assert "RELU6" not in kinds and "TRANSPOSE" not in kinds and "MEAN" in kinds
    depthwise = next(op for op in graph.ops if op.kind == "DEPTHWISE_CONV_2D")
    assert graph[depthwise.inputs[1]].shape == (1, 3, 3, 32) and depthwise.attrs["multiplier"] == 1


def test_grouped_and_multiplier_convolutions() -> None:
    model = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.Conv2d(8, 16, 3, groups=8, padding=1), nn.ReLU())
    graph = _capture_and_compare(model, (4, 9, 9))
    grouped, depthwise = graph.ops
    assert grouped.kind == "CONV_2D" and graph[grouped.inputs[1]].shape == (8, 3, 3, 2)
    assert depthwise.kind == "DEPTHWISE_CONV_2D" and depthwise.attrs["multiplier"] == 2
    assert depthwise.attrs["activation"] == "RELU"


def test_concatenated_branches() -> None:
    graph = _capture_and_compare(Branches(), (4, 8, 8))
    concat = next(op for op in graph.ops if op.kind == "CONCATENATION")
    assert concat.attrs["axis"] == 3
    assert "RELU" not in _kinds(graph)


def test_flatten_feeding_linear_permutes_weights() -> None:
    graph = _capture_and_compare(FlattenLinear(), (3, 16, 16))
    assert "TRANSPOSE" not in _kinds(graph)
    assert _kinds(graph) == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert graph.ops[3].attrs["activation"] == "RELU"  # BatchNorm1d folded, ReLU fused


def test_flatten_feeding_softmax_transposes() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Softmax(dim=1))
    graph = _capture_and_compare(model, (3, 4, 4))
    assert "TRANSPOSE" in _kinds(graph)


def test_pools_with_padding_and_ceil_mode() -> None:
    graph = _capture_and_compare(Pools(), (3, 9, 9))
    pools = [op for op in graph.ops if op.kind.endswith("POOL_2D")]
    assert [op.attrs["pad"] for op in pools] == [(1, 1, 1, 1), (1, 1, 1, 1), (0, 1, 0, 1), (0, 1, 0, 1),
                                                 (1, 1, 1, 1)]


def test_adaptive_pools_and_means() -> None:
    graph = _capture_and_compare(Adaptive(), (3, 4, 8))
    assert _kinds(graph).count("MEAN") == 3 and "TRANSPOSE" not in _kinds(graph)


def test_activations_and_softmax_head() -> None:
    graph = _capture_and_compare(Activations(), (3, 6, 6))
    kinds = _kinds(graph)
    for kind in ("HARD_SWISH", "LEAKY_RELU", "LOGISTIC", "TANH", "RELU6", "MUL", "SOFTMAX"):
        assert kind in kinds
    assert next(op for op in graph.ops if op.kind == "LEAKY_RELU").attrs["alpha"] == pytest.approx(0.1)


def test_conv1d_signal_model() -> None:
    graph = _capture_and_compare(Signal(), (2, 16))
    assert graph[graph.inputs[0]].shape == (1, 16, 2)
    assert graph.ops[0].kind == "RESHAPE" and graph[graph.ops[0].outputs[0]].shape == (1, 1, 16, 2)
    conv, depthwise = (op for op in graph.ops if "CONV" in op.kind)
    assert graph[conv.inputs[1]].shape == (8, 1, 5, 2) and conv.attrs["pad"] == (0, 0, 2, 2)
    assert depthwise.kind == "DEPTHWISE_CONV_2D" and depthwise.attrs["activation"] == "RELU6"
    assert "TRANSPOSE" not in _kinds(graph)
    assert graph[graph.outputs[1]].shape == (1, 1, 8)


def test_batchnorm_without_conv_is_a_depthwise_conv() -> None:
    graph = _capture_and_compare(BatchNormFirst(), (3, 5, 5), (5,))
    assert _kinds(graph).count("DEPTHWISE_CONV_2D") == 2
    bn = graph.ops[0]
    assert bn.kind == "DEPTHWISE_CONV_2D" and graph[bn.inputs[1]].shape == (1, 1, 1, 3)


def test_permute_and_views() -> None:
    class Shuffle(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n, c, h, w = x.shape
            shuffled = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
            return F.relu(shuffled), x.permute(0, 2, 3, 1).reshape(n, -1)

    graph = _capture_and_compare(Shuffle(), (4, 3, 3))
    assert graph[graph.outputs[1]].shape == (1, 36)
    # x.permute(0, 2, 3, 1) is the IR's own order: the flatten after it is a plain RESHAPE
    assert graph.ops[graph.producer(graph.outputs[1])].kind == "RESHAPE"


# ---------------------------------------------------------------- errors


def test_unsupported_module_is_named_with_its_path() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU())
    with pytest.raises(ModelError, match=r"aten\.gelu at 1 \(GELU\).*supported are"):
        from_torch(model, torch.randn(1, 3, 8, 8))


def test_unsupported_function_at_top_level() -> None:
    class Sorts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sort(self.features(x), dim=1).values

    with pytest.raises(ModelError, match=r"aten\.sort at the top level of Sorts"):
        from_torch(Sorts(), torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("module, message", [
    (nn.AvgPool2d(3, 1, 1), "count_include_pad=False"),
    (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), "reflect padding"),
    (nn.AdaptiveAvgPool2d(3), "divides"),
])
def test_unsupported_settings_are_refused(module: nn.Module, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        from_torch(nn.Sequential(module), torch.randn(1, 3, 8, 8))


def test_constant_operand_is_refused() -> None:
    class AddsOne(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    with pytest.raises(ModelError, match="second operand"):
        from_torch(AddsOne(), torch.randn(1, 3, 8, 8))


def test_float_graphs_still_fail_the_int8_contract() -> None:
    graph = from_torch(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 8, 8))
    with pytest.raises(ModelError, match="not int8-quantized"):
        validate(graph)


# ---------------------------------------------------------------- TorchGraph


def test_hooks_see_every_activation_and_weight() -> None:
    graph = _capture_and_compare(MobileNetLike(), (3, 16, 16))
    seen: dict[str, tuple[int, ...]] = {}
    weights: dict[str, int] = {}
    runner = TorchGraph(graph)

    def observe(name: str, value: torch.Tensor) -> torch.Tensor:
        seen[name] = tuple(value.shape)
        return value

    def weight_hook(name: str, w: torch.Tensor) -> torch.Tensor:
        weights[name] = w.shape[runner.channel_axis(name)]
        return w

    runner.observe, runner.weight_hook = observe, weight_hook
    with torch.no_grad():
        runner(torch.randn(4, 16, 16, 3))
    assert set(seen) == set(graph.activations())
    assert all(shape[0] == 4 and shape[1:] == graph[n].shape[1:] for n, shape in seen.items())
    for op in graph.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            assert weights[op.inputs[1]] == graph[op.outputs[0]].shape[-1]


def test_observe_can_replace_values() -> None:
    graph = from_torch(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), torch.randn(1, 3, 6, 6))
    zeros = TorchGraph(graph, observe=lambda name, v: torch.zeros_like(v))
    (out,) = zeros(torch.randn(2, 6, 6, 3))
    assert torch.count_nonzero(out) == 0


def test_to_graph_round_trip_after_training_step() -> None:
    graph = _capture_and_compare(FlattenLinear(), (3, 16, 16))
    runner = TorchGraph(graph)
    assert all(isinstance(p, nn.Parameter) for p in runner.parameters())
    weights = graph.ops[0].inputs[1]
    assert runner.param_name(weights) in runner.params
    x = torch.randn(4, 16, 16, 3)
    loss = runner(x)[0].square().sum()
    loss.backward()
    with torch.no_grad():
        for p in runner.parameters():
            p -= 0.01 * p.grad
    updated = runner.to_graph()
    assert _kinds(updated) == _kinds(graph) and updated.outputs == graph.outputs
    np.testing.assert_array_equal(updated[weights].data, runner.parameter(weights).detach().numpy())
    assert not np.array_equal(updated[weights].data, graph[weights].data)
    with torch.no_grad():
        torch.testing.assert_close(TorchGraph(updated)(x)[0], runner(x)[0])
    twin = copy.deepcopy(runner)  # QAT keeps copies (best checkpoint, EMA): parameters are not shared
    with torch.no_grad():
        twin.parameter(weights).add_(1.0)
    assert not np.array_equal(twin.to_graph()[weights].data, updated[weights].data)


def test_unsupported_graph_op_is_refused() -> None:
    graph = from_torch(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 6, 6))
    op = graph.ops[0]
    with pytest.raises(ModelError, match="cannot run"):
        TorchGraph(graph.with_ops([op.with_(kind="RESIZE_NEAREST_NEIGHBOR")]))


def test_zero_padding_folds_into_the_convolution() -> None:
    class TfSamePadding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, stride=2)
            self.signal = nn.Conv1d(4, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(F.pad(x, (0, 1, 0, 1)))
            return self.signal(F.pad(y.flatten(2), (2, 0)))

    graph = _capture_and_compare(TfSamePadding(), (3, 8, 8))
    assert "PAD" not in _kinds(graph)
    conv, signal = (op for op in graph.ops if op.kind == "CONV_2D")
    assert conv.attrs["pad"] == (0, 1, 0, 1) and signal.attrs["pad"] == (0, 0, 3, 1)


# ---------------------------------------------------------------- layouts


def _held(x: np.ndarray, layout: Layout) -> np.ndarray:
    return x.reshape(layout.view).transpose(layout.perm).reshape(layout.ir_shape)


def _layouts(shape: tuple[int, ...]) -> list[Layout]:
    """Every permutation of `shape` and of a coarser regrouping, as IR tensors of both natural shapes."""
    views = [shape, (1, shape[1] * shape[2], *shape[3:]), (1, *shape[1:-2], shape[-2] * shape[-1])]
    out = []
    for view in views:
        for rest in itertools.permutations(range(1, len(view))):
            perm = (0, *rest)
            permuted = tuple(view[p] for p in perm)
            out += [Layout(view, perm, permuted), Layout(view, perm, (1, int(np.prod(view))))]
    return out


@pytest.mark.parametrize("shape", [(1, 2, 3, 4), (1, 4, 1, 6), (1, 2, 2, 3)])
def test_layout_conversions_move_the_right_elements(shape: tuple[int, ...]) -> None:
    x = np.arange(int(np.prod(shape))).reshape(shape)
    layouts = _layouts(shape)
    for src, dst in itertools.product(layouts, layouts):
        held = _held(x, src)
        for kind, arg in conversion_steps(src, dst):
            assert arg[0] in (0, 1)  # the batch stays first
            held = held.reshape(arg) if kind == "reshape" else held.transpose(arg)
        np.testing.assert_array_equal(held, _held(x, dst))
        assert sum(kind == "transpose" for kind, _ in conversion_steps(src, dst)) <= 2
        if src.same_order(dst):
            assert all(kind == "reshape" for kind, _ in conversion_steps(src, dst))
