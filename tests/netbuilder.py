"""A tiny IR graph builder for the planner tests: weights of ones, one int8 (or float32) NHWC input."""
from __future__ import annotations

import numpy as np

from mcuforge.ir import Graph, Op, QuantParams, Tensor

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


