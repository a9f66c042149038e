"""The state of one torch -> IR translation: what each fx node stands for, and the tensors and ops so far.

An fx node stands for a `Value` (an activation, held by one or more IR tensors in known layouts, see
torch_layout), a numpy array (a parameter, buffer or constant), a tuple of those (multi-output ops) or a
Python scalar/list (an argument). Converters (torch_ops) read their operands through `Capture`, emit IR
ops with it, and bind their node's result.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx

from ..errors import ModelError
from ..ir import Graph, Op, Tensor
from .torch_layout import Layout, Shape, conversion_steps

_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_TORCH_DIR = os.path.dirname(torch.__file__)


@dataclass
class Value:
    """An activation: its torch shape (batch 1) and the IR tensors holding it, by layout."""

    shape: Shape
    primary: Layout  # the layout its producer wrote
    names: dict[Layout, str]

    @property
    def name(self) -> str:
        return self.names[self.primary]

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class Padded:
    """A zero-padded activation that is not materialised: a convolution reading it adds the pads to its own."""

    value: Value
    pads: tuple[tuple[int, int], ...]  # (before, after) per spatial dimension, outermost first


def module_location(node: torch.fx.Node) -> str:
    """'features.3 (GELU)' from the innermost module that called the op, plus the user's source line."""
    stack = node.meta.get("nn_module_stack") or {}
    place = "the model's top level"
    if stack:
        path, cls = list(stack.values())[-1]
        cls_name = (cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))).rsplit(".", 1)[-1]
        place = f"{path} ({cls_name})" if path else f"the top level of {cls_name}"
    line = _user_source_line(node.meta.get("stack_trace") or "")
    return f"{place}{f', {line}' if line else ''}"


def _user_source_line(trace: str) -> str:
    frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
    user = [(f, n) for f, n in frames if not f.startswith(_TORCH_DIR)]
    return f"{os.path.basename(user[-1][0])}:{user[-1][1]}" if user else ""


def op_label(node: torch.fx.Node) -> str:
    target = node.target
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return f"{target.namespace}.{packet.__name__}"
    return getattr(target, "__name__", str(target))


def call_args(node: torch.fx.Node) -> dict[str, Any]:
    """The op's arguments by schema name, defaults filled in."""
    schema = node.target._schema
    args: dict[str, Any] = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args):
            args[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            args[arg.name] = node.kwargs[arg.name]
        else:
            args[arg.name] = arg.default_value if arg.has_default_value() else None
    return args


class Capture:
    """One translation in progress: the fx nodes' results, and the IR tensors and ops emitted so far."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self.values: dict[torch.fx.Node, Any] = {}
        self.owner: dict[str, torch.fx.Node] = {}  # tensor -> the node whose converter wrote it
        self.producer: dict[str, int] = {}  # tensor -> index of the op that writes it
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.signal_model = False  # a rank-3 input is a [N, C, L] signal: rank-3 edges are channel-last

    # ------------------------------------------------------------ errors and names

    def error(self, node: torch.fx.Node, message: str) -> ModelError:
        return ModelError(f"{op_label(node)} at {module_location(node)}: {message}")

    def unique(self, base: str) -> str:
        name, i = base, 0
        while name in self.tensors:
            i += 1
            name = f"{base}_{i}"
        return name

    def base_name(self, node: torch.fx.Node) -> str:
        """The module path for ops of torch.nn layers ('features.0'), else path + node name ('layer1.add')."""
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return node.name
        path, cls = list(stack.values())[-1]
        cls_path = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
        if path and cls_path.startswith("torch.nn."):
            return path
        return f"{path}.{node.name}" if path else node.name

    # ------------------------------------------------------------ operands

    def arg(self, arg: Any) -> Any:
        """What an op argument stands for: a node's bound result, or the literal itself."""
        return self.values[arg] if isinstance(arg, torch.fx.Node) else arg

    def value(self, node: torch.fx.Node, arg: Any, what: str = "input") -> Value:
        v = self.arg(arg)
        if isinstance(v, Padded):
            raise self.error(node, "zero padding (F.pad) is supported only right before a convolution, which "
                                   "takes it into its own padding")
        if not isinstance(v, Value):
            kind = "a constant tensor" if isinstance(v, np.ndarray) else f"the constant {v!r}"
            raise self.error(node, f"the {what} is {kind}; only activations computed from the model's inputs "
                                   "are supported here")
        return v

    def const(self, node: torch.fx.Node, arg: Any, what: str) -> np.ndarray:
        v = self.arg(arg)
        if not isinstance(v, np.ndarray):
            raise self.error(node, f"the {what} must be a parameter or buffer of the model")
        return v

    def shape(self, node: torch.fx.Node, val: Any = None) -> Shape:
        """The node's torch output shape with the batch dimension set to 1 (the IR's batch)."""
        val = node.meta.get("val") if val is None else val
        shape = tuple(int(d) for d in getattr(val, "shape", ()))
        if not shape or shape[0] != self.batch:
            raise self.error(node, f"output shape {list(shape)} does not keep the batch dimension "
                                   f"({self.batch}) first; ops across the batch are not supported")
        return (1, *shape[1:])

    # ------------------------------------------------------------ emission

    def add_tensor(self, name: str, shape: Sequence[int], data: np.ndarray | None = None) -> str:
        name = self.unique(name)
        array = None if data is None else np.ascontiguousarray(data, np.float32)
        self.tensors[name] = Tensor(name, tuple(int(d) for d in shape), "float32", None, array)
        return name

    def emit(self, kind: str, inputs: Sequence[str], out_shape: Sequence[int], base: str,
             attrs: dict[str, Any] | None = None, owner: torch.fx.Node | None = None) -> str:
        out = self.add_tensor(base, out_shape)
        self.producer[out] = len(self.ops)
        self.ops.append(Op(kind, tuple(inputs), (out,), attrs or {}))
        if owner is not None:
            self.owner[out] = owner
        return out

    def result(self, node: torch.fx.Node, kind: str, inputs: Sequence[str], layout: Layout,
               attrs: dict[str, Any] | None = None, name: str | None = None, shape: Shape | None = None) -> Value:
        """Emit the op that computes `node` (output `layout`, named `name` or after the node) and bind the
        node to its output, a value of torch shape `shape` (default: the node's)."""
        out = self.emit(kind, inputs, layout.ir_shape, name or self.base_name(node), attrs, owner=node)
        value = Value(shape or self.shape(node), layout, {layout: out})
        self.values[node] = value
        return value

    def alias(self, node: torch.fx.Node, source: Any, layout: Layout, name: str) -> Value:
        """Bind `node` to the IR tensor `name` of the fx node `source`, read in `layout` (no op: the same
        bytes)."""
        value = Value(self.shape(node), layout, {layout: name})
        self.values[node] = value
        self._hand_over(name, source, node)
        return value

    def realize(self, value: Value, layout: Layout) -> str:
        """The IR tensor holding `value` in `layout`, emitting RESHAPE/TRANSPOSE steps the first time."""
        if layout in value.names:
            return value.names[layout]
        for held, name in value.names.items():
            if held.same_order(layout) and held.ir_shape == layout.ir_shape:
                value.names[layout] = name
                return name
        name = value.name
        for kind, arg in conversion_steps(value.primary, layout):
            shape = arg if kind == "reshape" else tuple(self.tensors[name].shape[p] for p in arg)
            attrs = {"perm": arg} if kind == "transpose" else {}
            name = self.emit(kind.upper(), [name], shape, f"{value.name}.{kind}d", attrs)
        value.names[layout] = name
        return name

    def perm_layout(self, value: Value) -> Layout:
        """A permutation layout for `value` (torch axes map to IR axes), preferring one it holds for free."""
        candidates = [value.primary, Layout.channels_last(value.shape), Layout.plain(value.shape)]
        candidates = [c for c in candidates if c.is_permutation and c.view == value.shape]
        relabelled = value.primary.over(value.shape)
        candidates += [relabelled] if relabelled is not None else []
        for candidate in candidates:
            if candidate in value.names or value.primary.same_order(candidate):
                return candidate
        return Layout.plain(value.shape)

    # ------------------------------------------------------------ rewriting emitted ops (folding, fusing)

    def fusable_producer(self, arg: Any, kinds: Sequence[str]) -> int | None:
        """Index of the op that wrote `arg` when it may absorb what follows: a `kinds` op with no fused
        activation, whose output nothing else reads."""
        value = self.values.get(arg) if isinstance(arg, torch.fx.Node) else None
        if not isinstance(value, Value) or len(arg.users) != 1 or self.owner.get(value.name) is not arg:
            return None
        index = self.producer.get(value.name)
        if index is None:
            return None
        op = self.ops[index]
        if op.kind not in kinds or op.attrs.get("activation", "NONE") != "NONE":
            return None
        if value.name in self.outputs or any(value.name in o.inputs for o in self.ops[index + 1:]):
            return None
        return index

    def absorb(self, node: torch.fx.Node, arg: torch.fx.Node) -> None:
        """`node` stands for the same value as `arg` (folded into its op, or an identity); when `arg` owned
        the tensor and `node` is its only reader, `node` takes over, so what follows may fold in too."""
        value = self.values[arg]
        self.values[node] = value
        self._hand_over(value.name, arg, node)

    def _hand_over(self, name: str, arg: Any, node: torch.fx.Node) -> None:
        if isinstance(arg, torch.fx.Node) and self.owner.get(name) is arg and len(arg.users) == 1:
            self.owner[name] = node

    def set_activation(self, index: int, activation: str) -> None:
        op = self.ops[index]
        self.ops[index] = op.with_(attrs=dict(op.attrs, activation=activation))

    def scale_channels(self, index: int, scale: np.ndarray, shift: np.ndarray) -> None:
        """Fold y' = y * scale + shift (per output channel) into a weighted op's weights and bias."""
        op = self.ops[index]
        assert op.kind in _WEIGHTED
        axis = 3 if op.kind == "DEPTHWISE_CONV_2D" else 0
        weights, bias = self.tensors[op.inputs[1]], self.tensors[op.inputs[2]]
        shape = [1] * len(weights.shape)
        shape[axis] = -1
        w = weights.data.astype(np.float64) * scale.reshape(shape)
        b = bias.data.astype(np.float64) * scale + shift
        self.tensors[weights.name] = Tensor(weights.name, weights.shape, "float32", None, w.astype(np.float32))
        self.tensors[bias.name] = Tensor(bias.name, bias.shape, "float32", None, b.astype(np.float32))

    # ------------------------------------------------------------ result

    def build(self, name: str) -> Graph:
        ops = _live_ops(self.ops, set(self.outputs))
        graph = Graph(self.tensors, ops, self.inputs, self.outputs, name)
        return graph.with_ops(graph.ops)


def _live_ops(ops: list[Op], outputs: set[str]) -> list[Op]:
    """Drop ops whose results nothing reads (e.g. pooling indices, unused branches)."""
    needed = set(outputs)
    live: list[Op] = []
    for op in reversed(ops):
        if any(n in needed for n in op.outputs):
            live.append(op)
            needed.update(n for n in op.inputs if n)
    return live[::-1]
