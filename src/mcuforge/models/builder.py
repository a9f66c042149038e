"""Build canonical int8 IR graphs in code: single-op test graphs, random graphs and example networks.

Every method takes and returns tensor names. Weights are random (a seeded generator), int8 symmetric;
each output's scale and zero point come from an estimate of its real values' mean and spread (tracked
from the inputs, which are assumed to fill their int8 range uniformly), so outputs use much of the int8
range without saturating. Ops that TFLite runs without rescaling (pools, reshape, concat, max ...) keep
their input's quantization; concat/maximum/minimum requantize inputs that differ.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..ir import Graph, Op, QuantParams, Tensor

Padding = str | tuple[int, int, int, int]
_Z = np.linspace(-4.0, 4.0, 161)  # a standard normal on a grid: mean/spread after a nonlinearity
_W = np.exp(-_Z ** 2 / 2) / np.exp(-_Z ** 2 / 2).sum()
_FIXED_QUANT = {"LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0), "SOFTMAX": (1 / 256, -128),
                "LOG_SOFTMAX": (16 / 256, 127)}
_CLAMPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "NONE": lambda x: x, "RELU": lambda x: np.maximum(x, 0), "RELU6": lambda x: np.clip(x, 0, 6),
    "RELU_N1_TO_1": lambda x: np.clip(x, -1, 1)}


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _window(in_hw: Sequence[int], kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
            padding: Padding) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Output (h, w) and explicit pads of a windowed op, computed as TFLite does for SAME and VALID."""
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    if isinstance(padding, str) and padding.lower() == "same":
        out = [-(-i // s) for i, s in zip(in_hw, stride)]
        totals = [max((o - 1) * s + e - i, 0) for o, s, e, i in zip(out, stride, eff, in_hw)]
        pads = (totals[0] // 2, totals[0] - totals[0] // 2, totals[1] // 2, totals[1] - totals[1] // 2)
    elif isinstance(padding, str) and padding.lower() == "valid":
        pads = (0, 0, 0, 0)
    elif isinstance(padding, str):
        raise ValueError(f"padding must be 'same', 'valid' or (top, bottom, left, right), not {padding!r}")
    else:
        pads = tuple(int(p) for p in padding)
    t, b, l, r = pads
    out = [(in_hw[0] + t + b - eff[0]) // stride[0] + 1, (in_hw[1] + l + r - eff[1]) // stride[1] + 1]
    if min(out) < 1:
        raise ValueError(f"window {tuple(kernel)} does not fit input {tuple(in_hw)} with pads {pads}")
    return (out[0], out[1]), pads


class GraphBuilder:
    """Accumulates tensors and ops; `build` returns the Graph."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self.inputs: list[str] = []
        self._stats: dict[str, tuple[float, float]] = {}  # estimated (mean, std) of real values
        self._count: dict[str, int] = {}

    # ------------------------------------------------------------ bookkeeping

    def _name(self, base: str) -> str:
        while True:
            n = self._count.get(base, 0)
            self._count[base] = n + 1
            name = f"{base}_{n}"
            if name not in self.tensors:
                return name

    def _add(self, name: str, shape: Sequence[int], dtype: str = "int8", quant: QuantParams | None = None,
             data: np.ndarray | None = None) -> str:
        self.tensors[name] = Tensor(name, tuple(int(d) for d in shape), dtype, quant, data)
        return name

    def _op(self, kind: str, inputs: Sequence[str], shape: Sequence[int], quant: QuantParams | None,
            stats: tuple[float, float] | None = None, dtype: str = "int8", **attrs: object) -> str:
        out = self._add(self._name(kind.lower()), shape, dtype, quant)
        self.ops.append(Op(kind, tuple(inputs), (out,), attrs))
        if stats is not None:
            self._stats[out] = stats
        return out

    def shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name].shape

    def quant(self, name: str) -> QuantParams:
        q = self.tensors[name].quant
        assert q is not None, f"{name} is not quantized"
        return q

    def stats(self, name: str) -> tuple[float, float]:
        if name not in self._stats:  # fill the int8 range uniformly
            q = self.quant(name)
            self._stats[name] = (q.s * (-0.5 - q.zp), q.s * 73.9)
        return self._stats[name]

    # ------------------------------------------------------------ quantization choices

    @staticmethod
    def _after(f: Callable[[np.ndarray], np.ndarray], mean: float, std: float) -> tuple[float, float, float, float]:
        """(lo, hi, mean, std) of f(x) for x ~ N(mean, std): lo/hi over +-3 sigma."""
        x = mean + std * _Z
        y = f(x)
        core = y[np.abs(_Z) <= 3.0]
        m = float((y * _W).sum())
        return float(core.min()), float(core.max()), m, float(np.sqrt(max(((y - m) ** 2 * _W).sum(), 0.0)))

    def _quant_for(self, mean: float, std: float, f: Callable[[np.ndarray], np.ndarray] = _CLAMPS["NONE"]
                   ) -> tuple[QuantParams, tuple[float, float]]:
        """Per-tensor int8 parameters covering f(N(mean, std)) over +-3 sigma, and the output stats."""
        lo, hi, m, s = self._after(f, mean, max(std, 1e-6))
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = float(np.float32(max(hi - lo, 1e-6) / 255.0))
        zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
        return QuantParams.per_tensor(scale, zp), (m, max(s, 1e-6))

    def _requantize_to(self, x: str, q: QuantParams) -> str:
        """`x`, requantized to `q` if its parameters differ."""
        qx = self.quant(x)
        if qx.s == q.s and qx.zp == q.zp:
            return x
        return self.quantize(x, q.s, q.zp)

    # ------------------------------------------------------------ inputs and weights

    def input(self, shape: Sequence[int], scale: float = 0.02, zero_point: int = 0,
              float_io: bool = False) -> str:
        """A graph input; with `float_io` a float32 input followed by QUANTIZE (the int8 name is returned)."""
        name = self._name("input")
        q = QuantParams.per_tensor(float(np.float32(scale)), zero_point)
        if not float_io:
            self.inputs.append(self._add(name, shape, "int8", q))
            return name
        self.inputs.append(self._add(name, shape, "float32"))
        out = self._op("QUANTIZE", [name], shape, q)
        return out

    def _weights(self, name: str, shape: Sequence[int], scales: np.ndarray, axis: int | None) -> str:
        data = self.rng.integers(-127, 128, size=tuple(shape)).astype(np.int8)
        q = QuantParams(scales.astype(np.float32), np.zeros(scales.size, np.int64), axis)
        return self._add(name, shape, "int8", q, data)

    def _bias(self, name: str, scales: np.ndarray, spread: np.ndarray) -> str:
        """int32 bias, one per channel (len(spread)), real values ~ N(0, spread / 4)."""
        real = self.rng.normal(0.0, 1.0, spread.size) * 0.25 * spread
        data = np.clip(np.round(real / scales), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
        q = QuantParams(scales.astype(np.float32), np.zeros(scales.size, np.int64), 0 if scales.size > 1 else None)
        return self._add(name, (spread.size,), "int32", q, data)

    def _accumulator_stats(self, x: str, w_real: np.ndarray) -> tuple[float, float, np.ndarray]:
        """Mean and std of the accumulator over all channels, and its std per channel (w_real: channels first)."""
        mean_x, std_x = self.stats(x)
        fan_axes = tuple(range(1, w_real.ndim))
        mean_c = w_real.sum(axis=fan_axes) * mean_x
        var_c = (w_real ** 2).sum(axis=fan_axes) * std_x ** 2
        mean = float(mean_c.mean())
        var = float((var_c + mean_c ** 2).mean() - mean ** 2)
        return mean, float(np.sqrt(max(var, 1e-12))), np.sqrt(var_c + 1e-12)

    def _accumulate(self, kind: str, x: str, w_shape: Sequence[int], channel_axis: int, per_channel: bool,
                    out_shape: Sequence[int], activation: str, **attrs: object) -> str:
        """Shared by conv, depthwise and fully connected: weights, bias, output quantization, the op."""
        out_name = self._name(kind.lower())
        channels = w_shape[channel_axis]
        fan_in = int(np.prod(w_shape)) // channels
        n_scales = channels if per_channel else 1
        # He-style: real weights of std ~ sqrt(2 / fan_in) keep activations' spread from layer to layer
        w_scales = (self.rng.uniform(0.7, 1.3, n_scales) * np.sqrt(2.0 / fan_in) / 73.3).astype(np.float32)
        weights = self._weights(f"{out_name}/weights", w_shape, w_scales, channel_axis if per_channel else None)
        w = self.tensors[weights].data.astype(np.float64)
        w_real = np.moveaxis(w, channel_axis, 0) * np.broadcast_to(w_scales, (channels,))[
            (slice(None),) + (None,) * (len(w_shape) - 1)]
        mean, std, spread = self._accumulator_stats(x, w_real)
        bias_scales = (np.float32(self.quant(x).s) * w_scales).astype(np.float32)
        bias = self._bias(f"{out_name}/bias", bias_scales if per_channel else bias_scales[:1], spread)
        q, stats = self._quant_for(mean, float(np.sqrt(std ** 2 + (0.25 * spread.mean()) ** 2)),
                                   _CLAMPS[activation])
        self._add(out_name, out_shape, "int8", q)
        self._stats[out_name] = stats
        self.ops.append(Op(kind, (x, weights, bias), (out_name,), dict(attrs, activation=activation)))
        return out_name

    # ------------------------------------------------------------ layers with weights

    def conv2d(self, x: str, out_channels: int, kernel: int | Sequence[int] = (3, 3),
               stride: int | Sequence[int] = (1, 1), padding: Padding = "same",
               dilation: int | Sequence[int] = (1, 1), activation: str = "NONE") -> str:
        n, h, w, c = self.shape(x)
        k, s, d = _pair(kernel), _pair(stride), _pair(dilation)
        (oh, ow), pads = _window((h, w), k, s, d, padding)
        return self._accumulate("CONV_2D", x, (out_channels, *k, c), 0, True, (n, oh, ow, out_channels),
                                activation, stride=s, dilation=d, pad=pads)

    def depthwise_conv2d(self, x: str, kernel: int | Sequence[int] = (3, 3), stride: int | Sequence[int] = (1, 1),
                         padding: Padding = "same", dilation: int | Sequence[int] = (1, 1), multiplier: int = 1,
                         activation: str = "NONE") -> str:
        n, h, w, c = self.shape(x)
        k, s, d = _pair(kernel), _pair(stride), _pair(dilation)
        (oh, ow), pads = _window((h, w), k, s, d, padding)
        return self._accumulate("DEPTHWISE_CONV_2D", x, (1, *k, c * multiplier), 3, True,
                                (n, oh, ow, c * multiplier), activation, stride=s, dilation=d, pad=pads,
                                multiplier=int(multiplier))

    def fully_connected(self, x: str, units: int, activation: str = "NONE", keep_num_dims: bool = False) -> str:
        shape = self.shape(x)
        depth = shape[-1]
        out_shape = (*shape[:-1], units) if keep_num_dims else (int(np.prod(shape)) // depth, units)
        return self._accumulate("FULLY_CONNECTED", x, (units, depth), 0, False, out_shape, activation,
                                keep_num_dims=bool(keep_num_dims))

    # ------------------------------------------------------------ elementwise binary

    def _binary(self, kind: str, a: str, b: str, activation: str | None) -> str:
        shape = np.broadcast_shapes(self.shape(a), self.shape(b))
        (ma, sa), (mb, sb) = self.stats(a), self.stats(b)
        if kind in ("MAXIMUM", "MINIMUM"):
            b = self._requantize_to(b, self.quant(a))
            f = np.maximum if kind == "MAXIMUM" else np.minimum
            stats = (float(f(ma, mb)), max(sa, sb))
            return self._op(kind, [a, b], shape, self.quant(a), stats)
        if kind == "MUL":
            mean = ma * mb
            var = (sa ** 2 + ma ** 2) * (sb ** 2 + mb ** 2) - mean ** 2
        else:
            mean = ma + mb if kind == "ADD" else ma - mb
            var = sa ** 2 + sb ** 2
        q, stats = self._quant_for(mean, float(np.sqrt(max(var, 1e-12))), _CLAMPS[activation or "NONE"])
        return self._op(kind, [a, b], shape, q, stats, activation=activation or "NONE")

    def add(self, a: str, b: str, activation: str = "NONE") -> str:
        return self._binary("ADD", a, b, activation)

    def sub(self, a: str, b: str, activation: str = "NONE") -> str:
        return self._binary("SUB", a, b, activation)

    def mul(self, a: str, b: str, activation: str = "NONE") -> str:
        return self._binary("MUL", a, b, activation)

    def maximum(self, a: str, b: str) -> str:
        return self._binary("MAXIMUM", a, b, None)

    def minimum(self, a: str, b: str) -> str:
        return self._binary("MINIMUM", a, b, None)

    # ------------------------------------------------------------ pooling and reductions

    def _pool(self, kind: str, x: str, filter: int | Sequence[int], stride: int | Sequence[int] | None,
              padding: Padding, activation: str) -> str:
        n, h, w, c = self.shape(x)
        f = _pair(filter)
        s = f if stride is None else _pair(stride)
        (oh, ow), pads = _window((h, w), f, s, (1, 1), padding)
        return self._op(kind, [x], (n, oh, ow, c), self.quant(x), self.stats(x), filter=f, stride=s, pad=pads,
                        activation=activation)

    def avg_pool(self, x: str, filter: int | Sequence[int] = (2, 2), stride: int | Sequence[int] | None = None,
                 padding: Padding = "valid", activation: str = "NONE") -> str:
        return self._pool("AVERAGE_POOL_2D", x, filter, stride, padding, activation)

    def max_pool(self, x: str, filter: int | Sequence[int] = (2, 2), stride: int | Sequence[int] | None = None,
                 padding: Padding = "valid", activation: str = "NONE") -> str:
        return self._pool("MAX_POOL_2D", x, filter, stride, padding, activation)

    def _reduced_shape(self, x: str, axes: Sequence[int], keep_dims: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
        shape = self.shape(x)
        axes = tuple(sorted({a % len(shape) for a in axes}))
        out = [1 if i in axes else d for i, d in enumerate(shape) if keep_dims or i not in axes]
        return axes, tuple(out)

    def mean(self, x: str, axes: Sequence[int] = (1, 2), keep_dims: bool = True) -> str:
        axes, out = self._reduced_shape(x, axes, keep_dims)
        count = int(np.prod([self.shape(x)[a] for a in axes]))
        m, s = self.stats(x)
        q, stats = self._quant_for(m, 2.0 * s / np.sqrt(count))
        return self._op("MEAN", [x], out, q, stats, axes=axes, keep_dims=bool(keep_dims))

    def reduce_max(self, x: str, axes: Sequence[int] = (1, 2), keep_dims: bool = True) -> str:
        axes, out = self._reduced_shape(x, axes, keep_dims)
        return self._op("REDUCE_MAX", [x], out, self.quant(x), self.stats(x), axes=axes, keep_dims=bool(keep_dims))

    # ------------------------------------------------------------ data movement

    def pad(self, x: str, pads: Sequence[Sequence[int]], value: int | None = None) -> str:
        pads = tuple((int(a), int(b)) for a, b in pads)
        shape = tuple(d + a + b for d, (a, b) in zip(self.shape(x), pads))
        q = self.quant(x)
        return self._op("PAD", [x], shape, q, self.stats(x), pads=pads, value=q.zp if value is None else int(value))

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        shape = list(shape)
        if -1 in shape:
            known = int(np.prod([d for d in shape if d != -1]))
            shape[shape.index(-1)] = int(np.prod(self.shape(x))) // known
        if int(np.prod(shape)) != int(np.prod(self.shape(x))):
            raise ValueError(f"cannot reshape {self.shape(x)} to {tuple(shape)}")
        return self._op("RESHAPE", [x], shape, self.quant(x), self.stats(x))

    def transpose(self, x: str, perm: Sequence[int]) -> str:
        shape = tuple(self.shape(x)[p] for p in perm)
        return self._op("TRANSPOSE", [x], shape, self.quant(x), self.stats(x), perm=tuple(int(p) for p in perm))

    def concat(self, xs: Sequence[str], axis: int = -1, activation: str = "NONE") -> str:
        rank = len(self.shape(xs[0]))
        axis %= rank
        shape = list(self.shape(xs[0]))
        shape[axis] = sum(self.shape(x)[axis] for x in xs)
        lo = min(self.quant(x).s * (-128 - self.quant(x).zp) for x in xs)
        hi = max(self.quant(x).s * (127 - self.quant(x).zp) for x in xs)
        first = self.quant(xs[0])
        if all(self.quant(x).s == first.s and self.quant(x).zp == first.zp for x in xs):
            q = first
        else:
            scale = float(np.float32((hi - lo) / 255.0))
            q = QuantParams.per_tensor(scale, int(np.clip(np.round(-128 - lo / scale), -128, 127)))
        xs = [self._requantize_to(x, q) for x in xs]
        stats = (float(np.mean([self.stats(x)[0] for x in xs])), float(max(self.stats(x)[1] for x in xs)))
        return self._op("CONCATENATION", xs, shape, q, stats, axis=axis, activation=activation)

    def strided_slice(self, x: str, slices: Sequence[Sequence[int | None]], shrink_axes: Sequence[int] = ()) -> str:
        """numpy-style (start, stop, step) per dimension; `shrink_axes` (each of length 1) are dropped."""
        shape = self.shape(x)
        slices = tuple((s[0], s[1], 1 if len(s) < 3 or s[2] is None else s[2]) for s in slices)
        slices += tuple((0, None, 1) for _ in range(len(shape) - len(slices)))
        block = [len(range(*slice(*s).indices(d))) for s, d in zip(slices, shape)]
        if any(block[a] != 1 for a in shrink_axes):
            raise ValueError(f"shrunk axes must have length 1, slices give {tuple(block)}")
        out = [d for i, d in enumerate(block) if i not in set(shrink_axes)]
        return self._op("STRIDED_SLICE", [x], out, self.quant(x), self.stats(x), slices=slices)

    def resize_nearest(self, x: str, size: Sequence[int], align_corners: bool = False,
                       half_pixel_centers: bool = False) -> str:
        n, _, _, c = self.shape(x)
        return self._op("RESIZE_NEAREST_NEIGHBOR", [x], (n, int(size[0]), int(size[1]), c), self.quant(x),
                        self.stats(x), align_corners=bool(align_corners), half_pixel_centers=bool(half_pixel_centers))

    # ------------------------------------------------------------ activations

    def _fixed(self, kind: str, x: str, **attrs: object) -> str:
        scale, zp = _FIXED_QUANT[kind]
        q = QuantParams.per_tensor(scale, zp)
        return self._op(kind, [x], self.shape(x), q, (scale * (-0.5 - zp), scale * 73.9), **attrs)

    def softmax(self, x: str, beta: float = 1.0) -> str:
        return self._fixed("SOFTMAX", x, beta=float(np.float32(beta)))

    def log_softmax(self, x: str) -> str:
        return self._fixed("LOG_SOFTMAX", x)

    def logistic(self, x: str) -> str:
        return self._fixed("LOGISTIC", x)

    def tanh(self, x: str) -> str:
        return self._fixed("TANH", x)

    def _unary(self, kind: str, x: str, f: Callable[[np.ndarray], np.ndarray], **attrs: object) -> str:
        q, stats = self._quant_for(*self.stats(x), f)
        return self._op(kind, [x], self.shape(x), q, stats, **attrs)

    def relu(self, x: str) -> str:
        return self._unary("RELU", x, _CLAMPS["RELU"])

    def relu6(self, x: str) -> str:
        """RELU6 keeps its input's parameters (TFLM's int8 RELU6 clamps raw values and ignores the output's)."""
        _, stats = self._quant_for(*self.stats(x), _CLAMPS["RELU6"])
        return self._op("RELU6", [x], self.shape(x), self.quant(x), stats)

    def uint8_input(self, shape: Sequence[int], scale: float, zero_point: int, int8_scale: float,
                    int8_zero_point: int) -> str:
        """A uint8 graph input (as the STM32 model zoo exports them) and its QUANTIZE to int8; the int8
        name is returned."""
        name = self._name("input")
        self.inputs.append(self._add(name, shape, "uint8", QuantParams.per_tensor(float(np.float32(scale)),
                                                                                  int(zero_point))))
        q = QuantParams.per_tensor(float(np.float32(int8_scale)), int(int8_zero_point))
        return self._op("QUANTIZE", [name], shape, q)

    def uint8_output(self, x: str, scale: float, zero_point: int) -> str:
        """QUANTIZE int8 -> uint8, for a uint8 graph output."""
        q = QuantParams.per_tensor(float(np.float32(scale)), int(zero_point))
        return self._op("QUANTIZE", [x], self.shape(x), q, dtype="uint8")

    def hard_swish(self, x: str) -> str:
        return self._unary("HARD_SWISH", x, lambda v: v * np.clip(v + 3, 0, 6) / 6)

    def leaky_relu(self, x: str, alpha: float = 0.2) -> str:
        alpha = float(np.float32(alpha))
        return self._unary("LEAKY_RELU", x, lambda v: np.where(v >= 0, v, alpha * v), alpha=alpha)

    def quantize(self, x: str, scale: float, zero_point: int) -> str:
        """int8 -> int8 requantization to (scale, zero_point)."""
        q = QuantParams.per_tensor(float(np.float32(scale)), int(zero_point))
        return self._op("QUANTIZE", [x], self.shape(x), q, self.stats(x))

    def dequantize(self, x: str) -> str:
        return self._op("DEQUANTIZE", [x], self.shape(x), None, dtype="float32")

    # ------------------------------------------------------------ result

    def build(self, outputs: Sequence[str], name: str = "model") -> Graph:
        graph = Graph(self.tensors, self.ops, self.inputs, tuple(outputs), name)
        return graph.with_ops(graph.ops)
