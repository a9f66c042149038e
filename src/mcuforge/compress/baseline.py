"""The sweep's baseline (compress.sweep, step 1): the float network every combination starts from, trained
here (`train_baseline`: tiny_cnn or mobilenet, nas.deploy.train_network, resumable) or given as a
torch.export program (`load_baseline`), with its float test accuracy and float32 size as the reference."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..errors import UsageError, shown
from ..ir import Graph

if TYPE_CHECKING:
    from .sweep import SweepPreset

ARCHS = ("tiny_cnn", "mobilenet")
PRESETS_WIDTH = 0.35  # mobilenet's default width multiplier


def baseline_network(arch: str, data, width: float, seed: int = 0):
    """A fresh float network for `data`: "tiny_cnn" (three 3x3 convolutions, 32-64-128 channels, the last two
    of stride 2, batch norm and ReLU, global average pooling, a linear classifier; 1-D for signals) or
    "mobilenet" (MobileNetV2 at `width`, nas.baseline)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)  # the initial weights
    if arch == "mobilenet":
        from ..nas.baseline import mobilenet_v2
        from ..nas.supernet import build_network

        return build_network(mobilenet_v2(width, int(data.x_train.shape[-1]), channels=int(data.x_train.shape[1]),
                                          classes=data.classes, signal=data.signal))
    if arch != "tiny_cnn":
        raise UsageError(f"--arch {arch!r}: choose one of {', '.join(ARCHS)}")
    conv, norm, pool = ((nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d) if data.signal
                        else (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d))
    layers: list[nn.Module] = []
    cin = int(data.x_train.shape[1])
    for cout, stride in ((32, 1), (64, 2), (128, 2)):
        layers += [conv(cin, cout, 3, stride, 1, bias=False), norm(cout), nn.ReLU()]
        cin = cout
    return nn.Sequential(*layers, pool(1), nn.Flatten(), nn.Linear(cin, data.classes))


def float_flash(arch: str, data, width: float = PRESETS_WIDTH) -> int:
    """float_bytes of `arch`'s network for `data`, before any training (a budget relative to it)."""
    import torch

    from ..frontends.torch_capture import from_torch

    return float_bytes(from_torch(baseline_network(arch, data, width).eval(),
                                  torch.from_numpy(data.x_test[:1].astype(np.float32))))


def float_bytes(graph: Graph) -> int:
    """Bytes of the float graph's constants as float32 (the float model's weights and biases)."""
    return 4 * sum(int(t.size) for t in graph.tensors.values() if t.data is not None)


def float_accuracy(graph: Graph, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    """Test accuracy of the float IR graph (the captured model, batch norm folded) on channels-first `x`."""
    import torch

    from ..nas.deploy import ir_layout
    from ..quant.torch_graph import TorchGraph

    net = TorchGraph(graph).eval()
    shape = graph[graph.inputs[0]].shape[1:]
    x = ir_layout(x)
    with torch.no_grad():
        predicted = np.concatenate([net(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32)
                                                         .reshape(-1, *shape)))[0].argmax(1).numpy()
                                    for i in range(0, len(x), batch)])
    return float(np.mean(predicted == y))


@dataclass(frozen=True)
class Baseline:
    graph: Graph  # float IR graph (batch norm folded)
    test_accuracy: float
    flash_bytes: int  # float32 weights and biases
    source: str


def train_baseline(data, out: Path, arch: str, preset: "SweepPreset", seed: int, resume: bool,
                   say: Callable[[str], None]) -> Baseline:
    """The baseline (see the module docstring, step 1), trained with a checkpoint in OUT/baseline.pt."""
    import torch

    from ..frontends.torch_capture import from_torch
    from ..nas.deploy import Recipe, train_network

    model = baseline_network(arch, data, preset.width, seed)
    x, y = training_split(data, preset, seed)
    recipe = Recipe(epochs=preset.epochs, batch_size=min(preset.batch_size, len(x)), lr=preset.lr, qat_epochs=0,
                    seed=seed)
    train_network(model, x, y, recipe, checkpoint=out / "baseline.pt", resume=resume,
                  on_epoch=lambda e, loss: say(f"baseline {arch}: epoch {e}/{preset.epochs}, loss {loss:.4f}"))
    model.eval()
    graph = from_torch(model, torch.from_numpy(data.x_test[:1].astype(np.float32)))
    return Baseline(graph, float_accuracy(graph, data.x_test, data.y_test), float_bytes(graph), arch)


def load_baseline(path: str, data) -> Baseline:
    """A given torch.export program (.pt2) as the baseline (not trained further)."""
    import torch

    from ..frontends.torch_capture import from_torch
    from ..pytorch.pipeline import exported_module, load_exported

    if Path(path).suffix.lower() != ".pt2":
        raise UsageError(f"--model {shown(path)}: give a torch.export program (.pt2)")
    module = exported_module(load_exported(path))
    graph = from_torch(module, torch.from_numpy(data.x_test[:1].astype(np.float32)))
    return Baseline(graph, float_accuracy(graph, data.x_test, data.y_test), float_bytes(graph), path)


def training_split(data, preset: "SweepPreset", seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = data.x_train, data.y_train
    if preset.max_train is not None and len(x) > preset.max_train:
        keep = np.sort(np.random.default_rng((seed, 5)).permutation(len(x))[:preset.max_train])
        x, y = x[keep], y[keep]
    return x, y


__all__ = ["ARCHS", "Baseline", "baseline_network", "float_accuracy", "float_bytes", "float_flash", "load_baseline",
           "train_baseline", "training_split"]
