"""Which channels structured pruning removes, and how many: importance criteria, the complexity-driven modes
and `prune_channels`, the pass itself (compress.channels finds the channel groups and removes channels).

    graph = from_torch(model, example)                        # float32, NHWC, batch norm folded
    pruned, report = prune_channels(graph, 0.5, mode="flops")  # half the MACs gone
    print("\\n".join(report.lines()))
    qat = prepare_qat(pruned, calibration=x[:512])            # fine-tune, then convert and compile

Importance of a channel: "l1" / "l2", the norm of its weights over every layer of the group that writes
it (convolutions, fully connected and depthwise layers; batch norm's scale is folded into these weights,
so this is also the BN-scale criterion); "taylor", |sum of w * dL/dw| over each such layer's weights of
the channel, summed over the layers, from gradients `taylor_gradients` accumulates.

How many channels each group loses (`mode`): "uniform", the share `amount` of every prunable group;
"params" / "flops" / "memory", a ratio per group proportional to the group's share of the parameters /
MACs / bytes live at the peak of the engine's memory plan, scaled (bisection) until the model's total
drops by `amount`, each ratio at most MAX_RATIO and at least one channel kept. For "memory" the planner
plans an int8 version of the graph as compile_model's layer-by-layer schedule does (ops reordered for
memory; `peak_sram`); when pruning moves the peak to tensors of other groups, their bytes there join the
shares and the fit runs again. The channels kept are those of highest importance.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..engine import opinfo
from ..engine.plan.blocks import live_set
from ..engine.plan.reorder import reorder_for_memory
from ..engine.plan.scratch import scratch_bytes
from ..errors import UsageError, shown
from ..ir import Graph
from ..quant.quantize_graph import quantize_with_ranges
from .channels import (
    WEIGHTED,
    ChannelAnalysis,
    ChannelGroup,
    analyse_channels,
    check_float_graph,
    param_count,
    remove_channels,
)

CRITERIA = ("l1", "l2", "taylor")
MODES = ("uniform", "params", "flops", "memory")
MAX_RATIO = 0.9  # the largest share of one group's channels the complexity modes remove
_BISECTIONS = 40
_MEMORY_ROUNDS = 6


@dataclass(frozen=True)
class GroupChange:
    index: int
    layers: tuple[str, ...]
    before: int
    after: int


@dataclass(frozen=True)
class ChannelReport:
    """What `prune_channels` did: channels per group, and the model's parameters and MACs (peak SRAM for
    mode "memory") before and after; `reached` is the reduction of the mode's quantity achieved."""

    mode: str
    importance: str
    amount: float
    reached: float
    groups: tuple[GroupChange, ...]
    params: tuple[int, int]
    macs: tuple[int, int]
    peak_sram: tuple[int, int] | None = None

    def lines(self) -> list[str]:
        out = [(f"channel pruning, mode {self.mode}, importance {self.importance}: asked {self.amount:.0%}, "
                f"reached {self.reached:.1%}"),
               f"params {self.params[0]:,} -> {self.params[1]:,}, MACs {self.macs[0]:,} -> {self.macs[1]:,}"]
        if self.peak_sram is not None:
            out.append(f"peak SRAM {self.peak_sram[0]:,} B -> {self.peak_sram[1]:,} B")
        out += [f"  group {g.index} ({', '.join(g.layers)}): {g.before} -> {g.after}" for g in self.groups]
        return out


# ---------------------------------------------------------------- importance


def _layer_terms(w: np.ndarray, grad: np.ndarray | None, axis: int, criterion: str) -> np.ndarray:
    """One value per output channel of one layer's weights `w` (channels along `axis`)."""
    other = tuple(a for a in range(w.ndim) if a != axis)
    w = w.astype(np.float64)
    if criterion == "l1":
        return np.abs(w).sum(axis=other)
    if criterion == "l2":
        return (w * w).sum(axis=other)
    return np.abs((w * grad.astype(np.float64)).sum(axis=other))


def _scores(analysis: ChannelAnalysis, criterion: str,
            gradients: Mapping[str, np.ndarray] | None) -> dict[int, np.ndarray]:
    graph = analysis.graph
    scores = {g.index: np.zeros(g.channels) for g in analysis.prunable}
    for op in graph.ops:
        axis = analysis.axes.get(op.outputs[0]) if op.kind in WEIGHTED else None
        if axis is None or not axis.owners() & scores.keys():
            continue
        name = op.inputs[1]
        grad = _gradient(gradients, name, graph[name].shape) if criterion == "taylor" else None
        terms = _layer_terms(np.asarray(graph[name].data), grad, 3 if op.kind == "DEPTHWISE_CONV_2D" else 0,
                             criterion)
        for g in axis.owners() & scores.keys():
            at = axis.groups == g
            np.add.at(scores[g], axis.channels[at], terms[at])
    return {g: np.sqrt(s) for g, s in scores.items()} if criterion == "l2" else scores


def _gradient(gradients: Mapping[str, np.ndarray] | None, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if gradients is None or name not in gradients:
        raise UsageError(f"taylor importance needs the gradient of every weight tensor; {shown(name)} has none "
                         "(see taylor_gradients)")
    grad = np.asarray(gradients[name])
    if grad.shape != shape:
        raise UsageError(f"the gradient of {shown(name)} has shape {list(grad.shape)}, its weights {list(shape)}")
    return grad


def channel_importance(graph: Graph, criterion: str = "l1",
                       gradients: Mapping[str, np.ndarray] | None = None) -> dict[int, np.ndarray]:
    """Importance of each channel of each prunable group (group index -> one value per channel)."""
    check_float_graph(graph)
    _check_choice("importance", criterion, CRITERIA)
    return _scores(analyse_channels(graph), criterion, gradients)


def taylor_gradients(graph: Graph, x: np.ndarray, y: np.ndarray, batches: int = 8,
                     batch_size: int = 32) -> dict[str, np.ndarray]:
    """dL/dw of every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED weight tensor, summed over the first
    `batches` batches of `x` (IR layout, e.g. [N, H, W, C]) with labels `y`; L is the cross entropy of
    the graph's one output (logits, or the probabilities of a final SOFTMAX)."""
    import torch
    import torch.nn.functional as F

    from ..quant.torch_graph import TorchGraph

    check_float_graph(graph)
    if len(graph.outputs) != 1 or len(graph.inputs) != 1:
        raise UsageError("taylor_gradients needs a graph with one input and one output")
    if len(x) != len(y) or len(x) == 0:
        raise UsageError(f"taylor_gradients: {len(x)} samples and {len(y)} labels")
    module = TorchGraph(graph)
    probabilities = graph.ops[-1].kind == "SOFTMAX" and graph.ops[-1].outputs[0] == graph.outputs[0]
    for start in range(0, min(len(x), batches * batch_size), batch_size):
        xb = torch.as_tensor(np.asarray(x[start:start + batch_size], np.float32))
        yb = torch.as_tensor(np.asarray(y[start:start + batch_size], np.int64))
        out = module(xb)[0].reshape(len(xb), -1)
        loss = F.nll_loss(torch.log(out.clamp_min(1e-12)), yb) if probabilities else F.cross_entropy(out, yb)
        loss.backward()
    weights = {op.inputs[1] for op in graph.ops if op.kind in WEIGHTED}
    return {n: module.parameter(n).grad.detach().numpy().copy() for n in weights
            if module.parameter(n).grad is not None}


# ---------------------------------------------------------------- candidates and their peak SRAM


def _masks(analysis: ChannelAnalysis, scores: Mapping[int, np.ndarray],
           counts: Mapping[int, int]) -> dict[int, np.ndarray]:
    """Group -> the channels kept: the `counts[g]` of highest score (the lower index first on a tie)."""
    masks = {}
    for g in analysis.groups:
        keep = np.ones(g.channels, bool)
        if counts.get(g.index, g.channels) < g.channels:
            keep[:] = False
            keep[np.argsort(-scores[g.index], kind="stable")[:counts[g.index]]] = True
        masks[g.index] = keep
    return masks


def _peak(graph: Graph) -> tuple[int, dict[str, int]]:
    """Peak SRAM of a float graph as compile_model's layer-by-layer schedule plans its int8 version (ops
    reordered for memory; ranges do not change sizes, so (-1, 1) for all), and the bytes each activation
    (or the kernel scratch of the op reading it) holds at the peak step."""
    int8 = quantize_with_ranges(graph, {n: (-1.0, 1.0) for n in graph.activations()})
    reordering = reorder_for_memory(int8)
    ordered, plan = reordering.graph, reordering.plan
    found = live_set(ordered, plan.align, bool(plan.inplace_ops),
                     lambda op, inplace: scratch_bytes(op, ordered, inplace))
    step, held = plan.peak_step, {}
    for block in found.blocks:
        if not block.start <= step <= block.end:
            continue
        if block.scratch_op is not None:
            owner = ordered.ops[block.scratch_op].inputs[0]
        else:
            live = [n for n in block.tensors if found.lifetimes[n].start <= step <= found.lifetimes[n].end]
            owner = (live or list(block.tensors))[0]
        held[owner] = held.get(owner, 0) + block.footprint[step - block.start]
    return plan.sram_bytes, held


def peak_sram(graph: Graph) -> int:
    """The peak SRAM (bytes) compile_model's layer-by-layer plan gives the int8 version of a float graph."""
    return _peak(graph)[0]


class _Candidates:
    """Pruned versions of one analysed graph by channel counts, each built and measured once."""

    def __init__(self, analysis: ChannelAnalysis, scores: Mapping[int, np.ndarray]) -> None:
        self.analysis, self.scores = analysis, scores
        self._graphs: dict[tuple, Graph] = {}
        self._values: dict[tuple, int] = {}

    def graph(self, counts: Mapping[int, int]) -> Graph:
        key = tuple(sorted(counts.items()))
        if key not in self._graphs:
            self._graphs[key] = remove_channels(self.analysis, _masks(self.analysis, self.scores, counts))
        return self._graphs[key]

    def measure(self, counts: Mapping[int, int], mode: str) -> int:
        key = (mode, *sorted(counts.items()))
        if key not in self._values:
            graph = self.graph(counts)
            self._values[key] = (param_count(graph) if mode == "params" else opinfo.total_macs(graph)
                                 if mode == "flops" else _peak(graph)[0])
        return self._values[key]

    def held(self, counts: Mapping[int, int]) -> dict[int, float]:
        """Bytes each prunable group holds at the planned peak of the graph pruned to `counts`."""
        analysis = self.analysis
        masks = _masks(analysis, self.scores, counts)
        shares = {g.index: 0.0 for g in analysis.prunable}
        for name, nbytes in _peak(self.graph(counts))[1].items():
            axis = analysis.axes.get(name)
            if axis is None:
                continue
            owners = axis.groups[axis.kept(masks)]
            for g in axis.owners() & shares.keys():
                shares[g] += nbytes * np.count_nonzero(owners == g) / max(len(owners), 1)
        return shares


# ---------------------------------------------------------------- how many channels each group keeps


def _cost_shares(analysis: ChannelAnalysis, mode: str) -> dict[int, float]:
    """Each prunable group's part of the parameters ("params") or MACs ("flops"): every op's count, for each
    group that indexes its output channels or its weights' input channels, times the share of indices it owns."""
    graph = analysis.graph
    shares = {g.index: 0.0 for g in analysis.prunable}
    for index, op in enumerate(graph.ops):
        cost = opinfo.params(op, graph) if mode == "params" else opinfo.macs(op, graph)
        for axis in (analysis.axes.get(op.outputs[0]) if op.outputs else None, analysis.columns.get(index)):
            if cost and axis is not None and len(axis):
                for g in axis.owners() & shares.keys():
                    shares[g] += cost * np.count_nonzero(axis.groups == g) / len(axis)
    return shares


def _fewest(group: ChannelGroup) -> int:
    """The fewest channels a complexity mode leaves a group: MAX_RATIO of them removed, one kept."""
    return group.channels - min(int(round(MAX_RATIO * group.channels)), group.channels - 1)


def _scaled(groups: list[ChannelGroup], weights: Mapping[int, float], k: float) -> dict[int, int]:
    """Channels kept per group when group g loses min(k * its share of `weights`, MAX_RATIO) of them."""
    total = sum(weights.values())
    counts = {}
    for g in groups:
        ratio = min(k * weights[g.index] / total, MAX_RATIO) if total else 0.0
        counts[g.index] = g.channels - min(int(round(ratio * g.channels)), g.channels - 1)
    return counts


def _fit(groups: list[ChannelGroup], weights: Mapping[int, float], reduction: Callable[[dict[int, int]], float],
         amount: float) -> dict[int, int]:
    """The counts of the smallest scale whose `reduction` reaches `amount` (bisection; the counts with every
    weighted group at MAX_RATIO when none does)."""
    total, positive = sum(weights.values()), [w for w in weights.values() if w > 0]
    if not positive or amount == 0:
        return {g.index: g.channels for g in groups}
    lo, hi = 0.0, MAX_RATIO * total / min(positive)
    if reduction(_scaled(groups, weights, hi)) < amount:
        return _scaled(groups, weights, hi)
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        if reduction(_scaled(groups, weights, mid)) >= amount:
            hi = mid
        else:
            lo = mid
    return _scaled(groups, weights, hi)


def _memory_counts(candidates: _Candidates, groups: list[ChannelGroup], amount: float) -> dict[int, int]:
    """Counts that cut the planned peak by `amount`: the groups live at the peak lose channels in proportion to
    their bytes there; when the peak moves to other groups' tensors, their bytes join the shares."""
    full = {g.index: g.channels for g in groups}
    before = candidates.measure(full, "memory")

    def reduction(counts: dict[int, int]) -> float:
        return 1.0 - candidates.measure(counts, "memory") / before

    weights, counts = candidates.held(full), full
    for _ in range(_MEMORY_ROUNDS):
        counts = _fit(groups, weights, reduction, amount)
        if reduction(counts) >= amount:
            break
        held = candidates.held(counts)
        room = {g.index for g in groups if counts[g.index] > _fewest(g)}
        if not any(held[g] > 0 for g in room):
            break  # the peak is set by tensors no group can shrink further
        total, new = sum(weights.values()) or 1.0, sum(held.values())
        weights = {g: weights[g] / total + held[g] / new for g in weights}
    return counts


def _select(candidates: _Candidates, amount: float, mode: str) -> dict[int, int]:
    groups = candidates.analysis.prunable
    if mode == "uniform":
        return {g.index: g.channels - min(int(round(amount * g.channels)), g.channels - 1) for g in groups}
    if mode == "memory":
        return _memory_counts(candidates, groups, amount)
    full = {g.index: g.channels for g in groups}
    before = candidates.measure(full, mode)
    return _fit(groups, _cost_shares(candidates.analysis, mode),
                lambda counts: 1.0 - candidates.measure(counts, mode) / before, amount)


# ---------------------------------------------------------------- the pass


def _check_choice(what: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{what} {value!r}: choose one of {', '.join(choices)}")


def _check_amount(amount: object) -> None:
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or not 0 <= amount < 1:
        raise UsageError(f"pruning amount {amount!r}: give the share to remove in [0, 1), e.g. 0.5")


def prune_channels(graph: Graph, amount: float, *, importance: str = "l1", mode: str = "uniform",
                   gradients: Mapping[str, np.ndarray] | None = None) -> tuple[Graph, ChannelReport]:
    """A new float graph with channels physically removed, and what changed (see the module docstring).

    `amount` in [0, 1): the share of channels removed from each prunable group ("uniform"), or the share of
    the parameters, MACs or planned peak SRAM removed ("params", "flops", "memory"; when the target cannot be
    reached the report's `reached` says how far it got). `importance`: "l1", "l2" or "taylor" (which needs
    `gradients`, weight tensor name -> dL/dw: `taylor_gradients`). The result passes the IR's validation and
    runs in TorchGraph / QATModel."""
    check_float_graph(graph)
    _check_amount(amount)
    _check_choice("mode", mode, MODES)
    _check_choice("importance", importance, CRITERIA)
    analysis = analyse_channels(graph)
    if not analysis.prunable:
        raise UsageError(f"{shown(graph.name)}: no channel group can be pruned (each reaches a graph output or an "
                         "operator whose channel mapping is not known)")
    candidates = _Candidates(analysis, _scores(analysis, importance, gradients))
    counts = _select(candidates, amount, mode)
    pruned = candidates.graph(counts)
    full = {g.index: g.channels for g in analysis.prunable}
    peak = (candidates.measure(full, "memory"), candidates.measure(counts, "memory")) if mode == "memory" else None
    params = (param_count(graph), param_count(pruned))
    macs = (opinfo.total_macs(graph), opinfo.total_macs(pruned))
    reference = {"uniform": (sum(full.values()), sum(counts.values())), "params": params, "flops": macs,
                 "memory": peak}[mode]
    changes = tuple(GroupChange(g.index, g.layers, g.channels, counts[g.index]) for g in analysis.prunable)
    reached = 1.0 - reference[1] / reference[0] if reference[0] else 0.0
    return pruned, ChannelReport(mode, importance, float(amount), reached, changes, params, macs, peak)
