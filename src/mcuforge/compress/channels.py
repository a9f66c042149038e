"""Channel groups of a float IR graph, and the graph with some of their channels physically removed: the
first half of structured pruning (compress.channel_selection decides how many channels go and which).

    groups = channel_groups(graph)             # graph: float32, NHWC, batch norm folded (from_torch)
    analysis = analyse_channels(graph)         # the groups, and which group owns each activation's channels
    smaller = remove_channels(analysis, masks)  # masks: group index -> boolean mask of the channels kept

Channel groups (`channel_groups`): a CONV_2D or FULLY_CONNECTED output starts a group, and every tensor
whose channel axis (the last) carries those channels belongs to it: depthwise convolutions (multiplier 1),
activations, pools, PAD and MEAN over other axes and reshapes that keep the channel axis pass channels
through; an elementwise op (ADD, SUB, MUL, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE) ties its operands' groups
channel by channel (a residual add: both producers lose the same channels); a concatenation on the channel
axis places each input's channels at an offset; a flatten (NHWC: feature (h*W + w)*C + c) repeats them once
per position, so the FULLY_CONNECTED after it loses the columns of every position. A group is not
prunable when its channels reach a graph output (the classes stay), an operator whose channel mapping is
not known here (a SOFTMAX, for one), a grouped convolution or a depthwise multiplier > 1, an op that shares
a constant with another, or a tensor that mixes them with others in a way the mapping cannot follow.

Removing channels (`remove_channels`): every activation loses the indices of its channel axis whose
channel is dropped; weights lose them as output channels (and, for the layer after, as input columns),
biases, depthwise weights and elementwise constants with them; the result passes the IR's validation. A
pruned channel's bias is dropped with it: the network changes unless the channel was dead (zero weights
and bias), so pruned models are fine-tuned (QATModel) before they deploy. `param_count`: the constant
values the graph's ops read.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from ..engine import opinfo
from ..errors import UsageError, shown
from ..ir import Graph, Op
from ..ir.passes import validate

FIXED = -1  # group index of a channel no group owns (graph inputs, outputs of unknown ops)
WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
PASS_THROUGH = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "HARD_SWISH", "LOGISTIC", "TANH",
                          "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR",
                          "QUANTIZE", "DEQUANTIZE"})
ELEMENTWISE = frozenset({"ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"})


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that are pruned together: `channels` of them, written by `layers` (CONV_2D and
    FULLY_CONNECTED ops by name), carried by `tensors` (activations); `reason` says why it is not prunable."""

    index: int
    channels: int
    layers: tuple[str, ...]
    tensors: tuple[str, ...]
    prunable: bool
    reason: str = ""


# ---------------------------------------------------------------- channel axes and groups


@dataclass(frozen=True)
class _Axis:
    """Who owns each index of a tensor's last axis: a group and a channel in it (FIXED: nobody)."""

    groups: np.ndarray
    channels: np.ndarray

    @staticmethod
    def fixed(n: int) -> _Axis:
        return _Axis(np.full(n, FIXED), np.arange(n))

    @staticmethod
    def fresh(group: int, n: int) -> _Axis:
        return _Axis(np.full(n, group), np.arange(n))

    @staticmethod
    def joined(parts: list[_Axis]) -> _Axis:
        return _Axis(np.concatenate([p.groups for p in parts]), np.concatenate([p.channels for p in parts]))

    def repeated(self, times: int) -> _Axis:
        return _Axis(np.tile(self.groups, times), np.tile(self.channels, times))

    def __len__(self) -> int:
        return len(self.groups)

    def owners(self) -> set[int]:
        return {int(g) for g in np.unique(self.groups) if g != FIXED}

    def kept(self, masks: Mapping[int, np.ndarray]) -> np.ndarray:
        """A boolean mask over the axis: the indices whose channel `masks` (group -> kept channels) keeps."""
        keep = np.ones(len(self), bool)
        for g in self.owners():
            at = self.groups == g
            keep[at] = masks[g][self.channels[at]]
        return keep


def _last(graph: Graph, name: str) -> int:
    shape = graph[name].shape
    return shape[-1] if shape else 1


class _Tracer:
    """One pass over the ops in order: each activation's channel axis, groups joined by union-find."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.parent: list[int] = []
        self.sizes: list[int] = []
        self.layers: list[str] = []
        self.reasons: dict[int, str] = {}
        self.axes: dict[str, _Axis] = {n: _Axis.fixed(_last(graph, n)) for n in graph.inputs}
        self.columns: dict[int, _Axis] = {}  # op index -> the axis of its weights' input channels
        uses: dict[str, int] = {}
        for op in graph.ops:
            for n in set(op.inputs):
                if n and graph[n].is_const:
                    uses[n] = uses.get(n, 0) + 1
        self.shared = {n for n, count in uses.items() if count > 1}

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def new_group(self, size: int, layer: str) -> int:
        self.parent.append(len(self.parent))
        self.sizes.append(size)
        self.layers.append(layer)
        return len(self.parent) - 1

    def freeze(self, axis: _Axis, why: str) -> None:
        for g in axis.owners():
            self.reasons.setdefault(g, why)

    def tie(self, a: _Axis, b: _Axis, why: str) -> None:
        """Index i of `a` and of `b` must be kept or pruned together: their groups join channel for channel;
        where one is FIXED or the channels differ, both groups are frozen."""
        bad = (a.groups == FIXED) | (b.groups == FIXED) | (a.channels != b.channels)
        self.freeze(_Axis(np.concatenate([a.groups[bad], b.groups[bad]]), np.zeros(2 * int(bad.sum()), int)), why)
        for ga, gb in {(int(x), int(y)) for x, y in zip(a.groups[~bad], b.groups[~bad])}:
            self.parent[self.find(ga)] = self.find(gb)

    def axis(self, name: str) -> _Axis:
        return self.axes[name]

    def unknown(self, op: Op, why: str) -> None:
        for n in op.inputs:
            if n in self.axes:
                self.freeze(self.axes[n], why)
        for n in op.outputs:
            self.axes[n] = _Axis.fixed(_last(self.graph, n))

    def trace(self) -> None:
        for index, op in enumerate(self.graph.ops):
            if self.shared & set(op.inputs):
                self.unknown(op, f"{op.kind} {shown(op.name)} shares a constant with another op")
                continue
            rule = _RULES.get(op.kind)
            if op.kind in PASS_THROUGH:
                rule = _pass_through
            elif op.kind in ELEMENTWISE:
                rule = _elementwise
            if rule is None:
                self.unknown(op, f"reaches {op.kind} {shown(op.name)}, whose channel mapping is not known")
            else:
                rule(self, index, op)
        for n in self.graph.outputs:
            self.freeze(self.axes[n], f"reaches the graph output {shown(n)}")


def _layer(tracer: _Tracer, index: int, op: Op) -> None:
    graph = tracer.graph
    w = graph[op.inputs[1]].shape
    x = tracer.axis(op.inputs[0])
    if op.kind == "CONV_2D" and len(x) != w[3]:
        tracer.unknown(op, f"reaches the grouped convolution {shown(op.name)}")
        return
    if op.kind == "FULLY_CONNECTED" and len(x) != w[1]:
        shape = graph[op.inputs[0]].shape
        if int(np.prod(shape[1:])) == w[1] and len(x) == shape[-1]:
            x = x.repeated(w[1] // max(len(x), 1))
        else:
            tracer.freeze(x, f"reaches {shown(op.name)}, whose input columns cannot be mapped")
            x = _Axis.fixed(w[1])
    tracer.columns[index] = x
    tracer.axes[op.outputs[0]] = _Axis.fresh(tracer.new_group(w[0], op.name), w[0])


def _depthwise(tracer: _Tracer, index: int, op: Op) -> None:
    if int(op.attrs.get("multiplier", 1)) != 1:
        tracer.unknown(op, f"reaches {shown(op.name)}, a depthwise convolution with multiplier > 1")
    else:
        tracer.axes[op.outputs[0]] = tracer.axis(op.inputs[0])


def _pass_through(tracer: _Tracer, index: int, op: Op) -> None:
    tracer.axes[op.outputs[0]] = tracer.axis(op.inputs[0])


def _elementwise(tracer: _Tracer, index: int, op: Op) -> None:
    """Operands as wide as the output are tied; narrower ones (last axis 1) broadcast; constants are sliced."""
    width = _last(tracer.graph, op.outputs[0])
    operands = [n for n in op.inputs if n in tracer.axes]
    wide = [tracer.axis(n) for n in operands if _last(tracer.graph, n) == width]
    if not wide:
        tracer.unknown(op, f"broadcast across channels by {op.kind} {shown(op.name)}")
        return
    for n in operands:
        if _last(tracer.graph, n) != width:
            tracer.freeze(tracer.axis(n), f"broadcast across channels by {op.kind} {shown(op.name)}")
    for other in wide[1:]:
        tracer.tie(wide[0], other, f"tied by {op.kind} {shown(op.name)} to channels in another order")
    tracer.axes[op.outputs[0]] = wide[0]


def _concatenation(tracer: _Tracer, index: int, op: Op) -> None:
    parts = [tracer.axes.get(n) or _Axis.fixed(_last(tracer.graph, n)) for n in op.inputs]
    if int(op.attrs["axis"]) == len(tracer.graph[op.outputs[0]].shape) - 1:
        tracer.axes[op.outputs[0]] = _Axis.joined(parts)
        return
    for other in parts[1:]:
        tracer.tie(parts[0], other, f"tied by {shown(op.name)} to channels in another order")
    tracer.axes[op.outputs[0]] = parts[0]


def _reshape(tracer: _Tracer, index: int, op: Op) -> None:
    """Keeping the last axis passes channels; flattening trailing axes into it repeats them (NHWC order)."""
    x, y = tracer.graph[op.inputs[0]].shape, tracer.graph[op.outputs[0]].shape
    axis = tracer.axis(op.inputs[0])
    if y and x and y[-1] == x[-1]:
        tracer.axes[op.outputs[0]] = axis
        return
    trailing = [int(np.prod(x[k:])) for k in range(1, len(x))]
    if y and x and y[-1] in trailing:
        tracer.axes[op.outputs[0]] = axis.repeated(y[-1] // x[-1])
        return
    tracer.unknown(op, f"reaches the reshape {shown(op.name)}, which moves the channel axis")


def _keeps_last_axis(tracer: _Tracer, index: int, op: Op) -> None:
    """MEAN, TRANSPOSE and PAD pass channels while they leave the channel axis alone."""
    rank = len(tracer.graph[op.inputs[0]].shape)
    if op.kind == "MEAN":
        keeps = rank - 1 not in tuple(op.attrs["axes"])
    elif op.kind == "TRANSPOSE":
        keeps = tuple(op.attrs["perm"])[-1] == rank - 1
    else:
        keeps = tuple(op.attrs["pads"][-1]) == (0, 0)
    if keeps:
        _pass_through(tracer, index, op)
    else:
        tracer.unknown(op, f"reaches {op.kind} {shown(op.name)}, which works across channels")


_RULES: dict[str, Callable[[_Tracer, int, Op], None]] = {
    "CONV_2D": _layer, "FULLY_CONNECTED": _layer, "DEPTHWISE_CONV_2D": _depthwise,
    "CONCATENATION": _concatenation, "RESHAPE": _reshape,
    "MEAN": _keeps_last_axis, "TRANSPOSE": _keeps_last_axis, "PAD": _keeps_last_axis,
}


@dataclass(frozen=True)
class ChannelAnalysis:
    """A traced graph: channel axes and weight columns in group indices, and the groups."""

    graph: Graph
    axes: dict[str, _Axis]
    columns: dict[int, _Axis]
    groups: tuple[ChannelGroup, ...]

    @property
    def prunable(self) -> list[ChannelGroup]:
        return [g for g in self.groups if g.prunable]


def analyse_channels(graph: Graph) -> ChannelAnalysis:
    """The channel groups of `graph` and which group and channel owns each index of every activation's channel
    axis and of every CONV_2D / FULLY_CONNECTED weight's input columns (the graph is not checked: see
    check_float_graph)."""
    tracer = _Tracer(graph)
    tracer.trace()
    members: dict[int, list[int]] = {}
    for g in range(len(tracer.parent)):
        members.setdefault(tracer.find(g), []).append(g)  # each list ascending: its first is the first layer
    roots = sorted(members, key=lambda r: members[r][0])
    index = np.full(len(tracer.parent) + 1, FIXED)  # group -> its group's index; index[FIXED] is FIXED
    for i, r in enumerate(roots):
        index[members[r]] = i
    reasons = {tracer.find(g): why for g, why in sorted(tracer.reasons.items(), reverse=True)}

    def renumber(axis: _Axis) -> _Axis:
        return _Axis(index[axis.groups], axis.channels)

    axes = {n: renumber(a) for n, a in tracer.axes.items()}
    groups = []
    for i, r in enumerate(roots):
        sizes = {tracer.sizes[g] for g in members[r]}
        why = reasons.get(r, "" if len(sizes) == 1 else "ties channel sets of different sizes")
        tensors = tuple(n for n, a in axes.items() if i in a.owners())
        groups.append(ChannelGroup(i, max(sizes), tuple(tracer.layers[g] for g in members[r]), tensors, not why, why))
    return ChannelAnalysis(graph, axes, {k: renumber(a) for k, a in tracer.columns.items()}, tuple(groups))


def channel_groups(graph: Graph) -> list[ChannelGroup]:
    """The channel groups of a float graph (see the module docstring), in the order their first layer runs."""
    check_float_graph(graph)
    return list(analyse_channels(graph).groups)


# ---------------------------------------------------------------- removing channels


def _constant_slices(analysis: ChannelAnalysis, index: int, op: Op, masks: Mapping[int, np.ndarray],
                     out: np.ndarray) -> list[tuple[str, dict[int, np.ndarray]]]:
    """The constant operands of `op` that lose indices, with the mask of indices kept per axis."""
    graph = analysis.graph
    bias = [(op.inputs[2], {0: out})] if len(op.inputs) > 2 and op.inputs[2] else []
    if op.kind in ("CONV_2D", "FULLY_CONNECTED") and index in analysis.columns:
        columns = analysis.columns[index].kept(masks)
        return [(op.inputs[1], {0: out, 3 if op.kind == "CONV_2D" else 1: columns})] + bias
    if op.kind == "DEPTHWISE_CONV_2D":
        return [(op.inputs[1], {3: out})] + bias
    if op.kind in ELEMENTWISE:
        return [(n, {len(graph[n].shape) - 1: out}) for n in op.inputs
                if n and graph[n].is_const and graph[n].shape and graph[n].shape[-1] == len(out)]
    return []


def remove_channels(analysis: ChannelAnalysis, masks: Mapping[int, np.ndarray]) -> Graph:
    """The graph without the channels `masks` drops (group index -> boolean mask of the channels kept, one
    entry for every group of `analysis`, all True for a group that keeps them all): activation shapes,
    weights, biases and constants sliced; the result passes the IR's validation (float allowed)."""
    graph = analysis.graph
    tensors = dict(graph.tensors)
    kept = {n: axis.kept(masks) for n, axis in analysis.axes.items()}
    for name, keep in kept.items():
        if not keep.all():
            t = graph[name]
            tensors[name] = replace(t, shape=(*t.shape[:-1], int(keep.sum())))
    for index, op in enumerate(graph.ops):
        if not op.outputs or op.outputs[0] not in kept:
            continue
        for name, axes in _constant_slices(analysis, index, op, masks, kept[op.outputs[0]]):
            data = np.asarray(graph[name].data)
            for axis, keep in axes.items():
                if not keep.all():
                    data = np.compress(keep, data, axis=axis)
            tensors[name] = replace(graph[name], data=data, shape=data.shape)
    pruned = graph.with_ops(graph.ops, tensors)
    validate(pruned, allow_float=True)
    return pruned


def param_count(graph: Graph) -> int:
    """Constant values (weights, biases) the graph's ops read."""
    return sum(opinfo.params(op, graph) for op in graph.ops)


def check_float_graph(graph: Graph) -> None:
    """UsageError unless every activation of `graph` is float32 and not quantized."""
    for name in graph.activations():
        t = graph[name]
        if t.dtype != "float32" or t.quant is not None:
            raise UsageError(f"channel pruning works on float graphs (from_torch), before quantization: tensor "
                             f"{shown(name)} is {t.dtype}{' quantized' if t.quant is not None else ''}")
