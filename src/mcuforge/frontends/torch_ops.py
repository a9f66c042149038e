"""ATen operators -> canonical float IR operators (see mcuforge.ir.ops).

One converter per family of ATen ops (`CONVERTERS`, keyed by the op's name without namespace or
overload). A converter reads its operands through the `Capture`, emits IR ops in the layouts it needs
(convolutions and pools: NHWC images) and binds its fx node's result. BatchNorm folds into the weighted op
before it and ReLU/ReLU6 fuse into it when nothing else reads that op's output.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch.fx

from .torch_context import Capture, Padded, call_args
from .torch_layout import Layout, Shape

Converter = Callable[[Capture, torch.fx.Node], None]
CONVERTERS: dict[str, Converter] = {}
REFUSALS: dict[str, Converter] = {}  # ops recognised only to explain why they are not supported

_FUSES_ACTIVATION = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL")
_CLAMP_ACTIVATIONS = {(0.0, None): "RELU", (0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1"}


def converts(*names: str, registry: dict[str, Converter] = CONVERTERS) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for name in names:
            registry[name] = fn
        return fn
    return register


def op_name(node: torch.fx.Node) -> str:
    return node.target.overloadpacket.__name__


def int_tuple(value: Any, n: int) -> tuple[int, ...]:
    """An int or a list of 1 or n ints as n ints."""
    values = [int(value)] * n if isinstance(value, int) else [int(v) for v in value]
    return tuple(values * n if len(values) == 1 else values)


def as_2d(values: Sequence[Any], fill: Any) -> tuple[Any, Any]:
    """Per-dimension values of a 1-D window as the 2-D window's (height 1)."""
    return (fill, values[0]) if len(values) == 1 else (values[0], values[1])


def flat_pads(pads: Sequence[tuple[int, int]]) -> tuple[int, int, int, int]:
    (top, bottom), (left, right) = as_2d(pads, (0, 0))
    return top, bottom, left, right


def check_window(cap: Capture, node: torch.fx.Node, in_size: Sequence[int], out_size: Sequence[int],
                 kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                 pads: Sequence[tuple[int, int]]) -> None:
    """Refuse a window op whose torch output size differs from the IR's arithmetic (explicit pads)."""
    for i, o, k, s, d, (before, after) in zip(in_size, out_size, kernel, stride, dilation, pads):
        if (i + before + after - d * (k - 1) - 1) // s + 1 != o:
            raise cap.error(node, f"output size {list(out_size)} does not follow from input {list(in_size)}, "
                                  f"kernel {list(kernel)}, stride {list(stride)} and pads {list(pads)}")


# ---------------------------------------------------------------- weighted ops


def _conv_pads(cap: Capture, node: torch.fx.Node, padding: Any, kernel: Shape,
               dilation: Shape) -> list[tuple[int, int]]:
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise cap.error(node, f"padding {padding!r} is not supported")
        totals = [d * (k - 1) if padding == "same" else 0 for k, d in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    return [(p, p) for p in int_tuple(padding, len(kernel))]


def _weighted_names(cap: Capture, node: torch.fx.Node, weights: np.ndarray,
                    bias: np.ndarray) -> tuple[str, str, str]:
    """The output name of a weighted op and its weights and bias tensors, named after it."""
    out = cap.unique(cap.base_name(node))
    w_name = cap.add_tensor(f"{out}.weight", weights.shape, weights)
    return out, w_name, cap.add_tensor(f"{out}.bias", bias.shape, bias)


def _bias(cap: Capture, node: torch.fx.Node, arg: Any, channels: int) -> np.ndarray:
    return np.zeros(channels) if arg is None else cap.const(node, arg, "bias")


@converts("conv1d", "conv2d", "convolution")
def convolution(cap: Capture, node: torch.fx.Node) -> None:
    a = call_args(node)
    if a.get("transposed"):
        raise cap.error(node, "transposed convolution is not supported")
    source = cap.arg(a["input"])
    x = source.value if isinstance(source, Padded) else cap.value(node, a["input"])
    w = cap.const(node, a["weight"], "convolution weight")
    if w.ndim not in (3, 4) or x.rank != w.ndim:
        raise cap.error(node, f"only 1-D and 2-D convolutions are supported (weight {list(w.shape)})")
    spatial = w.ndim - 2
    kernel = tuple(w.shape[2:])
    stride, dilation = int_tuple(a["stride"], spatial), int_tuple(a["dilation"], spatial)
    pads = _conv_pads(cap, node, a["padding"], kernel, dilation)
    if isinstance(source, Padded):
        pads = [(b + pb, e + pe) for (b, e), (pb, pe) in zip(pads, source.pads)]
    out_shape = cap.shape(node)
    check_window(cap, node, x.shape[2:], out_shape[2:], kernel, stride, dilation, pads)
    groups, in_channels = int(a["groups"]), x.shape[1]
    w4 = w if spatial == 2 else w[:, :, None, :]
    attrs: dict[str, Any] = {"stride": as_2d(stride, 1), "dilation": as_2d(dilation, 1),
                             "pad": flat_pads(pads), "activation": "NONE"}
    if 1 < groups == in_channels:
        kind, weights = "DEPTHWISE_CONV_2D", w4.transpose(1, 2, 3, 0)
        attrs["multiplier"] = w.shape[0] // in_channels
    else:
        kind, weights = "CONV_2D", w4.transpose(0, 2, 3, 1)
    name, w_name, b_name = _weighted_names(cap, node, weights, _bias(cap, node, a["bias"], w.shape[0]))
    x_name = cap.realize(x, Layout.image(x.shape))
    cap.result(node, kind, [x_name, w_name, b_name], Layout.image(out_shape), attrs, name=name)


@converts("linear")
def linear(cap: Capture, node: torch.fx.Node) -> None:
    a = call_args(node)
    x = cap.value(node, a["input"])
    w = cap.const(node, a["weight"], "Linear weight")
    out_shape = cap.shape(node)
    if x.rank == 2:  # any layout: FULLY_CONNECTED flattens, the weight columns follow the IR order
        x_name, weights, keep_num_dims = x.name, w[:, x.primary.order()], False
    else:
        x_name, weights, keep_num_dims = cap.realize(x, Layout.plain(x.shape)), w, True
    name, w_name, b_name = _weighted_names(cap, node, weights, _bias(cap, node, a["bias"], w.shape[0]))
    cap.result(node, "FULLY_CONNECTED", [x_name, w_name, b_name], Layout.plain(out_shape),
               {"activation": "NONE", "keep_num_dims": keep_num_dims}, name=name)


@converts("batch_norm")
def batch_norm(cap: Capture, node: torch.fx.Node) -> None:
    a = call_args(node)
    x = cap.value(node, a["input"])
    if a["training"] or a["running_mean"] is None or a["running_var"] is None:
        raise cap.error(node, "BatchNorm without running statistics (track_running_stats=False) normalizes "
                              "with batch statistics, which a deployed network cannot; not supported")
    mean = cap.const(node, a["running_mean"], "running mean")
    var = cap.const(node, a["running_var"], "running variance")
    gamma = np.ones_like(mean) if a["weight"] is None else cap.const(node, a["weight"], "BatchNorm weight")
    beta = np.zeros_like(mean) if a["bias"] is None else cap.const(node, a["bias"], "BatchNorm bias")
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + float(a["eps"]))
    shift = beta - mean * scale
    kinds = ("CONV_2D", "DEPTHWISE_CONV_2D") + (("FULLY_CONNECTED",) if x.rank == 2 else ())
    producer = cap.fusable_producer(a["input"], kinds)
    if producer is not None:
        cap.scale_channels(producer, scale, shift)
        cap.absorb(node, a["input"])
        return
    if x.rank not in (2, 3, 4):
        raise cap.error(node, f"BatchNorm on a rank-{x.rank} tensor is not supported")
    channels = mean.size
    name, w_name, b_name = _weighted_names(cap, node, scale.reshape(1, 1, 1, channels), shift)
    attrs = {"stride": (1, 1), "dilation": (1, 1), "pad": (0, 0, 0, 0), "activation": "NONE", "multiplier": 1}
    x_name = cap.realize(x, Layout.image(x.shape))
    cap.result(node, "DEPTHWISE_CONV_2D", [x_name, w_name, b_name], Layout.image(x.shape), attrs, name=name)


# ---------------------------------------------------------------- activations


def _unary(cap: Capture, node: torch.fx.Node, kind: str, attrs: dict[str, Any] | None = None) -> None:
    x = cap.value(node, node.args[0])
    cap.result(node, kind, [x.name], x.primary, attrs)


def _clamp(cap: Capture, node: torch.fx.Node, low: Any, high: Any) -> None:
    if not all(b is None or isinstance(b, (int, float)) for b in (low, high)):
        raise cap.error(node, "clamping to bounds computed by the model is not supported")
    bounds = (None if low is None else float(low), None if high is None else float(high))
    activation = _CLAMP_ACTIVATIONS.get(bounds)
    if activation is None:
        raise cap.error(node, f"clamping to {list(bounds)} is not supported (only ReLU [0, inf), ReLU6 [0, 6], "
                              "and [-1, 1] right after a convolution, Linear or add)")
    producer = cap.fusable_producer(node.args[0], _FUSES_ACTIVATION)
    if producer is not None:
        cap.set_activation(producer, activation)
        cap.absorb(node, node.args[0])
    elif activation == "RELU_N1_TO_1":
        raise cap.error(node, "clamping to [-1, 1] is supported only as the fused activation of a convolution, "
                              "Linear or add whose output nothing else reads")
    else:
        _unary(cap, node, activation)


@converts("relu", "relu_")
def relu(cap: Capture, node: torch.fx.Node) -> None:
    _clamp(cap, node, 0.0, None)


@converts("relu6", "relu6_")
def relu6(cap: Capture, node: torch.fx.Node) -> None:
    _clamp(cap, node, 0.0, 6.0)


@converts("hardtanh", "hardtanh_")
def hardtanh(cap: Capture, node: torch.fx.Node) -> None:
    a = call_args(node)
    _clamp(cap, node, a["min_val"], a["max_val"])


@converts("clamp", "clamp_")
def clamp(cap: Capture, node: torch.fx.Node) -> None:
    a = call_args(node)
    _clamp(cap, node, a["min"], a["max"])


@converts("hardswish", "hardswish_", "sigmoid", "sigmoid_", "tanh", "tanh_")
def elementwise(cap: Capture, node: torch.fx.Node) -> None:
    kinds = {"hardswish": "HARD_SWISH", "sigmoid": "LOGISTIC", "tanh": "TANH"}
    _unary(cap, node, kinds[op_name(node).rstrip("_")])


@converts("leaky_relu", "leaky_relu_")
def leaky_relu(cap: Capture, node: torch.fx.Node) -> None:
    _unary(cap, node, "LEAKY_RELU", {"alpha": float(call_args(node)["negative_slope"])})


@converts("softmax", "_softmax", "log_softmax", "_log_softmax")
def softmax(cap: Capture, node: torch.fx.Node) -> None:
    x = cap.value(node, node.args[0])
    dim = int(node.args[1]) % x.rank
    if dim == 0:
        raise cap.error(node, "softmax over the batch dimension is not supported")
    layout = cap.perm_layout(x)
    if layout.perm[-1] != dim:  # the IR's softmax runs over the last axis
        layout = Layout.permuted(x.shape, [d for d in range(x.rank) if d != dim] + [dim])
    kind, attrs = ("LOG_SOFTMAX", {}) if "log" in op_name(node) else ("SOFTMAX", {"beta": 1.0})
    cap.result(node, kind, [cap.realize(x, layout)], layout, attrs)


# ---------------------------------------------------------------- binary and concatenation


@converts("add", "add_", "sub", "sub_", "mul", "mul_")
def binary(cap: Capture, node: torch.fx.Node) -> None:
    a = call_args(node)
    if a.get("alpha", 1) != 1:
        raise cap.error(node, f"alpha={a['alpha']} is not supported")
    x = cap.value(node, a["self"], "first operand")
    y = cap.value(node, a["other"], "second operand")
    out_shape = cap.shape(node)
    if x.shape == y.shape:
        layout = out_layout = x.primary
    elif x.rank == y.rank:  # broadcasting: both in the same permutation of their axes
        layout = cap.perm_layout(x)
        out_layout = Layout.permuted(out_shape, layout.perm)
    else:
        raise cap.error(node, f"broadcasting {list(x.shape)} with {list(y.shape)} (different ranks) is not "
                              "supported")
    names = [cap.realize(x, layout), cap.realize(y, Layout.permuted(y.shape, layout.perm) if x.shape != y.shape
                                                 else layout)]
    kind = op_name(node).rstrip("_").upper()
    cap.result(node, kind, names, out_layout, {"activation": "NONE"})


@converts("cat", "concat", "concatenate")
def concatenation(cap: Capture, node: torch.fx.Node) -> None:
    a = call_args(node)
    parts = [cap.value(node, t) for t in a["tensors"]]
    dim = int(a["dim"]) % parts[0].rank
    if dim == 0:
        raise cap.error(node, "concatenation along the batch dimension is not supported")
    perm = cap.perm_layout(parts[0]).perm
    names = [cap.realize(p, Layout.permuted(p.shape, perm)) for p in parts]
    out = Layout.permuted(cap.shape(node), perm)
    cap.result(node, "CONCATENATION", names, out, {"axis": perm.index(dim), "activation": "NONE"})
