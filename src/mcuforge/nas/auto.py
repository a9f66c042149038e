"""The auto strategy's peak SRAM from shapes alone: engine.schedule.choose replayed on a network's steps.

    est = auto_estimate(spec)        # AutoEstimate(peak_sram_bytes, strategy, stage, blocks, ...)

`compile_model(to_graph(spec), strategy="auto")` tries layer by layer, and each promising patch stage over
the first layers (engine.schedule.patch) with the inverted-residual blocks after it fused in channel slices
(engine.schedule.fuse) where they lie above the rest of the graph's peak; the lowest peak wins. This module
makes the same decisions with the same rules on the per-op steps of nas.cost (bytes live without scratch,
smallest scratch, fast variants): patch spans, extra MACs, the rough ranking and its shortlist, each
patched graph's live-set bound, the fusion target and slice widths, and the final live-set bound with
each kernel's scratch chosen as engine.plan.scratch chooses it. The peak is the chosen graph's live-set
bound: the planner's packing reaches it on these chain-like graphs (tests/test_nas_auto.py measures it).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ..engine.plan.lifetimes import ALIGN, buffer_bytes, round_up
from ..engine.plan.scratch import (DW_PLANE_MAX_K, SLACK_MARGIN, dw_plane_bytes, dw_ring_rows, im2col_stride,
                                   pointwise_column_bytes, uses_im2col)
from ..engine.schedule.choose import MAX_EXTRA_MACS, MAX_GRID, SHORTLIST
from ..engine.schedule.fuse import slice_widths
from ..frontends.tflite_ops import same_pads
from .cost import _Step, layer_steps
from .layers import Layer
from .space import NetworkSpec

Variants = tuple[tuple[str, int, bool], ...]


@dataclass(frozen=True)
class AutoEstimate:
    peak_sram_bytes: int
    layer_peak_bytes: int  # layer by layer, for comparison
    strategy: str  # "layer", "patch", "fused" or "patch+fused", as engine.schedule names it
    stage: tuple[int, int, tuple[int, int]] | None  # (first op, last op, grid) of the patch stage
    blocks: tuple[tuple[int, int], ...]  # (expand op index in the model, slice width) of each fused block
    extra_macs_ratio: float


# ------------------------------------------------------------------ the network's structure


@dataclass(frozen=True)
class _Op:
    layer: Layer
    pads: tuple[int, int, int, int]  # top, bottom, left, right (windowed ops)
    multi_use: bool  # its output is read by two ops (a residual block's input)
    block: tuple[int, bool] | None  # for an expand conv: (expanded channels, residual) of its block


def _ops(spec: NetworkSpec) -> tuple[list[_Step], list[_Op]]:
    steps, layers = layer_steps(spec)
    skip_inputs: set[int] = set()  # ops whose output a residual ADD reads as well
    blocks: dict[int, tuple[int, bool]] = {}  # expand op -> (expanded channels, residual)
    k = 1
    for block in spec.blocks():  # op 0 is the stem; each block: [expand], depthwise, project, [ADD]
        start = k
        k += (block.expand != 1) + 2
        residual = k < len(layers) and layers[k].kind == "ADD"
        if block.expand != 1:
            blocks[start] = (layers[start].out_shape[2], residual)
        if residual:
            skip_inputs.add(start - 1)
            k += 1
    ops: list[_Op] = []
    for i, layer in enumerate(layers):
        pads = (0, 0, 0, 0)
        if layer.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and layer.kernel != (1, 1):
            t, b = same_pads(layer.in_shape[0], layer.out_shape[0], layer.kernel[0], layer.stride[0], 1)
            lft, r = same_pads(layer.in_shape[1], layer.out_shape[1], layer.kernel[1], layer.stride[1], 1)
            pads = (t, b, lft, r)
        ops.append(_Op(layer, pads, i in skip_inputs, blocks.get(i)))
    return steps, ops


# ------------------------------------------------------------------ scratch and live sets


def _peak_scratch(step: _Step) -> int:
    return next((size for _, size, _ in step.variants if size <= step.smallest), step.smallest)


def _profile(steps: list[_Step]) -> list[int]:
    """Live bytes per step, each op with the scratch it gets at a peak step (choose.live_profile)."""
    return [s.live + round_up(_peak_scratch(s), ALIGN) for s in steps]


def _bound(steps: list[_Step]) -> int:
    """The live-set bound with each kernel's scratch chosen as engine.plan.scratch chooses it."""
    return max(_layer_live(steps))


def _conv_step(live: int, in_hw: tuple[int, int], out_hw: tuple[int, int], c_in: int, kernel: tuple[int, int],
               stride: tuple[int, int], pads: tuple[int, int, int, int]) -> _Step:
    if uses_im2col(*kernel, 1, pads[0], pads[2], *in_hw, *out_hw, *stride):
        depth = im2col_stride(*kernel, c_in)
        variants: Variants = (("im2col4", 9 * depth + 4, False), ("im2col", 4 * (depth + 1) + 4, False))
    else:
        variants = (("column", pointwise_column_bytes(c_in), False),)
    return _Step(live, 0, "", variants, 0, None)


@cache
def _ring_rows(in_hw: tuple[int, int], out_hw: tuple[int, int], k_h: int, stride_h: int, pad_top: int) -> int:
    return dw_ring_rows(1, *in_hw, *out_hw, k_h, stride_h, 1, pad_top)


def _dw_step(live: int, in_hw: tuple[int, int], out_hw: tuple[int, int], channels: int, kernel: tuple[int, int],
             stride: tuple[int, int], pad_top: int, inplace: bool) -> _Step:
    plane = dw_plane_bytes(*out_hw, *kernel, *stride) if max(kernel) <= DW_PLANE_MAX_K else 0
    if not inplace:
        return _Step(live, 0, "", (("rows", plane, True),) if plane else (), 0, None)
    ring = _ring_rows(in_hw, out_hw, kernel[0], stride[0], pad_top) * out_hw[1] * channels
    variants: Variants = (("rows", max(ring, plane), True), ("rows", ring, False)) if plane else (("rows", ring, False),)
    return _Step(live, out_hw[0] * out_hw[1], "channels", variants, 0, None)


# ------------------------------------------------------------------ patch stages (engine.schedule.patch)


def _chains(ops: list[_Op], max_first: int = 3) -> list[tuple[int, int]]:
    """(first, last) of every chain a patch stage can cover (patch.stage_chains)."""
    def patchable(op: _Op) -> bool:
        return op.layer.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D")

    chains = []
    for first in range(min(max_first, len(ops))):
        if not patchable(ops[first]):
            continue
        last = first
        while True:
            chains.append((first, last))
            nxt = last + 1
            if nxt >= len(ops) or ops[last].multi_use or not patchable(ops[nxt]):
                break
            last = nxt
    return chains


Span = tuple[int, int]  # [lo, hi)


def _cuts(size: int, parts: int) -> list[Span]:
    step = -(-size // parts)
    return [(lo, min(lo + step, size)) for lo in range(0, size, step)]


def _span(op: _Op, out: Span, axis: int) -> tuple[Span, int, int]:
    """The input span an output span of `op` reads along `axis` (0: rows, 1: columns), clipped to the
    tensor, and the pads left at each end (patch._input_span)."""
    layer = op.layer
    eff, stride, pad, size = layer.kernel[axis], layer.stride[axis], op.pads[2 * axis], layer.in_shape[axis]
    lo = out[0] * stride - pad
    hi = (out[1] - 1) * stride - pad + eff
    return (max(lo, 0), min(hi, size)), max(-lo, 0), max(hi - size, 0)


def _spans(chain: list[_Op], out: Span, axis: int, memo: dict) -> tuple[Span, list[tuple[Span, int, int]]]:
    """patch.chain_spans: the chain's input span, and per op its output span and pads (before, after).
    `memo`: (op, output span, axis) -> _span, shared by the chains of one network (they share their ends)."""
    spans = []
    for op in reversed(chain):
        key = (id(op), out, axis)
        if key not in memo:
            memo[key] = _span(op, out, axis)
        source, before, after = memo[key]
        spans.append((out, before, after))
        out = source
    spans.reverse()
    return out, spans


@dataclass(frozen=True)
class _Stage:
    first: int
    last: int
    grid: tuple[int, int]
    rows: list  # per row cut: (X's row span, per op (span, before, after))
    cols: list
    extra: float
    row_sizes: list[tuple[int, ...]]  # per row cut: _sizes
    col_sizes: list[tuple[int, ...]]


def _stage(ops: list[_Op], first: int, last: int, grid: tuple[int, int], total_macs: int, memo: dict) -> _Stage:
    chain = ops[first:last + 1]
    h, w = chain[-1].layer.out_shape[:2]
    rows = [_spans(chain, r, 0, memo) for r in _cuts(h, grid[0])]
    cols = [_spans(chain, c, 1, memo) for c in _cuts(w, grid[1])]
    row_sizes, col_sizes = [_sizes(r) for r in rows], [_sizes(c) for c in cols]
    patched = 0
    for k, op in enumerate(chain):
        area = op.layer.out_shape[0] * op.layer.out_shape[1]
        per_pixel = op.layer.macs // max(area, 1)
        patched += per_pixel * sum(r[k + 1] for r in row_sizes) * sum(c[k + 1] for c in col_sizes)
    extra = (patched - sum(op.layer.macs for op in chain)) / total_macs if total_macs else 0.0
    return _Stage(first, last, grid, rows, cols, extra, row_sizes, col_sizes)


def _nbytes(shape: tuple[int, int, int]) -> int:
    return shape[0] * shape[1] * shape[2]


def _sizes(cut: tuple[Span, list[tuple[Span, int, int]]]) -> tuple[int, ...]:
    """A patch cut's extent in the chain's input, then in each op's output (one axis)."""
    x, spans = cut
    return (x[1] - x[0], *(s[1] - s[0] for s, _, _ in spans))


def _rough_peak(ops: list[_Op], stage: _Stage, outside: int) -> int:
    """choose._rough_peak: `outside` (the largest layer-by-layer live set outside the stage), or X + Y + the
    largest (input + output) of an op of the chain on one patch."""
    chain = ops[stage.first:stage.last + 1]
    rows = set(stage.row_sizes)  # interior patches repeat: their distinct sizes suffice
    cols = set(stage.col_sizes)
    local = 0
    for k, op in enumerate(chain):
        cin, cout = op.layer.in_shape[2], op.layer.out_shape[2]
        for r in rows:
            for c in cols:
                local = max(local, r[k] * c[k] * cin + r[k + 1] * c[k + 1] * cout)
    return max(outside, _nbytes(chain[0].layer.in_shape) + _nbytes(chain[-1].layer.out_shape) + local)


def _stage_steps(ops: list[_Op], stage: _Stage) -> list[_Step]:
    """The steps of the stage's patches (patch.split): per patch its window slice (when it is not all of X),
    the chain's ops on their regions, and the paste into Y; a patch whose steps repeat an earlier one's
    (same sizes, pads and place) is left out, which changes no maximum."""
    chain = ops[stage.first:stage.last + 1]
    x_shape, y_shape = chain[0].layer.in_shape, chain[-1].layer.out_shape
    big_x, big_y = buffer_bytes(_nbytes(x_shape)), buffer_bytes(_nbytes(y_shape))
    patches = [(i, j) for i in range(len(stage.rows)) for j in range(len(stage.cols))]
    steps: list[_Step] = []
    seen: set[tuple] = set()
    for k, (i, j) in enumerate(patches):
        key = (k == 0, k == len(patches) - 1, stage.row_sizes[i], stage.col_sizes[j],
               tuple(p[1:] for p in stage.rows[i][1]), tuple(p[1:] for p in stage.cols[j][1]))
        if key in seen:  # the same steps as an earlier patch: the bound and the profile's maxima are unchanged
            continue
        seen.add(key)
        (x_rows, rows), (x_cols, cols) = stage.rows[i], stage.cols[j]
        region = (x_rows[1] - x_rows[0], x_cols[1] - x_cols[0])
        last_patch = k == len(patches) - 1
        y_live = big_y if k else 0
        sliced = region != x_shape[:2]
        src = big_x  # the bytes the next op reads
        if sliced:
            src = buffer_bytes(region[0] * region[1] * x_shape[2])
            steps.append(_Step(big_x + y_live + src, 0, "", (), 0, None))
        in_hw = region
        for n, (op, (r, top, bottom), (c, left, right)) in enumerate(zip(chain, rows, cols)):
            layer = op.layer
            out_hw = (r[1] - r[0], c[1] - c[0])
            out = buffer_bytes(out_hw[0] * out_hw[1] * layer.out_shape[2])
            reads_x = n == 0 and not sliced  # X itself is the input (counted as `src`)
            x_live = big_x if not last_patch and not reads_x else 0  # X, read again by later patches
            if layer.kind == "DEPTHWISE_CONV_2D":
                inplace = not reads_x or last_patch  # in place over an input that dies here
                live = x_live + y_live + (max(src, out) if inplace else src + out)
                steps.append(_dw_step(live, in_hw, out_hw, layer.in_shape[2], layer.kernel, layer.stride, top, inplace))
            elif layer.kind == "CONV_2D":
                steps.append(_conv_step(x_live + y_live + src + out, in_hw, out_hw, layer.in_shape[2], layer.kernel,
                                        layer.stride, (top, bottom, left, right)))
            else:
                steps.append(_Step(x_live + y_live + src + out, 0, "", (), 0, None))
            src, in_hw = out, out_hw
        steps.append(_Step((big_x if not last_patch else 0) + big_y + src, 0, "", (), 0, None))
    return steps


def patch_stages(ops: list[_Op], steps: list[_Step], max_extra_macs: float, total_macs: int) -> list[tuple[int, _Stage]]:
    """choose.patch_candidates: (live-set bound of the patched graph, stage) of the shortlisted stages."""
    layer_live = _layer_live(steps)
    before = [0]
    for b in layer_live:
        before.append(max(before[-1], b))
    after = [0]
    for b in reversed(layer_live):
        after.append(max(after[-1], b))
    stages: dict[tuple, tuple[int, float, _Stage]] = {}
    memo: dict = {}
    for first, last in _chains(ops):
        outside = max(before[first], after[len(layer_live) - last - 1])
        h, w = ops[last].layer.out_shape[:2]
        for n in range(2, MAX_GRID + 1):
            grid = (min(n, h), min(n, w))
            key = (first, last, -(-h // grid[0]), -(-w // grid[1]))
            if key in stages or grid == (1, 1):
                continue
            stage = _stage(ops, first, last, grid, total_macs, memo)
            if stage.extra <= max_extra_macs:
                stages[key] = (_rough_peak(ops, stage, outside), stage.extra, stage)
    ranked = sorted(stages.values(), key=lambda c: (c[0], c[1]))[:SHORTLIST]
    found = [(_bound(_patched(steps, ops, s)), s) for _, _, s in ranked]
    return sorted(found, key=lambda c: (c[0], c[1].extra))


def _patched(steps: list[_Step], ops: list[_Op], stage: _Stage) -> list[_Step]:
    return steps[:stage.first] + _stage_steps(ops, stage) + steps[stage.last + 1:]


def _layer_live(steps: list[_Step]) -> list[int]:
    """Live bytes per step, each kernel with the scratch engine.plan.scratch chooses for it: a fast variant
    when it needs no more than the smallest or stays SLACK_MARGIN under the largest live set."""
    limit = max(s.live + round_up(s.smallest, ALIGN) for s in steps) - SLACK_MARGIN
    out = []
    for s in steps:
        nbytes = s.smallest
        for _, size, _ in s.variants:
            if size <= s.smallest or s.live + round_up(s.smallest, ALIGN) + size - s.smallest <= limit:
                nbytes = size
                break
        out.append(s.live + round_up(nbytes, ALIGN))
    return out


# ------------------------------------------------------------------ fused blocks (engine.schedule.fuse)


def _fused_steps(step_in: _Step, ops: list[_Op], i: int, width: int) -> list[_Step]:
    """The steps of the block whose expand is ops[i] in slices of `width` expanded channels (fuse.fuse)."""
    expand, dw, project = ops[i].layer, ops[i + 1].layer, ops[i + 2].layer
    expanded, residual = ops[i].block  # type: ignore[misc]
    x = buffer_bytes(_nbytes(expand.in_shape))
    other = step_in.live - x - buffer_bytes(_nbytes(expand.out_shape))
    (h, w), (oh, ow) = expand.out_shape[:2], dw.out_shape[:2]
    acc = buffer_bytes(oh * ow * project.out_shape[2] * 4)
    pad_top = same_pads(h, oh, dw.kernel[0], dw.stride[0], 1)[0]
    slices = list(range(0, expanded, width))
    steps = []
    for n, lo in enumerate(slices):
        c = min(lo + width, expanded) - lo
        e, d = buffer_bytes(h * w * c), buffer_bytes(oh * ow * c)
        held = acc if n else 0
        x_after = x if residual or n < len(slices) - 1 else 0
        steps.append(_Step(other + x + e + held, 0, "", (("column", pointwise_column_bytes(expand.in_shape[2]), False),),
                           0, None))
        steps.append(_dw_step(other + x_after + max(e, d) + held, (h, w), (oh, ow), c, dw.kernel, dw.stride, pad_top,
                              True))
        steps.append(_Step(other + x_after + d + acc, 0, "", (), 0, None))
    steps.append(_Step(other + (x if residual else 0) + acc, 0, "", (), 0, None))
    return steps


def _fuse(steps: list[_Step], ops: list[_Op], start: int, shift: int, peaks: dict[tuple[int, int, int], int]
          ) -> tuple[list[_Step], list[tuple[int, int]]]:
    """choose.choose_fusion on a graph whose steps are `steps` and whose op k is ops[k - shift] from
    `start` on: the steps with the chosen blocks fused, and (expand op index in the model, width) of each."""
    found = [k for k in range(start, len(steps) - 2) if ops[k - shift].block is not None]
    if not found:
        return steps, []
    live = _profile(steps)
    inside = {k for i in found for k in range(i, i + 3)}
    target = max((b for k, b in enumerate(live) if k not in inside), default=0)
    widths: dict[int, list[int]] = {}

    def block_peak(i: int, width: int) -> int:
        """The block's peak fused in slices of `width` (`peaks`: memo shared by the options)."""
        key = (i - shift, width, steps[i].live)
        if key not in peaks:
            peaks[key] = max(_profile(_fused_steps(steps[i], ops, i - shift, width)))
        return peaks[key]

    for i in found:
        widths[i] = slice_widths(ops[i - shift].block[0])  # type: ignore[index]
        layer_peak = max(live[i:i + 3])
        lowest = block_peak(i, widths[i][-1]) if widths[i] else layer_peak
        target = max(target, min(layer_peak, lowest))
    chosen = []
    for i in found:
        if not widths[i] or max(live[i:i + 3]) <= target:
            continue
        chosen.append((i, next((w for w in widths[i][:-1] if block_peak(i, w) <= target), widths[i][-1])))
    out = list(steps)
    for i, width in reversed(chosen):
        out[i:i + 3] = _fused_steps(steps[i], ops, i - shift, width)
    return out, [(i - shift, width) for i, width in chosen]


# ------------------------------------------------------------------ the choice (choose.schedule, "auto")


def auto_estimate(spec: NetworkSpec, max_extra_macs: float = MAX_EXTRA_MACS) -> AutoEstimate:
    """The peak SRAM of `compile_model(to_graph(spec), strategy="auto", max_extra_macs=...)`."""
    steps, ops = _ops(spec)
    total = sum(op.layer.macs for op in ops)
    layer_peak = max(_layer_live(steps))
    options = []
    peaks: dict[tuple[int, int, int], int] = {}
    fused, blocks = _fuse(steps, ops, 0, 0, peaks)
    options.append((_bound(fused), 0.0, len(blocks), None, blocks))
    for _, stage in patch_stages(ops, steps, max_extra_macs, total):
        patched = _patched(steps, ops, stage)
        shift = len(patched) - len(steps)
        fused, blocks = _fuse(patched, ops, stage.last + 1 + shift, shift, peaks)
        options.append((_bound(fused), stage.extra, len(blocks), stage, blocks))
    options.sort(key=lambda o: o[:3])
    bound, extra, _, stage, blocks = options[0]
    if bound >= layer_peak:
        return AutoEstimate(layer_peak, layer_peak, "layer", None, (), 0.0)
    name = "+".join(n for n, used in (("patch", stage is not None), ("fused", bool(blocks))) if used) or "layer"
    return AutoEstimate(bound, layer_peak, name, (stage.first, stage.last, stage.grid) if stage else None,
                        tuple(blocks), extra)


__all__ = ["AutoEstimate", "auto_estimate"]


def auto_lower_bound(spec: NetworkSpec) -> int:
    """A cheap lower bound of auto_estimate(spec).peak_sram_bytes: the live bytes, with the least scratch a
    kernel can get, of the ops no rewrite touches (outside every chain a patch stage could cover), where a
    block that could run fused counts the lower of its layer-by-layer peak and its accumulator step (every
    slicing of the block ends with the int32 accumulator and, for a residual block, its input live)."""
    steps, ops = _ops(spec)
    reach = max((last for _, last in _chains(ops)), default=-1)
    profile = _profile(steps)
    bound = 0
    i = reach + 1
    while i < len(ops):
        op = ops[i]
        if op.block is None:
            bound = max(bound, profile[i])
            i += 1
            continue
        _, residual = op.block
        project = ops[i + 2].layer
        x = buffer_bytes(_nbytes(op.layer.in_shape))
        other = steps[i].live - x - buffer_bytes(_nbytes(op.layer.out_shape))
        acc = other + (x if residual else 0) + buffer_bytes(_nbytes(project.out_shape) * 4)
        bound = max(bound, min(max(profile[i:i + 3]), acc))
        i += 3
    return bound
