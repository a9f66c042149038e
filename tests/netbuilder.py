"""Graphs for the tests: a tiny IR graph builder (weights of ones, one int8 or float32 NHWC input), random
graphs of it for hypothesis, and side-by-side merging of single-op graphs."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from hypothesis import strategies as st

from mcuforge.ir import Graph, Op, QuantParams, Tensor, clone_tensor
from mcuforge.models.builder import GraphBuilder

Q = QuantParams.per_tensor(0.05, 0)


class Net:
    """A tiny graph builder for these tests: appends ops, names tensors t0, t1, ..."""

    def __init__(self, shape: tuple[int, ...], dtype: str = "int8") -> None:
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self.input = self._act(shape, dtype)

    def _act(self, shape: tuple[int, ...], dtype: str = "int8") -> str:
        name = f"t{len(self.tensors)}"
        self.tensors[name] = Tensor(name, tuple(shape), dtype, None if dtype == "float32" else Q)
        return name

    def _const(self, shape: tuple[int, ...], dtype: str = "int8") -> str:
        name = f"w{len(self.tensors)}"
        self.tensors[name] = Tensor(name, shape, dtype, Q, np.ones(shape, dtype))
        return name

    def shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name].shape

    def _op(self, kind: str, inputs: list[str], shape: tuple[int, ...], dtype: str = "int8", **attrs) -> str:
        out = self._act(shape, dtype)
        self.ops.append(Op(kind, tuple(inputs), (out,), attrs))
        return out

    def conv(self, x: str, out_ch: int, k: int = 1, stride: int = 1) -> str:
        n, h, w, c = self.shape(x)
        pad = (k - 1) // 2
        oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        return self._op("CONV_2D", [x, self._const((out_ch, k, k, c)), self._const((out_ch,), "int32")],
                        (n, oh, ow, out_ch), stride=(stride, stride), dilation=(1, 1), pad=(pad,) * 4,
                        activation="RELU")

    def dw(self, x: str, k: int = 3, stride: int = 1) -> str:
        n, h, w, c = self.shape(x)
        pad = (k - 1) // 2
        oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        return self._op("DEPTHWISE_CONV_2D", [x, self._const((1, k, k, c)), self._const((c,), "int32")],
                        (n, oh, ow, c), stride=(stride, stride), dilation=(1, 1), pad=(pad,) * 4,
                        activation="RELU6", multiplier=1)

    def relu(self, x: str) -> str:
        return self._op("RELU", [x], self.shape(x))

    def add(self, a: str, b: str) -> str:
        return self._op("ADD", [a, b], self.shape(a), activation="NONE")

    def reshape(self, x: str, shape: tuple[int, ...] | None = None) -> str:
        """A RESHAPE to `shape` (default: H and W swapped)."""
        if shape is None:
            n, h, w, c = self.shape(x)
            shape = (n, w, h, c)
        return self._op("RESHAPE", [x], shape, self.tensors[x].dtype)

    def concat(self, xs: list[str]) -> str:
        n, h, w, _ = self.shape(xs[0])
        return self._op("CONCATENATION", xs, (n, h, w, sum(self.shape(x)[3] for x in xs)), axis=3,
                        activation="NONE")

    def quantize(self, x: str) -> str:
        return self._op("QUANTIZE", [x], self.shape(x), "int8")

    def dequantize(self, x: str) -> str:
        return self._op("DEQUANTIZE", [x], self.shape(x), "float32")

    def graph(self, *outputs: str) -> Graph:
        return Graph(self.tensors, tuple(self.ops), (self.input,), outputs)


@st.composite
def random_graphs(draw: st.DrawFn) -> Graph:
    """Chains with branches (residual adds, extra graph outputs), convs, depthwise, relu, reshape."""
    float_input = draw(st.booleans())
    h, w, c = draw(st.integers(2, 12)), draw(st.integers(2, 12)), draw(st.integers(1, 9))
    net = Net((1, h, w, c), "float32" if float_input else "int8")
    x = net.quantize(net.input) if float_input else net.input
    made = [x]
    for _ in range(draw(st.integers(1, 14))):
        # usually continue from the newest tensor, sometimes branch from an older one
        x = made[-1] if draw(st.integers(0, 3)) else draw(st.sampled_from(made))
        kind = draw(st.sampled_from(["conv", "conv", "dw", "dw", "relu", "add", "reshape"]))
        _, hh, ww, cc = net.shape(x)
        if kind == "conv":
            k = draw(st.sampled_from([1, 1, 3]))
            y = net.conv(x, draw(st.integers(1, 24)), k, draw(st.sampled_from([1, 2])) if k == 3 else 1)
        elif kind == "dw":
            y = net.dw(x, draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 2])))
        elif kind == "relu":
            y = net.relu(x)
        elif kind == "add":
            partners = [m for m in made if net.shape(m) == net.shape(x)]
            y = net.add(x, draw(st.sampled_from(partners)))
        else:
            y = net.reshape(x, (1, ww, hh, cc))
        made.append(y)
    extra = draw(st.lists(st.sampled_from(made), max_size=2, unique=True))
    outputs = tuple(dict.fromkeys([made[-1], *extra]))
    return net.graph(*outputs)


Case = tuple[str, Graph]  # (description, single-op graph)


def merge(cases: Sequence[tuple], name: str = "cases") -> Graph:
    """The cases' graphs (each case's second item: (description, graph, ...)) side by side: tensors prefixed
    c<i>_, inputs and outputs in case order."""
    tensors: dict[str, Tensor] = {}
    ops: list[Op] = []
    inputs: list[str] = []
    outputs: list[str] = []
    for i, case in enumerate(cases):
        g: Graph = case[1]
        def rn(n: str, p: str = f"c{i}_") -> str:
            return p + n if n else ""
        for t in g.tensors.values():
            tensors[rn(t.name)] = clone_tensor(t, name=rn(t.name))
        ops += [Op(op.kind, tuple(rn(n) for n in op.inputs), tuple(rn(n) for n in op.outputs), op.attrs,
                   rn(op.name)) for op in g.ops]
        inputs += [rn(n) for n in g.inputs]
        outputs += [rn(n) for n in g.outputs]
    return Graph(tensors, ops, inputs, outputs, name)


def block(b: GraphBuilder, x: str, expand: int, out: int, kernel: int = 3, stride: int = 1,
          activation: str = "NONE") -> str:
    """An inverted-residual block (MobileNetV2): 1x1 expand, depthwise, 1x1 project, + x when shapes allow."""
    y = b.conv2d(x, expand, 1, activation="RELU6")
    y = b.depthwise_conv2d(y, kernel, stride=stride, activation="RELU6")
    y = b.conv2d(y, out, 1, activation=activation)
    return b.add(x, y) if b.shape(y) == b.shape(x) else y


def mbv2(seed: int = 0, size: int = 20) -> Graph:
    b = GraphBuilder(seed)
    x = b.conv2d(b.input((1, size, size, 3), scale=1 / 64, zero_point=-3), 8, 3, stride=2, activation="RELU6")
    x = block(b, x, 48, 8)  # stride 1 with a residual
    x = block(b, x, 48, 12, kernel=5, stride=2)
    x = block(b, x, 72, 12, kernel=3, activation="RELU")  # project with an activation, residual
    x = b.mean(x, (1, 2), keep_dims=False)
    return b.build([b.fully_connected(x, 4)], "mbv2")


# ---------------------------------------------------------------- small torch models for the training tests


def small_cnn():
    """A 3-layer CNN for digits' 8x8 images (torch; NCHW): conv 3x3 -> 16, pointwise -> 32, average pool,
    fully connected -> 10."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SmallNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())
            self.point = nn.Sequential(nn.Conv2d(16, 32, 1), nn.ReLU())
            self.head = nn.Linear(32 * 4 * 4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.flatten(F.avg_pool2d(self.point(self.conv(x)), 2), 1))

    return SmallNet()


def train_steps(model, x, y, steps: int, lr: float, pruner=None) -> None:
    """`steps` Adam steps on random batches of 64 (generator seed 1), `pruner.step()` after each; then eval."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if pruner is not None:
            pruner.step()
    model.eval()
