"""Patch-based execution (MCUNetV2): the first, memory-heavy layers run patch by patch.

A stage is a chain of spatial ops (convolution, depthwise, pooling, unary elementwise) from a tensor X
to a tensor Y whose intermediate tensors feed only the next op of the chain. Y's height and width are
cut into a grid of patches; for each patch the chain runs backwards to find the region of every
intermediate tensor it needs (a window's input grows by the kernel's halo and shrinks by its stride),
and the stage is rewritten into ordinary ops on those small regions:

    STRIDED_SLICE  X -> X's region of the patch          (omitted when that region is all of X)
    op_1 .. op_L   each on its region, pads only where the region touches the tensor's real border
    PASTE          the patch into Y (in place: Y's buffer is written block by block)

Halo regions are computed again by every patch that needs them (the extra MACs `split` reports). The
rewritten graph is an ordinary graph: the reference interpreter, the planner and the code generator
run it unchanged, and it equals the layer-by-layer graph bit for bit, because every output value is the
same window of the same values with the same padding (pads lie only on the tensor's true borders).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import ModelError
from ...ir import SPECS, Graph, Op, Rewrite, Tensor, clone_tensor
from ..opinfo import macs, total_macs

WINDOW_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"})


@dataclass(frozen=True)
class Span:
    """Rows (or columns) [lo, hi) of a tensor."""
    lo: int
    hi: int

    @property
    def size(self) -> int:
        return self.hi - self.lo


@dataclass(frozen=True)
class PatchStage:
    first: int  # index of the stage's first op
    last: int  # index of its last op (inclusive); Y is this op's output
    grid: tuple[int, int]  # patches along Y's height and width

    def describe(self) -> str:
        return f"ops {self.first}..{self.last} in {self.grid[0]}x{self.grid[1]} patches"


def _patchable(op: Op, graph: Graph) -> bool:
    """A single-input int8 op on NHWC (batch 1) whose output rows/columns come from input windows."""
    if len(op.outputs) != 1 or graph[op.outputs[0]].is_const or len(graph[op.outputs[0]].shape) != 4:
        return False
    acts = [n for n in op.inputs if n and not graph[n].is_const]
    if (len(acts) != 1 or acts[0] != op.inputs[0] or graph[acts[0]].shape[0] != 1
            or {graph[acts[0]].dtype, graph[op.outputs[0]].dtype} != {"int8"}):
        return False
    if op.kind in WINDOW_KINDS:
        return True
    spec = SPECS.get(op.kind)
    return spec is not None and spec.elementwise and graph[acts[0]].shape == graph[op.outputs[0]].shape


def stage_chains(graph: Graph, max_first: int = 3) -> list[tuple[int, int]]:
    """(first, last) of every chain a patch stage can cover, starting at one of the first ops."""
    consumers: dict[str, list[int]] = {}
    for i, op in enumerate(graph.ops):
        for n in op.inputs:
            if n:
                consumers.setdefault(n, []).append(i)
    chains = []
    for first in range(min(max_first, len(graph.ops))):
        if not _patchable(graph.ops[first], graph):
            continue
        last = first
        while True:
            chains.append((first, last))
            y = graph.ops[last].outputs[0]
            nxt = last + 1
            if (nxt >= len(graph.ops) or y in graph.outputs or consumers.get(y) != [nxt]
                    or not _patchable(graph.ops[nxt], graph)):
                break
            last = nxt
    return chains


def _window(op: Op, graph: Graph) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int, int, int]]:
    """Effective kernel size (dilated), stride and pads (top, bottom, left, right) of a windowed op."""
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = graph[op.inputs[1]].shape
        kernel = (w[1], w[2])
    else:
        kernel = tuple(op.attrs["filter"])
    dil = tuple(op.attrs.get("dilation", (1, 1)))
    eff = ((kernel[0] - 1) * dil[0] + 1, (kernel[1] - 1) * dil[1] + 1)
    return eff, tuple(op.attrs["stride"]), tuple(op.attrs["pad"])


def _input_span(out: Span, eff: int, stride: int, pad_lo: int, size: int) -> tuple[Span, int, int]:
    """The input rows an output span reads, clipped to the tensor, and the pads left at each end."""
    lo = out.lo * stride - pad_lo
    hi = (out.hi - 1) * stride - pad_lo + eff
    return Span(max(lo, 0), min(hi, size)), max(-lo, 0), max(hi - size, 0)


def _cuts(size: int, parts: int) -> list[Span]:
    step = -(-size // parts)
    return [Span(lo, min(lo + step, size)) for lo in range(0, size, step)]


Spans = list[tuple[Span, int, int]]  # per op of the chain: its output span and the pads it reads with


def chain_spans(graph: Graph, chain: list[Op], out: Span, axis: int) -> tuple[Span, Spans]:
    """Walking the chain backwards from an output span of its last op along `axis` (1: rows, 2: columns):
    the span of the chain's input it reads, and per op its output span and pads (before, after)."""
    spans: Spans = []
    for op in reversed(chain):
        if op.kind in WINDOW_KINDS:
            eff, stride, pad = _window(op, graph)
            a = axis - 1
            size = graph[op.inputs[0]].shape[axis]
            source, before, after = _input_span(out, eff[a], stride[a], pad[2 * a], size)
        else:
            source, before, after = out, 0, 0
        spans.append((out, before, after))
        out = source
    spans.reverse()
    return out, spans


def stage_grid(graph: Graph, stage: PatchStage) -> tuple[list[Span], list[Span]]:
    """Y's row spans and column spans of the stage's patches."""
    h, w = graph[graph.ops[stage.last].outputs[0]].shape[1:3]
    return _cuts(h, stage.grid[0]), _cuts(w, stage.grid[1])


def stage_macs(graph: Graph, stage: PatchStage) -> int:
    """MACs the stage computes patch by patch (halos included), from the spans alone."""
    chain = list(graph.ops[stage.first:stage.last + 1])
    per_pixel = [macs(op, graph) // max(graph[op.outputs[0]].size // graph[op.outputs[0]].shape[3], 1)
                 for op in chain]
    row_cuts, col_cuts = stage_grid(graph, stage)
    rows = [[s.size for s, _, _ in chain_spans(graph, chain, r, 1)[1]] for r in row_cuts]
    cols = [[s.size for s, _, _ in chain_spans(graph, chain, c, 2)[1]] for c in col_cuts]
    return sum(m * sum(r[k] for r in rows) * sum(c[k] for c in cols) for k, m in enumerate(per_pixel))


def split(graph: Graph, stage: PatchStage) -> Graph:
    """The graph with `stage` rewritten into per-patch ops (see the module docstring)."""
    chain = list(graph.ops[stage.first:stage.last + 1])
    x, y = chain[0].inputs[0], chain[-1].outputs[0]
    x_t, y_t = graph[x], graph[y]
    tensors: dict[str, Tensor] = dict(graph.tensors)
    ops: list[Op] = list(graph.ops[:stage.first])
    row_cuts, col_cuts = stage_grid(graph, stage)
    row_spans = [chain_spans(graph, chain, r, 1) for r in row_cuts]
    col_spans = [chain_spans(graph, chain, c, 2) for c in col_cuts]
    base = ""
    patches = [(i, j) for i in range(len(row_cuts)) for j in range(len(col_cuts))]
    for k, (i, j) in enumerate(patches):
        (x_rows, rows), (x_cols, cols) = row_spans[i], col_spans[j]
        src = x
        if (x_rows.size, x_cols.size) != x_t.shape[1:3]:
            src = f"{x}@p{k}"
            tensors[src] = clone_tensor(x_t, name=src, shape=(1, x_rows.size, x_cols.size, x_t.shape[3]))
            slices = ((0, 1, 1), (x_rows.lo, x_rows.hi, 1), (x_cols.lo, x_cols.hi, 1), (0, x_t.shape[3], 1))
            ops.append(Op("STRIDED_SLICE", (x,), (src,), {"slices": slices}, name=src,
                          rewrite=Rewrite(chain[0].name, "window", k)))
        for op, (r, top, bottom), (c, left, right) in zip(chain, rows, cols):
            out_t = graph[op.outputs[0]]
            name = f"{op.outputs[0]}@p{k}"
            tensors[name] = clone_tensor(out_t, name=name, shape=(1, r.size, c.size, out_t.shape[3]))
            attrs = {**op.attrs, "pad": (top, bottom, left, right)} if op.kind in WINDOW_KINDS else op.attrs
            ops.append(Op(op.kind, (src,) + op.inputs[1:], (name,), attrs, name=f"{op.name}@p{k}",
                          rewrite=Rewrite(op.name, "patch", k)))
            src = name
        pasted = y if k == len(patches) - 1 else f"{y}@paste{k}"
        tensors[pasted] = clone_tensor(y_t, name=pasted)
        origin = (0, row_cuts[i].lo, col_cuts[j].lo, 0)
        ops.append(Op("PASTE", (base, src), (pasted,), {"origin": origin}, name=f"{y}@paste{k}",
                      rewrite=Rewrite(chain[-1].name, "paste", k)))
        base = pasted
    ops += graph.ops[stage.last + 1:]
    return graph.with_ops(ops, tensors)


def source_layers(graph: Graph, stage: PatchStage, patched: Graph) -> list[int]:
    """For each op of the patched graph, the index of the layer of `graph` it computes part of (a patch's
    window slice counts as the stage's first layer, its paste as the last)."""
    length = stage.last - stage.first + 1
    n_stage = len(patched.ops) - (len(graph.ops) - length)
    layers = list(range(stage.first))
    k = 0  # position in the chain of the patch being run
    for op in patched.ops[stage.first:stage.first + n_stage]:
        if op.kind == "PASTE":
            layers.append(stage.last)
            k = 0
        elif k == 0 and op.kind == "STRIDED_SLICE":
            layers.append(stage.first)
        else:
            layers.append(stage.first + k)
            k += 1
    return layers + list(range(stage.last + 1, len(graph.ops)))


def extra_macs_ratio(graph: Graph, stage: PatchStage) -> float:
    """MACs the stage computes beyond layer-by-layer execution, as a fraction of the model's MACs."""
    chain = graph.ops[stage.first:stage.last + 1]
    base = total_macs(graph)
    return (stage_macs(graph, stage) - sum(macs(op, graph) for op in chain)) / base if base else 0.0


def check_stage(graph: Graph, stage: PatchStage) -> None:
    if (stage.first, stage.last) not in stage_chains(graph, max_first=stage.first + 1):
        raise ModelError(f"ops {stage.first}..{stage.last} are not a chain that can run patch by patch "
                         "(single-input spatial ops whose outputs feed only the next op)")
    h, w = graph[graph.ops[stage.last].outputs[0]].shape[1:3]
    if not (1 <= stage.grid[0] <= h and 1 <= stage.grid[1] <= w):
        raise ModelError(f"a {stage.grid[0]}x{stage.grid[1]} patch grid does not fit the stage output {h}x{w}")
