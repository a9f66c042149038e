"""Fused inverted-residual execution: expand (1x1) -> depthwise -> project (1x1) run over slices of the
expanded channels, so neither the expanded tensor E nor the depthwise output D ever exists in full.

    blocks = fusable_blocks(graph)            # index of each block's expand op
    fused = fuse(graph, blocks[0], width=16)  # the block in slices of 16 expanded channels

For each slice [c0, c1) of the expanded channels the rewritten graph runs
    CONV_2D            X -> E[c0:c1]          expand filters c0..c1 (with their bias and scales)
    DEPTHWISE_CONV_2D  E[c0:c1] -> D[c0:c1]   in place over the slice, as layer by layer
    CONV_1X1_ACC       acc += D[c0:c1] . Wp[:, c0:c1]   int32 [N,H',W',C_out], in place over the previous
                                              slice's sums; the first slice starts from the bias
and then ACC_REQUANTIZE acc -> Y, in place, with the projection's requantization.

Bit-exact with layer by layer: an expanded channel depends only on its own filter, so each slice computes
exactly those channels of E and D; the int32 sums are the projection's accumulator added in another order,
exact because every partial sum stays inside int32 (checked: |bias| + 256 * 128 * C_exp < 2^31).

Memory: X, the accumulator (4 bytes per output value) and one slice of E and D are live together, instead
of X + E (or E + D, D + Y). It pays where the expanded tensor is large against four times the block's
output: expansion ratios of 4-6, and above all stride-2 blocks. Narrower slices need less memory but run
more, shorter kernel calls; choose.py takes the widest slices that reach the peak it aims for.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ModelError
from ...ir import Graph, Op, QuantParams, Rewrite, Tensor
from ...ir.graph import clone_tensor
from ...operators.conv_2d import is_pointwise
from ...operators.convolution import conv_geometry

_INT32_MAX = 2**31 - 1
# |x * w| + |zero point * w| for int8 x, zero point and w: bounds every partial sum, and each slice's bias
# with the input offset folded in plus its products (convolution.folded_bias's check, which the codegen uses)
_MAX_TERM = 256 * 128


@dataclass(frozen=True)
class FusedBlock:
    layer: int  # index of the block's expand op in the model (its ops are layer, layer + 1, layer + 2)
    name: str  # the projection's layer name (the block's output)
    expanded: int  # expanded channels
    width: int  # channels per slice (the last slice may be narrower)

    @property
    def slices(self) -> int:
        return -(-self.expanded // self.width)

    def describe(self) -> str:
        return f"layers {self.layer}..{self.layer + 2} in {self.slices} slices of {self.width}/{self.expanded} channels"


def _pointwise(op: Op, graph: Graph) -> bool:
    if op.kind != "CONV_2D":
        return False
    g = conv_geometry(op, graph)
    return (g.groups == 1 and g.stride_h == g.stride_w == 1 and (g.in_h, g.in_w) == (g.out_h, g.out_w)
            and is_pointwise(g.k_h, g.k_w, g.pad_top, g.pad_left, g.in_h, g.in_w, g.out_h, g.out_w, 1, 1))


def _quantized(graph: Graph, op: Op) -> bool:
    """int8 activations and weights with quantization, constant weights, constant int32 bias or none."""
    x, w, y = (graph[n] for n in (op.inputs[0], op.inputs[1], op.outputs[0]))
    bias = graph[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] else None
    return (all(t.dtype == "int8" and t.quant is not None for t in (x, w, y)) and w.is_const
            and (bias is None or (bias.dtype == "int32" and bias.is_const)))


def _sums_fit(graph: Graph, project: Op) -> bool:
    """Every partial sum of the projection stays inside int32, whatever the slices."""
    depth = graph[project.inputs[1]].shape[-1]
    bias = graph[project.inputs[2]].data if len(project.inputs) > 2 and project.inputs[2] else None
    largest = 0 if bias is None or bias.size == 0 else int(np.abs(np.asarray(bias, np.int64)).max())
    return largest + _MAX_TERM * depth <= _INT32_MAX


def is_block(graph: Graph, i: int) -> bool:
    """Whether ops i, i+1, i+2 are an inverted-residual block that can run fused: a pointwise CONV_2D
    (stride 1) whose output feeds only a DEPTHWISE_CONV_2D (multiplier 1) whose output feeds only a
    pointwise CONV_2D (stride 1), all int8, neither intermediate a graph output."""
    if i + 2 >= len(graph.ops):
        return False
    expand, dw, project = graph.ops[i:i + 3]
    e, d = expand.outputs[0], dw.outputs[0]
    try:
        return (_pointwise(expand, graph) and dw.kind == "DEPTHWISE_CONV_2D" and dw.inputs[0] == e
                and project.inputs[0] == d and _pointwise(project, graph)
                and conv_geometry(dw, graph).multiplier == 1
                and all(_quantized(graph, op) for op in (expand, dw, project))
                and graph.consumers(e) == [i + 1] and graph.consumers(d) == [i + 2]
                and e not in graph.outputs and d not in graph.outputs and graph[e].shape[0] == graph[d].shape[0]
                and _sums_fit(graph, project))
    except (ModelError, KeyError, IndexError, ValueError):
        return False


def fusable_blocks(graph: Graph, start: int = 0) -> list[int]:
    """Index of the expand op of every block (is_block) from op `start` on, in order, not overlapping."""
    found, i = [], start
    while i + 2 < len(graph.ops):
        if is_block(graph, i):
            found.append(i)
            i += 3
        else:
            i += 1
    return found


def block_of(graph: Graph, i: int, width: int, layer: int | None = None) -> FusedBlock:
    """The block at ops i..i+2 of `graph` in slices of `width`; `layer`: its index in the model (default i)."""
    return FusedBlock(i if layer is None else layer, graph.ops[i + 2].name, graph[graph.ops[i].outputs[0]].shape[-1],
                      width)


def slice_widths(expanded: int, max_slices: int = 16) -> list[int]:
    """Candidate slice widths of `expanded` channels, widest first: C/2, C/3, ... (rounded up), distinct,
    down to max_slices slices."""
    widths = sorted({-(-expanded // n) for n in range(2, max_slices + 1) if n <= expanded}, reverse=True)
    return [w for w in widths if -(-expanded // w) > 1]


def _channel_slice(t: Tensor, name: str, axis: int, lo: int, hi: int) -> Tensor:
    """Channels lo..hi of a constant along `axis`, with their quantization parameters."""
    assert t.data is not None
    data = np.take(t.data, range(lo, hi), axis=axis)
    quant = t.quant
    if quant is not None and quant.per_channel and quant.axis == axis:
        quant = QuantParams(quant.scale[lo:hi], quant.zero_point[lo:hi], axis)
    return clone_tensor(t, name=name, shape=data.shape, data=data, quant=quant)


def fuse(graph: Graph, i: int, width: int) -> Graph:
    """The graph with the block at ops i..i+2 run in slices of `width` expanded channels (module docstring)."""
    if not is_block(graph, i):
        raise ModelError(f"ops {i}..{i + 2} are not an inverted-residual block that can run fused "
                         "(pointwise conv -> depthwise -> pointwise conv, int8, nothing else reading between)")
    expand, dw, project = graph.ops[i:i + 3]
    e, d, y = (graph[op.outputs[0]] for op in (expand, dw, project))
    expanded = e.shape[-1]
    if not 1 <= width <= expanded:
        raise ModelError(f"{project.name}: a slice of {width} channels does not fit {expanded} expanded channels")
    tensors: dict[str, Tensor] = dict(graph.tensors)
    ops: list[Op] = list(graph.ops[:i])

    def const(op: Op, k: int, axis: int, lo: int, hi: int, tag: str) -> str:
        """Channels lo..hi of the op's constant input k, named after the block (constants may be shared)."""
        if k >= len(op.inputs) or not op.inputs[k]:
            return ""
        name = f"{op.inputs[k]}@{y.name}/{tag}"
        tensors[name] = _channel_slice(graph[op.inputs[k]], name, axis, lo, hi)
        return name

    acc = ""
    for n, lo in enumerate(range(0, expanded, width)):
        hi = min(lo + width, expanded)
        tag = f"s{n}"
        e_k, d_k, acc_k = f"{e.name}@{tag}", f"{d.name}@{tag}", f"{y.name}@acc{n}"
        tensors[e_k] = clone_tensor(e, name=e_k, shape=e.shape[:-1] + (hi - lo,))
        tensors[d_k] = clone_tensor(d, name=d_k, shape=d.shape[:-1] + (hi - lo,))
        tensors[acc_k] = Tensor(acc_k, y.shape, "int32")
        ops.append(Op("CONV_2D", (expand.inputs[0], const(expand, 1, 0, lo, hi, tag), const(expand, 2, 0, lo, hi, tag)),
                      (e_k,), expand.attrs, name=f"{expand.name}@{tag}", rewrite=Rewrite(expand.name, "slice", n)))
        ops.append(Op("DEPTHWISE_CONV_2D", (e_k, const(dw, 1, 3, lo, hi, tag), const(dw, 2, 0, lo, hi, tag)),
                      (d_k,), dw.attrs, name=f"{dw.name}@{tag}", rewrite=Rewrite(dw.name, "slice", n)))
        bias = (project.inputs[2] if len(project.inputs) > 2 else "") if n == 0 else ""
        ops.append(Op("CONV_1X1_ACC", (d_k, const(project, 1, 3, lo, hi, tag), bias, acc), (acc_k,),
                      name=f"{project.name}@acc{n}", rewrite=Rewrite(project.name, "acc", n)))
        acc = acc_k
    w = graph[project.inputs[1]]
    assert w.quant is not None and d.quant is not None
    scales = np.broadcast_to(np.asarray(w.quant.scale, np.float32).ravel(), (y.shape[-1],))
    attrs = {"input_scale": float(np.float32(d.quant.s)), "filter_scales": tuple(float(s) for s in scales),
             "activation": project.attrs.get("activation", "NONE")}
    ops.append(Op("ACC_REQUANTIZE", (acc,), (y.name,), attrs, name=project.name))
    ops += graph.ops[i + 3:]
    return graph.with_ops(ops, tensors)
