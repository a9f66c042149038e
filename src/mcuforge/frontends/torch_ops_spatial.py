"""ATen pooling, reductions and data movement -> canonical float IR ops (registered in torch_ops.CONVERTERS).

Pools: TFLite leaves padded cells out of a window (max ignores them, the average divides by the count of
real cells); PyTorch's max pool agrees, its average agrees only with count_include_pad=False (or no
padding). ceil_mode=True becomes extra bottom/right padding, which the IR's pools also leave out.
Reshapes and permutes move no data by themselves: they change the recorded layout, and a RESHAPE or
TRANSPOSE appears only where a consumer needs another order.
"""
from __future__ import annotations

import torch.fx

from .torch_context import Capture, Padded, call_args
from .torch_layout import Layout
from .torch_ops import (
    REFUSALS,
    as_2d,
    check_window,
    converts,
    flat_pads,
    int_tuple,
    op_name,
)


def _pool_pads(in_size: int, out_size: int, kernel: int, stride: int, pad: int) -> tuple[int, int]:
    """(before, after): PyTorch's symmetric pad, plus what ceil_mode adds after the input."""
    return pad, max(pad, (out_size - 1) * stride + kernel - in_size - pad)


def _emit_pool(cap: Capture, node: torch.fx.Node, kind: str, kernel: tuple[int, ...], stride: tuple[int, ...],
               pads: list[tuple[int, int]], shape: tuple[int, ...] | None = None) -> None:
    x = cap.value(node, node.args[0])
    out_shape = shape or cap.shape(node)
    check_window(cap, node, x.shape[2:], out_shape[2:], kernel, stride, (1,) * len(kernel), pads)
    attrs = {"filter": as_2d(kernel, 1), "stride": as_2d(stride, 1), "pad": flat_pads(pads),
             "activation": "NONE"}
    x_name = cap.realize(x, Layout.image(x.shape))
    cap.result(node, kind, [x_name], Layout.image(out_shape), attrs, shape=out_shape)


@converts("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d")
def pool(cap: Capture, node: torch.fx.Node) -> None:
    a = call_args(node)
    spatial = 1 if op_name(node).endswith("1d") else 2
    kernel = int_tuple(a["kernel_size"], spatial)
    stride = int_tuple(a["stride"] or kernel, spatial)
    padding = int_tuple(a["padding"], spatial)
    is_max = op_name(node).startswith("max")
    if is_max and any(d != 1 for d in int_tuple(a["dilation"], spatial)):
        raise cap.error(node, "dilated max pooling is not supported")
    if not is_max and a["count_include_pad"] and any(padding):
        raise cap.error(node, "average pooling with padding and count_include_pad=True counts the padded zeros, "
                              "TFLite's average leaves them out: set count_include_pad=False (or use no padding)")
    if not is_max and a.get("divisor_override") is not None:
        raise cap.error(node, "average pooling with divisor_override is not supported")
    x_shape, out_shape = cap.value(node, a["self"]).shape, cap.shape(node)
    pads = [_pool_pads(i, o, k, s, p) for i, o, k, s, p in zip(x_shape[2:], out_shape[2:], kernel, stride, padding)]
    _emit_pool(cap, node, "MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D", kernel, stride, pads)


@converts("adaptive_avg_pool1d", "adaptive_avg_pool2d", "_adaptive_avg_pool2d", "adaptive_max_pool1d",
          "adaptive_max_pool2d")
def adaptive_pool(cap: Capture, node: torch.fx.Node) -> None:
    x = cap.value(node, node.args[0])
    is_max = "max" in op_name(node)
    val = node.meta["val"][0] if is_max else node.meta["val"]  # max also returns the indices
    out_shape = cap.shape(node, val)
    in_size, out_size = x.shape[2:], out_shape[2:]
    if not is_max and all(o == 1 for o in out_size):
        x_name = cap.realize(x, Layout.image(x.shape))
        cap.result(node, "MEAN", [x_name], Layout.image(out_shape), {"axes": (1, 2), "keep_dims": True})
    elif all(i % o == 0 for i, o in zip(in_size, out_size)):
        kernel = tuple(i // o for i, o in zip(in_size, out_size))
        _emit_pool(cap, node, "MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D", kernel, kernel,
                   [(0, 0)] * len(kernel), out_shape)
    else:
        raise cap.error(node, f"adaptive pooling from {list(in_size)} to {list(out_size)} needs windows of "
                              "unequal sizes; choose an output size that divides the input size")
    if is_max:
        cap.values[node] = (cap.values[node], None)


@converts("mean")
def mean(cap: Capture, node: torch.fx.Node) -> None:
    a = call_args(node)
    x = cap.value(node, a["self"])
    dims = sorted({int(d) % x.rank for d in (a.get("dim") or ())})
    if not dims or 0 in dims:
        raise cap.error(node, "a mean over the batch dimension is not supported")
    layout = cap.perm_layout(x)
    keep = bool(a["keepdim"])
    kept = layout.perm if keep else tuple(p - sum(d < p for d in dims) for p in layout.perm if p not in dims)
    attrs = {"axes": tuple(sorted(layout.ir_axis(d) for d in dims)), "keep_dims": keep}
    cap.result(node, "MEAN", [cap.realize(x, layout)], Layout.permuted(cap.shape(node), kept), attrs)


@converts("view", "reshape", "_unsafe_view", "flatten", "unflatten", "squeeze", "squeeze_", "unsqueeze",
          "unsqueeze_")
def reshape(cap: Capture, node: torch.fx.Node) -> None:
    x = cap.value(node, node.args[0])
    layout = x.primary.reshaped(cap.shape(node))
    if layout.ir_shape == x.primary.ir_shape:
        cap.alias(node, node.args[0], layout, x.name)
    else:
        cap.result(node, "RESHAPE", [x.name], layout)


@converts("permute", "transpose", "swapaxes", "t", "numpy_T")
def permute(cap: Capture, node: torch.fx.Node) -> None:
    x = cap.value(node, node.args[0])
    dims = _permutation(node, x.rank)
    if dims[0] != 0:
        raise cap.error(node, "moving the batch dimension is not supported")
    relabelled = x.primary.over(x.shape)
    if relabelled is not None:  # the IR tensor as it is, its dims relabelled as torch's
        layout, name = Layout(relabelled.view, relabelled.perm, x.primary.ir_shape), x.name
    else:
        layout = cap.perm_layout(x)
        name = cap.realize(x, layout)
    cap.alias(node, node.args[0], layout.transposed(dims), name)


def _permutation(node: torch.fx.Node, rank: int) -> tuple[int, ...]:
    name = op_name(node)
    if name == "permute":
        return tuple(int(d) % rank for d in node.args[1])
    if name in ("transpose", "swapaxes"):
        i, j = (int(d) % rank for d in node.args[1:3])
    else:  # t, numpy_T: reverse (a rank-2 transpose)
        i, j = 0, rank - 1
    dims = list(range(rank))
    dims[i], dims[j] = dims[j], dims[i]
    return tuple(dims)


@converts("dropout", "dropout_", "feature_dropout", "alpha_dropout", "clone", "contiguous", "alias", "detach",
          "lift_fresh_copy")
def identity(cap: Capture, node: torch.fx.Node) -> None:
    cap.value(node, node.args[0])
    cap.absorb(node, node.args[0])


@converts("pad", "constant_pad_nd")
def zero_pad(cap: Capture, node: torch.fx.Node) -> None:
    """Zero padding of the spatial dims, for the convolutions that read it to take into their own padding."""
    a = call_args(node)
    x = cap.value(node, a["self"])
    if a.get("mode", "constant") != "constant":
        raise cap.error(node, f"{a['mode']} padding is not supported (a convolution's padding_mode must be 'zeros')")
    amounts = [int(p) for p in a["pad"]]  # (before, after) pairs, last dimension first
    pairs = [tuple(amounts[i:i + 2]) for i in range(0, len(amounts), 2)][::-1]
    spatial = x.rank - 2
    outer = pairs[:-spatial] if spatial > 0 else pairs
    if (a.get("value") or 0) != 0 or min(amounts, default=0) < 0 or spatial not in (1, 2) or any(
            p for pair in outer for p in pair):
        raise cap.error(node, "only zero padding of the spatial dimensions, right before a convolution, is "
                              "supported (or pass the padding to the convolution or pooling layer)")
    pairs = [(0, 0)] * (spatial - len(pairs)) + pairs[-spatial:]
    cap.values[node] = Padded(x, tuple(pairs))


@converts("reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d", "circular_pad1d",
          "circular_pad2d", registry=REFUSALS)
def other_pad(cap: Capture, node: torch.fx.Node) -> None:
    mode = op_name(node).split("_")[0]
    raise cap.error(node, f"{mode} padding is not supported (a convolution's padding_mode must be 'zeros')")
