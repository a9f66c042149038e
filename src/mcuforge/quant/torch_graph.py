"""Execute a float IR Graph with torch: calibration records every tensor, quantization-aware training trains it.

`TorchGraph(graph)` is an nn.Module. The weights and biases of CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED become float32 nn.Parameters (in the IR's layouts); `forward` runs the ops in order on a
batch, and `to_graph` writes the parameters back into a Graph of the same structure.

Tensors are kept in the IR's layout (NHWC, batch first) throughout: every hook sees exactly the IR tensor,
batched along dim 0. Convolutions and pools run on a permuted view (NCHW logical order, channels-last
memory), which torch's CPU kernels handle without copying.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..ir import Graph, Op, Tensor

Hook = Callable[[str, torch.Tensor], torch.Tensor]

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "NONE": lambda x: x,
    "RELU": F.relu,
    "RELU6": lambda x: torch.clamp(x, 0.0, 6.0),
    "RELU_N1_TO_1": lambda x: torch.clamp(x, -1.0, 1.0),
}


def weight_channel_axis(kind: str) -> int:
    """The axis of an op's weights that indexes its output channels (0 for CONV_2D and FULLY_CONNECTED,
    3 for DEPTHWISE_CONV_2D's [1, KH, KW, C * multiplier])."""
    return 3 if kind == "DEPTHWISE_CONV_2D" else 0


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


class _Shared:
    """An immutable value that copies of a module share (deepcopy returns the holder itself)."""

    def __init__(self, value: Graph) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict) -> _Shared:
        return self


class TorchGraph(nn.Module):
    """A float IR Graph as a torch module.

    Hooks (attributes, or keyword arguments of `forward` that override them for one call):
    - `observe(tensor_name, value) -> tensor`: called on every activation as it is produced, graph inputs
      included; `value` is the IR tensor in IR layout (NHWC for images) with the batch on dim 0. What it
      returns replaces the tensor (QAT inserts fake quantization here; calibration returns `value`).
    - `weight_hook(tensor_name, weights) -> tensor`: called on the weights (not the bias) of every
      CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED before use; `weights` is the parameter in the IR's
      layout, so the output channels are along `weight_channel_axis(kind)` / `self.channel_axis(name)`:
      dim 0 for CONV_2D [O, KH, KW, I] and FULLY_CONNECTED [O, I], dim 3 for DEPTHWISE_CONV_2D
      [1, KH, KW, C * multiplier]. It must return a tensor of the same shape.
    """

    def __init__(self, graph: Graph, observe: Hook | None = None, weight_hook: Hook | None = None) -> None:
        super().__init__()
        _check_graph(graph)
        self._graph = _Shared(graph)
        self.observe = observe
        self.weight_hook = weight_hook
        self.params = nn.ParameterDict()
        self._keys: dict[str, str] = {}  # tensor name -> key in self.params or self._constants
        self._axes: dict[str, int] = {}  # weight tensor name -> output channel axis
        self._constants: set[str] = set()  # names of the constants kept as buffers (not trained)
        for op in graph.ops:
            for i, name in enumerate(op.inputs):
                if name and graph[name].is_const and name not in self._keys:
                    self._register(op, i, graph[name])
        self._last_use = _last_uses(graph)

    @property
    def graph(self) -> Graph:
        """The graph as given (its constants as they were; `to_graph` has the current ones)."""
        return self._graph.value

    # ------------------------------------------------------------ parameters

    def _register(self, op: Op, position: int, tensor: Tensor) -> None:
        key = self._unique_key(tensor.name)
        self._keys[tensor.name] = key
        data = torch.from_numpy(np.array(tensor.data, np.float32))
        if op.kind in WEIGHTED and position > 0:
            self.params[key] = nn.Parameter(data)
            if position == 1:
                self._axes[tensor.name] = weight_channel_axis(op.kind)
        else:
            self.register_buffer(f"const_{key}", data)
            self._constants.add(tensor.name)

    def _unique_key(self, name: str) -> str:
        base = re.sub(r"\W", "_", name) or "tensor"
        key, i = base, 0
        taken = set(self._keys.values())
        while key in taken:
            i += 1
            key = f"{base}_{i}"
        return key

    def param_name(self, tensor_name: str) -> str:
        """The key in `self.params` of the parameter holding the IR constant `tensor_name`."""
        return self._keys[tensor_name]

    def parameter(self, tensor_name: str) -> nn.Parameter:
        return self.params[self._keys[tensor_name]]

    def channel_axis(self, weights_name: str) -> int:
        """The axis of the weights `weights_name` that indexes output channels."""
        return self._axes[weights_name]

    def to_graph(self) -> Graph:
        """The graph with the current parameter values written back (same structure)."""
        tensors = dict(self.graph.tensors)
        for name, key in self._keys.items():
            if key in self.params:
                data = self.params[key].detach().cpu().to(torch.float32).numpy().copy()
                tensors[name] = replace(tensors[name], data=data)
        return replace(self.graph, tensors=tensors)

    # ------------------------------------------------------------ running

    def forward(self, *inputs: torch.Tensor, observe: Hook | None = None,
                weight_hook: Hook | None = None) -> tuple[torch.Tensor, ...]:
        """Run the graph on `inputs` (IR layout, any batch size); returns the outputs in IR layout."""
        observe = observe or self.observe
        weight_hook = weight_hook or self.weight_hook
        values = self._bind_inputs(inputs, observe)
        for index, op in enumerate(self.graph.ops):
            operands = [self._operand(name, values, weight_hook) for name in op.inputs]
            out = _KERNELS[op.kind](op, operands, self.graph)
            out_name = op.outputs[0]
            values[out_name] = observe(out_name, out) if observe else out
            for name in op.inputs:
                if self._last_use.get(name) == index:
                    values.pop(name, None)
        return tuple(values[name] for name in self.graph.outputs)

    def _bind_inputs(self, inputs: Sequence[torch.Tensor], observe: Hook | None) -> dict[str, torch.Tensor]:
        if len(inputs) != len(self.graph.inputs):
            raise ValueError(f"{len(self.graph.inputs)} inputs expected, got {len(inputs)}")
        values: dict[str, torch.Tensor] = {}
        for name, x in zip(self.graph.inputs, inputs):
            x = torch.as_tensor(x, dtype=torch.float32)
            expected = self.graph[name].shape[1:]
            if tuple(x.shape[1:]) != expected:
                raise ValueError(f"input '{name}' must have shape [N, {', '.join(map(str, expected))}] "
                                 f"(IR layout), got {list(x.shape)}")
            values[name] = observe(name, x) if observe else x
        return values

    def _operand(self, name: str, values: dict[str, torch.Tensor], weight_hook: Hook | None) -> torch.Tensor | None:
        if not name:
            return None
        if name in values:
            return values[name]
        if name in self._constants:
            return getattr(self, f"const_{self._keys[name]}")
        param = self.params[self._keys[name]]
        return weight_hook(name, param) if weight_hook and name in self._axes else param


def _check_graph(graph: Graph) -> None:
    for op in graph.ops:
        where = f"{op.kind} '{op.name}'"
        if op.kind not in _KERNELS:
            raise ModelError(f"TorchGraph cannot run {where}: supported are {', '.join(sorted(_KERNELS))}")
        for name in (*op.inputs, *op.outputs):
            t = graph[name] if name else None
            if t is None or t.is_const:
                continue
            if t.dtype != "float32" or not t.shape or t.shape[0] != 1:
                raise ModelError(f"TorchGraph runs float32 tensors with batch 1 first; {where} has '{name}' "
                                 f"{t.dtype} {list(t.shape)}")
        if (op.kind == "TRANSPOSE" and op.attrs["perm"][0] != 0) or (
                op.kind in ("MEAN", "CONCATENATION") and 0 in _axes_of(op)):
            raise ModelError(f"TorchGraph cannot run {where}: it moves or reduces the batch dimension")


def _axes_of(op: Op) -> tuple[int, ...]:
    return tuple(op.attrs["axes"]) if op.kind == "MEAN" else (int(op.attrs["axis"]),)


def _last_uses(graph: Graph) -> dict[str, int]:
    last: dict[str, int] = {}
    for i, op in enumerate(graph.ops):
        for name in op.inputs:
            if name and name not in graph.outputs:
                last[name] = i
    return last


# ---------------------------------------------------------------- kernels: (op, operands, graph) -> output


def _activation(op: Op, x: torch.Tensor) -> torch.Tensor:
    return _ACTIVATIONS[str(op.attrs.get("activation", "NONE"))](x)


def _out_shape(op: Op, graph: Graph, batch: int) -> tuple[int, ...]:
    return (batch, *graph[op.outputs[0]].shape[1:])


def _conv(op: Op, xs: list[torch.Tensor | None], graph: Graph) -> torch.Tensor:
    x, w, b = xs
    top, bottom, left, right = (int(p) for p in op.attrs["pad"])
    image = _nchw(x)
    if op.kind == "DEPTHWISE_CONV_2D":
        weights, groups = w.permute(3, 0, 1, 2), image.shape[1]
    else:
        weights, groups = w.permute(0, 3, 1, 2), image.shape[1] // w.shape[3]
    if top == bottom and left == right:
        padding = (top, left)
    else:
        image, padding = F.pad(image, (left, right, top, bottom)), (0, 0)
    y = F.conv2d(image, weights, b, tuple(op.attrs["stride"]), padding, tuple(op.attrs["dilation"]), groups)
    return _activation(op, _nhwc(y))


def _fully_connected(op: Op, xs: list[torch.Tensor | None], graph: Graph) -> torch.Tensor:
    x, w, b = xs
    y = F.linear(x.reshape(-1, w.shape[1]), w, b)
    shape = (*x.shape[:-1], w.shape[0]) if op.attrs.get("keep_num_dims") else _out_shape(op, graph, x.shape[0])
    return _activation(op, y.reshape(shape))


def _pool(op: Op, xs: list[torch.Tensor | None], graph: Graph) -> torch.Tensor:
    """TFLite pooling: windows start at -pad_top/-pad_left, padded cells are left out of every window."""
    (x,) = xs
    (fh, fw), (sh, sw) = op.attrs["filter"], op.attrs["stride"]
    top, _, left, _ = (int(p) for p in op.attrs["pad"])
    _, out_h, out_w, _ = graph[op.outputs[0]].shape
    image = _nchw(x)
    bottom = (out_h - 1) * sh + fh - image.shape[2] - top  # negative: rows no window reaches
    right = (out_w - 1) * sw + fw - image.shape[3] - left
    pads = (left, right, top, bottom)
    if op.kind == "MAX_POOL_2D":
        y = F.max_pool2d(F.pad(image, pads, value=float("-inf")), (fh, fw), (sh, sw))
    else:
        y = F.avg_pool2d(F.pad(image, pads), (fh, fw), (sh, sw))
        if any(pads):
            real = F.pad(torch.ones((1, 1, *image.shape[2:]), dtype=x.dtype, device=x.device), pads)
            y = y / F.avg_pool2d(real, (fh, fw), (sh, sw))
    return _activation(op, _nhwc(y))


def _mean(op: Op, xs: list[torch.Tensor | None], graph: Graph) -> torch.Tensor:
    return xs[0].mean(dim=tuple(op.attrs["axes"]), keepdim=bool(op.attrs["keep_dims"]))


def _reshape(op: Op, xs: list[torch.Tensor | None], graph: Graph) -> torch.Tensor:
    return xs[0].reshape(_out_shape(op, graph, xs[0].shape[0]))


def _transpose(op: Op, xs: list[torch.Tensor | None], graph: Graph) -> torch.Tensor:
    return xs[0].permute(*op.attrs["perm"])


def _concatenation(op: Op, xs: list[torch.Tensor | None], graph: Graph) -> torch.Tensor:
    return _activation(op, torch.cat(xs, dim=int(op.attrs["axis"])))


_BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ADD": torch.add, "SUB": torch.sub, "MUL": torch.mul, "MAXIMUM": torch.maximum, "MINIMUM": torch.minimum}
_UNARY: dict[str, Callable[[torch.Tensor, Op], torch.Tensor]] = {
    "RELU": lambda x, op: _ACTIVATIONS["RELU"](x),
    "RELU6": lambda x, op: _ACTIVATIONS["RELU6"](x),
    "HARD_SWISH": lambda x, op: F.hardswish(x),
    "LOGISTIC": lambda x, op: torch.sigmoid(x),
    "TANH": lambda x, op: torch.tanh(x),
    "LEAKY_RELU": lambda x, op: F.leaky_relu(x, float(op.attrs["alpha"])),
    "SOFTMAX": lambda x, op: torch.softmax(x * float(op.attrs.get("beta", 1.0)), dim=-1),
    "LOG_SOFTMAX": lambda x, op: torch.log_softmax(x, dim=-1),
}


def _binary(op: Op, xs: list[torch.Tensor | None], graph: Graph) -> torch.Tensor:
    return _activation(op, _BINARY[op.kind](xs[0], xs[1]))


def _unary(op: Op, xs: list[torch.Tensor | None], graph: Graph) -> torch.Tensor:
    return _UNARY[op.kind](xs[0], op)


_KERNELS: dict[str, Callable[[Op, list[torch.Tensor | None], Graph], torch.Tensor]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _pool, "MAX_POOL_2D": _pool, "MEAN": _mean, "RESHAPE": _reshape,
    "TRANSPOSE": _transpose, "CONCATENATION": _concatenation,
    **{kind: _binary for kind in _BINARY}, **{kind: _unary for kind in _UNARY},
}
