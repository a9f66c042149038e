"""Structured channel pruning (compress.channels, compress.channel_selection): the groups that prune
together, the exactness of removing dead channels (residual adds, depthwise, concatenation, flatten -> FC,
1-D convolutions), the importance order, the complexity modes against their targets, a pruned model that
quantizes, trains and compiles smaller, and the benchmark's quick run."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from mcuforge.compress.channel_selection import (  # noqa: E402
    channel_importance,
    peak_sram,
    prune_channels,
    taylor_gradients,
)
from mcuforge.compress.channels import channel_groups, param_count  # noqa: E402
from mcuforge.engine.opinfo import total_macs  # noqa: E402
from mcuforge.errors import UsageError  # noqa: E402
from mcuforge.frontends.torch_capture import from_torch  # noqa: E402
from mcuforge.ir import Graph, Op, Tensor  # noqa: E402
from mcuforge.pipeline import compile_model  # noqa: E402
from mcuforge.quant.ptq import calibrate  # noqa: E402
from mcuforge.quant.qat import QATModel  # noqa: E402
from mcuforge.quant.quantize_graph import quantize_with_ranges  # noqa: E402
from mcuforge.quant.torch_graph import TorchGraph  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def bn(c: int) -> nn.BatchNorm2d:
    """A batch norm with statistics of its own, so that folding it changes the convolution's weights."""
    norm = nn.BatchNorm2d(c)
    with torch.no_grad():
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.2, 0.2)
    return norm


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), bn(8), nn.ReLU(), nn.Conv2d(8, 12, 3, stride=2),
                                  nn.ReLU(), nn.Conv2d(12, 8, 1), nn.ReLU6())
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.body(x).mean((2, 3)))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(x + self.b(F.relu(self.a(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Separable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), bn(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1, groups=8), bn(8), nn.ReLU(),
                                  nn.Conv2d(8, 10, 1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(10, 4)

    def forward(self, x):
        return self.fc(self.body(x).mean((2, 3)))


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.left = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 4, 1)
        self.right = nn.Conv2d(6, 6, 3, padding=1)
        self.mix, self.fc = nn.Conv2d(10, 8, 1), nn.Linear(8, 3)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = torch.cat([F.relu(self.left(x)), F.relu(self.right(x))], 1)
        return self.fc(F.relu(self.mix(x)).mean((2, 3)))


class Flatten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.hidden, self.fc = nn.Linear(6 * 4 * 4, 16), nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(F.relu(self.hidden(F.relu(self.conv(x)).flatten(1))))


class Signal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.fc = nn.Conv1d(2, 8, 5, padding=2), nn.Conv1d(8, 6, 3), nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(F.relu(self.b(F.relu(self.a(x)))).mean(-1))


class SqueezeExcite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.squeeze, self.excite = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 4), nn.Linear(4, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = F.relu(self.conv(x))
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(x.mean((2, 3))))))
        return self.fc((x * gate.view(-1, 8, 1, 1)).mean((2, 3)))


def capture(module: nn.Module, shape: tuple[int, ...]) -> Graph:
    torch.manual_seed(0)
    return from_torch(module.eval(), torch.randn(1, *shape))


def torch_run(graph: Graph, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return TorchGraph(graph)(torch.from_numpy(x))[0].numpy()


def ir_input(graph: Graph, count: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, *graph[graph.inputs[0]].shape[1:])).astype(np.float32)


def kill_channels(graph: Graph, amount: float, seed: int = 1) -> Graph:
    """A copy whose random `amount` of every prunable group's channels are dead: zero weights and bias in every
    layer that writes them (uniform pruning's count, so l1 pruning removes exactly these)."""
    rng = np.random.default_rng(seed)
    tensors = dict(graph.tensors)
    for group in channel_groups(graph):
        if not group.prunable:
            continue
        dead = rng.choice(group.channels, min(int(round(amount * group.channels)), group.channels - 1), replace=False)
        for op in graph.ops:
            writes = op.name in group.layers or (op.kind == "DEPTHWISE_CONV_2D" and op.outputs[0] in group.tensors)
            if writes:
                for position, axis in ((1, 3 if op.kind == "DEPTHWISE_CONV_2D" else 0), (2, 0)):
                    data = np.array(tensors[op.inputs[position]].data)
                    np.moveaxis(data, axis, 0)[dead] = 0
                    tensors[op.inputs[position]] = replace(tensors[op.inputs[position]], data=data)
    return replace(graph, tensors=tensors)


NETS = {"chain": (Chain, (3, 8, 8)), "residual": (Residual, (3, 8, 8)), "separable": (Separable, (3, 8, 8)),
        "concat": (Concat, (3, 6, 6)), "flatten": (Flatten, (3, 8, 8)), "conv1d": (Signal, (2, 20)),
        "squeeze-excite": (SqueezeExcite, (3, 6, 6))}


@pytest.mark.parametrize("net", NETS)
def test_removing_dead_channels_changes_no_output(net: str) -> None:
    module, shape = NETS[net]
    original = capture(module(), shape)
    graph = kill_channels(original, 0.5)
    pruned, report = prune_channels(graph, 0.5)
    x = ir_input(graph)
    np.testing.assert_allclose(torch_run(pruned, x), torch_run(graph, x), rtol=1e-5, atol=1e-5)
    live, _ = prune_channels(original, 0.5)  # the same pruning of live channels does change the outputs
    assert np.abs(torch_run(live, x) - torch_run(original, x)).max() > 1e-3
    assert report.params[1] < report.params[0] and report.macs[1] < report.macs[0]
    assert param_count(pruned) == report.params[1] and total_macs(pruned) == report.macs[1]
    assert pruned[pruned.outputs[0]].shape == graph[graph.outputs[0]].shape  # the classes stay


def test_groups_follow_the_dependencies() -> None:
    residual = {g.layers: g for g in channel_groups(capture(Residual(), (3, 8, 8)))}
    assert residual[("stem", "b")].prunable and residual[("a",)].prunable  # the add ties stem and b
    assert not residual[("fc",)].prunable and "graph output" in residual[("fc",)].reason
    concat = {g.layers: g for g in channel_groups(capture(Concat(), (3, 6, 6)))}
    assert "cat" in concat[("left",)].tensors and "cat" in concat[("right",)].tensors
    flat = {g.layers: g for g in channel_groups(capture(Flatten(), (3, 8, 8)))}
    assert flat[("conv",)].prunable and flat[("hidden",)].prunable and not flat[("fc",)].prunable

    class Inner(nn.Module):  # a softmax over a hidden layer's channels, and a second output
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.a(x)
            return self.c(torch.softmax(self.b(y), 1)), y

    inner = {g.layers: g for g in channel_groups(capture(Inner(), (3, 4, 4)))}
    assert not inner[("a",)].prunable and not inner[("b",)].prunable and "SOFTMAX" in inner[("b",)].reason
    grouped = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 3, groups=2), nn.Flatten(), nn.Linear(32, 2))
    split = {g.layers: g for g in channel_groups(capture(grouped, (3, 4, 4)))}
    assert not split[("0",)].prunable and "grouped" in split[("0",)].reason


def test_constant_operands_are_sliced() -> None:
    graph = kill_channels(capture(Chain(), (3, 8, 8)), 0.5)
    first = graph.ops[0]
    live = np.abs(graph[first.inputs[1]].data).sum(axis=(1, 2, 3)) > 0
    shift = np.where(live, np.linspace(0.1, 0.8, 8), 0).astype(np.float32)  # dead channels stay zero
    tensors = {**graph.tensors, "shift": Tensor("shift", (8,), "float32", data=shift),
               "shifted": replace(graph[first.outputs[0]], name="shifted")}
    rest = [op.with_(inputs=tuple("shifted" if n == first.outputs[0] else n for n in op.inputs))
            for op in graph.ops[1:]]
    add = Op("ADD", (first.outputs[0], "shift"), ("shifted",), {"activation": "NONE"})
    graph = graph.with_ops([first, add, *rest], tensors)
    pruned, _ = prune_channels(graph, 0.5)
    np.testing.assert_array_equal(pruned["shift"].data, shift[live])
    x = ir_input(graph)
    np.testing.assert_allclose(torch_run(pruned, x), torch_run(graph, x), rtol=1e-5, atol=1e-5)


def test_l1_keeps_the_largest_channels() -> None:
    graph = capture(Chain(), (3, 8, 8))
    name = graph.ops[0].inputs[1]
    scale = np.array([5, 1, 7, 2, 8, 3, 6, 4], np.float32)  # channel norms in this order
    w = np.abs(graph[name].data) + 0.1
    w = w / np.abs(w).sum(axis=(1, 2, 3), keepdims=True) * scale[:, None, None, None]
    graph = replace(graph, tensors={**graph.tensors, name: replace(graph[name], data=w)})
    scores = channel_importance(graph, "l1")[0]
    np.testing.assert_allclose(scores, scale, rtol=1e-5)
    pruned, _ = prune_channels(graph, 0.5, importance="l1")
    np.testing.assert_array_equal(pruned[name].data, w[[0, 2, 4, 6]])  # 5, 7, 8, 6 kept, in order
    l2 = channel_importance(graph, "l2")[0]
    assert np.allclose(l2, np.sqrt((w.astype(np.float64) ** 2).sum(axis=(1, 2, 3))))


def test_taylor_importance_from_gradients() -> None:
    graph = capture(Residual(), (3, 8, 8))
    rng = np.random.default_rng(0)
    x, y = ir_input(graph, 32), rng.integers(0, 4, 32)
    grads = taylor_gradients(graph, x, y, batches=2, batch_size=16)
    assert set(grads) == {op.inputs[1] for op in graph.ops if op.kind in ("CONV_2D", "FULLY_CONNECTED")}
    scores = channel_importance(graph, "taylor", grads)
    assert all(s.shape == (8,) and np.all(s >= 0) and np.any(s > 0) for s in scores.values())
    pruned, report = prune_channels(graph, 0.5, importance="taylor", gradients=grads)
    assert [g.after for g in report.groups] == [4, 4]
    assert torch_run(pruned, x[:2]).shape == (2, 4)


class Wide(nn.Module):
    """Peak SRAM set by the first, wide activations; most parameters in the fully connected layer at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.c3 = nn.Conv2d(16, 16, 3)
        self.hidden, self.fc = nn.Linear(16 * 6 * 6, 48), nn.Linear(48, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c2(F.relu(self.c1(x)))), 4)
        return self.fc(F.relu(self.hidden(F.relu(self.c3(x)).flatten(1))))


@pytest.mark.parametrize("mode", ["params", "flops", "memory"])
def test_modes_reach_their_target(mode: str) -> None:
    graph = capture(Wide(), (3, 32, 32))
    measure = {"params": param_count, "flops": total_macs, "memory": peak_sram}[mode]
    pruned, report = prune_channels(graph, 0.4, mode=mode)
    reached = 1 - measure(pruned) / measure(graph)
    assert reached == pytest.approx(report.reached) and 0.4 <= reached < 0.5, report.lines()


def test_memory_mode_cuts_the_peak_that_params_mode_misses() -> None:
    graph = capture(Wide(), (3, 32, 32))
    by_memory, _ = prune_channels(graph, 0.5, mode="memory")
    by_params, _ = prune_channels(graph, 0.5, mode="params")
    peak = peak_sram(graph)
    assert peak_sram(by_memory) <= 0.5 * peak < 0.9 * peak < peak_sram(by_params)
    assert param_count(by_params) < param_count(by_memory)


def test_unreachable_target_gets_as_far_as_it_can() -> None:
    graph = capture(Flatten(), (3, 8, 8))  # the 8x8x3 input and the 5 classes cannot shrink
    pruned, report = prune_channels(graph, 0.95, mode="memory")
    assert 0 < report.reached < 0.95 and report.peak_sram[1] == peak_sram(pruned)
    assert all(g.after >= 1 for g in report.groups)


def test_pruned_model_trains_quantizes_and_compiles_smaller() -> None:
    graph = capture(Separable(), (3, 8, 8))
    pruned, report = prune_channels(graph, 0.5, mode="flops")
    x = ir_input(graph, 16)
    qat = QATModel(pruned)
    loss = F.cross_entropy(qat(torch.from_numpy(x)), torch.zeros(16, dtype=torch.long))
    loss.backward()
    assert all(p.grad is not None for p in qat.weight_parameters().values())
    compiled = {}
    for tag, g in (("full", graph), ("pruned", pruned)):
        compiled[tag] = compile_model(quantize_with_ranges(g, calibrate(g, x)), name=f"sep_{tag}").report
    assert compiled["pruned"].macs < compiled["full"].macs
    assert compiled["pruned"].sram_bytes < compiled["full"].sram_bytes
    assert compiled["pruned"].macs == report.macs[1]


def test_refusals() -> None:
    graph = capture(Chain(), (3, 8, 8))
    for amount in (-0.1, 1.0, float("nan"), "half", True):
        with pytest.raises(UsageError, match="amount"):
            prune_channels(graph, amount)
    with pytest.raises(UsageError, match="mode"):
        prune_channels(graph, 0.5, mode="energy")
    with pytest.raises(UsageError, match="importance"):
        prune_channels(graph, 0.5, importance="random")
    with pytest.raises(UsageError, match="gradient"):
        prune_channels(graph, 0.5, importance="taylor")
    int8 = quantize_with_ranges(graph, {n: (-1.0, 1.0) for n in graph.activations()})
    with pytest.raises(UsageError, match="float graphs"):
        prune_channels(int8, 0.5)

    class Last(nn.Module):  # one convolution: its channels are the output
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(UsageError, match="no channel group"):
        prune_channels(capture(Last(), (3, 4, 4)), 0.5)
    unchanged, report = prune_channels(graph, 0.0)
    assert report.reached == 0 and param_count(unchanged) == param_count(graph)


def test_benchmark_quick_run_writes_its_table(tmp_path, monkeypatch) -> None:
    """bench/structured_pruning.py --quick end to end (train, prune, QAT, compile, run the C) on a small
    synthetic image set, so that the script cannot rot unnoticed."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "structured_pruning.py"
    spec = importlib.util.spec_from_file_location("structured_pruning_bench", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(0)
    data = tmp_path / "images.npz"
    np.savez(data, x_train=rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), y_train=np.arange(300) % 10,
             x_test=rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), y_test=np.arange(40) % 10)
    out = tmp_path / "pruning.md"
    assert bench.main(["--quick", "--data", str(data), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| 0.00 | unpruned | 32-64-128 |" in text
    for mode in ("params", "flops", "memory", "uniform"):
        assert f"| 0.50 | {mode} |" in text
    assert "## What the numbers say" in text and "memory mode's peak" in text
