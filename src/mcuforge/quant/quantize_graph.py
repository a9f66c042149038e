"""A float IR graph and the real ranges of its activations -> an int8 IR graph (TFLite int8 conventions).

- Activations: per-tensor asymmetric int8 from their range (lo <= 0 <= hi): scale = (hi - lo) / 255,
  zero point = round(-128 - lo / scale). An all-zero range becomes [0, 1].
- Weights: symmetric int8 in [-127, 127]; per output channel for CONV_2D (axis 0) and DEPTHWISE_CONV_2D
  (axis 3), per tensor for FULLY_CONNECTED. Bias: int32, scale input_scale * weight_scale, zero point 0.
  A weight scale is raised where the bias would not fit in 2^30 steps (a channel of near-zero weights
  with a real bias, e.g. after batch-norm folding); a zero channel with no bias gets a tiny scale.
- Tensors that TFLite's int8 kernels pass through without rescaling share one quantization (a group):
  the input and output of pools, RESHAPE, TRANSPOSE, RELU6, PAD, STRIDED_SLICE, RESIZE_NEAREST_NEIGHBOR
  and REDUCE_MAX; all inputs and the output of a CONCATENATION (TFLM copies bytes). A group's range is
  the union of its members' ranges.
- Fixed outputs, as TFLite requires: SOFTMAX and LOGISTIC 1/256 and -128, TANH 1/128 and 0, LOG_SOFTMAX
  16/256 and 127. A concatenation input with fixed parameters that the output cannot share gets an
  int8 -> int8 QUANTIZE in front of the concatenation instead.
- Lower bounds TFLite puts on scales (ADD/SUB output > 2 max(input scales) / 2^20, HARD_SWISH output >
  input / 128, SOFTMAX / LOGISTIC / TANH inputs not vanishingly small) widen a group's scale, keeping its
  zero point.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import ModelError, shown
from ..ir import Graph, Op, QuantParams, Tensor
from ..ir.passes import fold_pads, validate
from . import intmath
from .observers import INT8_LEVELS, Range, with_zero

FIXED_OUTPUT: dict[str, tuple[float, int]] = {"SOFTMAX": (1 / 256, -128), "LOGISTIC": (1 / 256, -128),
                                              "TANH": (1 / 128, 0), "LOG_SOFTMAX": (16 / 256, 127)}
SAME_AS_INPUT = frozenset({"MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "TRANSPOSE", "RELU6", "PAD",
                           "STRIDED_SLICE", "RESIZE_NEAREST_NEIGHBOR", "REDUCE_MAX"})
OWN_RANGE = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "RELU",
                       "LEAKY_RELU", "HARD_SWISH", "MEAN"})
SUPPORTED = frozenset(FIXED_OUTPUT) | SAME_AS_INPUT | OWN_RANGE | {"CONCATENATION"}
WEIGHT_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": None}  # None: per tensor

DEAD_RANGE = (0.0, 1.0)  # stands in for a range of width ~0 (a tensor that was always 0)
DEAD_WIDTH = 1e-8
WEIGHT_LEVELS = 127
BIAS_LIMIT = float(1 << 30)  # largest |bias| in steps: leaves headroom in the int32 accumulator
TINY_WEIGHT_SCALE = 1e-12
SCALE_MARGIN = 1.001  # scales forced up to a TFLite bound go this much past it
# (op, real weights, real bias or None, input scale) -> weight_grids.LayerWeights: scales, codes, axis
WeightGrid = Callable[[Op, np.ndarray, "np.ndarray | None", float], Any]


# ---------------------------------------------------------------- parameters of one tensor


def activation_quant(lo: float, hi: float) -> QuantParams:
    """Per-tensor asymmetric int8 parameters covering [lo, hi] (0 always included)."""
    lo, hi = with_zero(lo, hi)
    if hi - lo < DEAD_WIDTH:
        lo, hi = DEAD_RANGE
    scale = float(np.float32((hi - lo) / INT8_LEVELS))
    zero_point = int(np.clip(intmath.tfl_round(-128.0 - lo / scale), -128, 127))
    return QuantParams.per_tensor(scale, zero_point)


def bias_peaks(bias: np.ndarray | None, per_channel: bool) -> np.ndarray | None:
    """The largest |bias| each weight scale must also carry: one per channel, or one for a per-tensor scale."""
    if bias is None:
        return None
    peaks = np.abs(np.asarray(bias, np.float64).ravel())
    return peaks if per_channel else peaks.max(initial=0.0, keepdims=True)


def floored_scales(scales: np.ndarray, peaks: np.ndarray | None, input_scale: float) -> np.ndarray:
    """Weight scales as float32, each raised so that its bias peak stays within BIAS_LIMIT steps of
    input_scale x scale, and to TINY_WEIGHT_SCALE."""
    if peaks is not None:
        scales = np.maximum(scales, peaks / (float(input_scale) * BIAS_LIMIT))
    return np.maximum(scales, TINY_WEIGHT_SCALE).astype(np.float32)


def weight_scales(channels: np.ndarray, bias_peaks: np.ndarray | None, input_scale: float) -> np.ndarray:
    """Symmetric float32 scales of real weights given channels first ([C, ...]; C = 1 for per tensor), and
    the largest |bias| each scale must also carry."""
    scales = np.abs(channels.reshape(channels.shape[0], -1)).max(axis=1).astype(np.float64) / WEIGHT_LEVELS
    return floored_scales(scales, bias_peaks, input_scale)


def quantize_symmetric(channels: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """int8 weights [C, ...] from real weights [C, ...] and one scale per channel."""
    per_channel = scales.astype(np.float64).reshape((-1,) + (1,) * (channels.ndim - 1))
    return np.clip(np.round(channels / per_channel), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)


def bias_scales(input_scale: float, scales: np.ndarray) -> np.ndarray:
    return (np.float32(input_scale) * scales.astype(np.float32)).astype(np.float32)


def quantize_bias(bias: np.ndarray, scales: np.ndarray) -> np.ndarray:
    steps = np.round(bias.astype(np.float64) / scales.astype(np.float64))
    return np.clip(steps, intmath.INT32_MIN, intmath.INT32_MAX).astype(np.int32)


def _symmetric(scales: np.ndarray, axis: int | None) -> QuantParams:
    return QuantParams(scales.astype(np.float32), np.zeros(scales.size, np.int64), axis)


# ---------------------------------------------------------------- groups of tensors sharing parameters


@dataclass
class Groups:
    """Union-find over activation names; a root may carry fixed (scale, zero point)."""

    parent: dict[str, str] = field(default_factory=dict)
    fixed: dict[str, tuple[float, int]] = field(default_factory=dict)

    def find(self, name: str) -> str:
        root = name
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while name != root:  # path compression
            self.parent[name], name = root, self.parent.get(name, root)
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        fa, fb = self.fixed.get(ra), self.fixed.get(rb)
        if fa is not None and fb is not None and fa != fb:
            raise ModelError(f"tensors {a!r} and {b!r} must share quantization but have fixed parameters "
                             f"{fa} and {fb}")
        self.parent[rb] = ra
        if fb is not None:
            self.fixed[ra] = self.fixed.pop(rb)

    def fixed_of(self, name: str) -> tuple[float, int] | None:
        return self.fixed.get(self.find(name))

    def members(self, names: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for n in names:
            out.setdefault(self.find(n), []).append(n)
        return out


def _check_supported(graph: Graph) -> None:
    for op in graph.ops:
        if op.kind not in SUPPORTED:
            raise ModelError(f"{op.kind} {shown(op.name)}: post-training quantization does not support this operator "
                             f"(supported: {', '.join(sorted(SUPPORTED))})")
    for name in graph.activations():
        if graph[name].dtype != "float32":
            raise ModelError(f"tensor {shown(name)} is {graph[name].dtype}: quantize takes a float32 graph")


def tie_groups(graph: Graph) -> tuple[Groups, set[tuple[int, str]]]:
    """The groups of tensors that must share quantization, and the (concat op index, input) pairs that
    get a requantizing QUANTIZE instead of joining their concatenation's group."""
    groups = Groups()
    for op in graph.ops:
        if op.kind in SAME_AS_INPUT:
            groups.union(op.inputs[0], op.outputs[0])
    for op in graph.ops:
        if op.kind in FIXED_OUTPUT:
            groups.fixed[groups.find(op.outputs[0])] = FIXED_OUTPUT[op.kind]
    requantized: set[tuple[int, str]] = set()
    for i, op in enumerate(graph.ops):
        if op.kind != "CONCATENATION":
            continue
        fixed = {groups.fixed_of(n) for n in op.inputs}
        share_fixed = len(fixed) == 1 and None not in fixed  # all inputs fixed alike: the output follows
        for name in op.inputs:
            if share_fixed or groups.fixed_of(name) is None:
                groups.union(op.outputs[0], name)
            else:
                requantized.add((i, name))
    return groups, requantized


def group_params(graph: Graph, groups: Groups, ranges: Mapping[str, Range]) -> dict[str, QuantParams]:
    """Parameters of every group root: fixed ones, else from the union of the members' ranges."""
    params: dict[str, QuantParams] = {}
    for root, names in groups.members(graph.activations()).items():
        fixed = groups.fixed.get(root)
        if fixed is not None:
            params[root] = QuantParams.per_tensor(*fixed)
            continue
        seen = [ranges[n] for n in names if n in ranges]
        if not seen:
            raise ModelError(f"no calibration range for tensor(s) {', '.join(repr(n) for n in names)}")
        params[root] = activation_quant(min(r[0] for r in seen), max(r[1] for r in seen))
    return params


# ---------------------------------------------------------------- TFLite's lower bounds on scales


def scale_floors(op: Op, scale_of: Callable[[str], float]) -> list[tuple[str, float]]:
    """(tensor, smallest scale TFLite's kernel accepts for it) pairs of one op."""
    if op.kind in ("ADD", "SUB"):
        twice_max = 2.0 * max(scale_of(op.inputs[0]), scale_of(op.inputs[1]))
        return [(op.outputs[0], twice_max / (1 << 20))]
    if op.kind == "HARD_SWISH":
        return [(op.outputs[0], scale_of(op.inputs[0]) / 128.0)]
    if op.kind in ("SOFTMAX", "LOG_SOFTMAX"):
        return [(op.inputs[0], 2.0 ** -26 / float(op.attrs.get("beta", 1.0)))]
    if op.kind in ("LOGISTIC", "TANH"):
        return [(op.inputs[0], 2.0 ** -28)]
    return []


def enforce_scale_floors(graph: Graph, groups: Groups, params: dict[str, QuantParams]) -> None:
    """Widens (in place) every group whose scale is below a kernel's bound; repeats until none is."""

    def scale_of(name: str) -> float:
        return params[groups.find(name)].s

    for _ in range(len(graph.ops) + 1):
        changed = False
        for op in graph.ops:
            for name, floor in scale_floors(op, scale_of):
                root = groups.find(name)
                if params[root].s >= floor:
                    continue
                if root in groups.fixed:
                    raise ModelError(f"{op.kind} {shown(op.name)}: tensor {shown(name)} has fixed scale {params[root].s:g}, "
                                     f"below the {floor:g} TFLite needs")
                params[root] = QuantParams.per_tensor(float(np.float32(floor * SCALE_MARGIN)), params[root].zp)
                changed = True
        if not changed:
            return
    raise ModelError("scale bounds of the graph's kernels do not settle")


# ---------------------------------------------------------------- the int8 graph


def _channels_first(real: np.ndarray, axis: int | None) -> np.ndarray:
    return np.moveaxis(real, axis, 0) if axis is not None else real.reshape(1, -1)


def layer_weight_scales(kind: str, weights: np.ndarray, bias: np.ndarray | None, input_scale: float) -> np.ndarray:
    """The float32 weight scales of a CONV_2D / DEPTHWISE_CONV_2D (one per output channel) or
    FULLY_CONNECTED (one) with these real weights (IR layout), bias and input scale."""
    axis = WEIGHT_AXIS[kind]
    channels = _channels_first(np.asarray(weights, np.float64), axis)
    return weight_scales(channels, bias_peaks(bias, axis is not None), input_scale)


def quantized_constants(op: Op, graph: Graph, input_scale: float, grid: WeightGrid | None = None) -> list[Tensor]:
    """int8 weights and (if the op has one) int32 bias of a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED;
    `grid` gives the weights' scales and codes in a format other than int8 (weight_grids.quantize_layer)."""
    w, bias_name = graph[op.inputs[1]], op.inputs[2] if len(op.inputs) > 2 else ""
    if w.data is None:
        raise ModelError(f"{op.kind} {shown(op.name)}: weights {shown(w.name)} must be constant")
    real = np.asarray(w.data, np.float64)
    bias = np.asarray(graph[bias_name].data, np.float64).ravel() if bias_name else None
    if grid is None:
        axis = WEIGHT_AXIS[op.kind]
        scales = layer_weight_scales(op.kind, real, bias, input_scale)
        q = quantize_symmetric(_channels_first(real, axis), scales)
        data = np.moveaxis(q, 0, axis) if axis is not None else q.reshape(real.shape)
    else:
        layer = grid(op, real, bias, input_scale)
        axis, scales, data = layer.axis, layer.scales, layer.codes
    out = [Tensor(w.name, w.shape, "int8", _symmetric(scales, axis), np.ascontiguousarray(data))]
    if bias is not None:
        b_scales = bias_scales(input_scale, scales)
        steps = quantize_bias(bias, np.broadcast_to(b_scales, bias.shape))
        out.append(Tensor(bias_name, graph[bias_name].shape, "int32",
                          _symmetric(b_scales, None if axis is None else 0), steps))
    return out


def _same_constant(a: Tensor, b: Tensor) -> bool:
    assert a.data is not None and b.data is not None and a.quant is not None and b.quant is not None
    return (a.dtype == b.dtype and np.array_equal(a.data, b.data)
            and np.array_equal(a.quant.scale, b.quant.scale))


def _with_quantized_constants(op: Op, graph: Graph, input_scale: float, tensors: dict[str, Tensor],
                              grid: WeightGrid | None) -> Op:
    """Adds the op's quantized weights and bias to `tensors`; a constant that another op shares but
    quantizes differently (another input scale) gets a copy under a new name."""
    names = []
    for t in quantized_constants(op, graph, input_scale, grid):
        if t.name in tensors and not _same_constant(tensors[t.name], t):
            t = replace(t, name=_unique_name(f"{t.name}/{op.name}", tensors))
        tensors[t.name] = t
        names.append(t.name)
    return op.with_(inputs=(op.inputs[0], *names, *op.inputs[1 + len(names):]))


def _unique_name(base: str, taken: Mapping[str, object]) -> str:
    name, n = base, 1
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _scale(tensors: Mapping[str, Tensor], name: str) -> float:
    q = tensors[name].quant
    assert q is not None
    return q.s


def _requantized_inputs(op: Op, sources: set[str], tensors: dict[str, Tensor]) -> tuple[list[Op], Op]:
    """int8 -> int8 QUANTIZE ops taking the inputs `sources` of `op` to its output's parameters (their
    outputs are added to `tensors`), and `op` reading those instead."""
    target = tensors[op.outputs[0]].quant
    assert target is not None
    requantize_ops: list[Op] = []
    renamed: dict[str, str] = {}
    for source in sorted(sources, key=op.inputs.index):
        name = _unique_name(f"{source}/requantized", tensors)
        tensors[name] = Tensor(name, tensors[source].shape, "int8", target)
        requantize_ops.append(Op("QUANTIZE", (source,), (name,)))
        renamed[source] = name
    return requantize_ops, op.with_(inputs=tuple(renamed.get(n, n) for n in op.inputs))


def _quantized_op(op: Op, tensors: Mapping[str, Tensor]) -> Op:
    if op.kind != "PAD":
        return op
    q = tensors[op.outputs[0]].quant
    assert q is not None
    fill = q.zp + intmath.tfl_round(float(op.attrs.get("value", 0.0)) / q.s)
    return op.with_(attrs={**op.attrs, "value": int(np.clip(fill, -128, 127))})


def activation_params(float_graph: Graph, ranges: Mapping[str, Range]) -> dict[str, QuantParams]:
    """The int8 parameters `quantize_with_ranges` gives each activation of a float32 graph, by name
    (shared groups, fixed outputs and scale floors applied)."""
    _check_supported(float_graph)
    groups, _ = tie_groups(float_graph)
    params = group_params(float_graph, groups, ranges)
    enforce_scale_floors(float_graph, groups, params)
    return {name: params[groups.find(name)] for name in float_graph.activations()}


def quantize_with_ranges(float_graph: Graph, ranges: Mapping[str, Range], grid: WeightGrid | None = None) -> Graph:
    """The int8 graph of a float32 graph, given the real range (lo, hi) of its activations by name. `grid`:
    the scales and codes of the layers' weights (qat's low-bit formats); int8's when not given."""
    params = activation_params(float_graph, ranges)
    _, requantized = tie_groups(float_graph)
    tensors: dict[str, Tensor] = {}
    for name in float_graph.activations():
        t = float_graph[name]
        tensors[name] = Tensor(name, t.shape, "int8", params[name])
    ops: list[Op] = []
    for i, op in enumerate(float_graph.ops):
        if op.kind in WEIGHT_AXIS:
            op = _with_quantized_constants(op, float_graph, _scale(tensors, op.inputs[0]), tensors, grid)
        if op.kind == "CONCATENATION":
            requantize_ops, op = _requantized_inputs(op, {n for j, n in requantized if j == i}, tensors)
            ops.extend(requantize_ops)
        ops.append(_quantized_op(op, tensors))
    graph = Graph(tensors, ops, float_graph.inputs, float_graph.outputs, float_graph.name)
    graph = fold_pads(graph.with_ops(graph.ops))
    validate(graph)
    return graph
