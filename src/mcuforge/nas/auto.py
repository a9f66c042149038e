"""The auto strategy's peak SRAM from shapes alone: engine.schedule.choose replayed on a network's steps.

    est = auto_estimate(spec)        # AutoEstimate(peak_sram_bytes, strategy, stage, blocks, ...)

`compile_model(to_graph(spec), strategy="auto")` tries layer by layer, and each promising patch stage over
the first layers (engine.schedule.patch) with the inverted-residual blocks after it fused in channel slices
(engine.schedule.fuse) where they lie above the rest of the graph's peak; the lowest peak wins. This module
makes the same decisions with the same rules on the per-op steps of nas.cost (bytes live without scratch,
smallest scratch, fast variants): patch spans, extra MACs, the rough ranking and its shortlist, each
patched graph's live-set bound, the fusion target and slice widths, and the final live-set bound with
each kernel's scratch chosen as engine.plan.scratch chooses it. The result is the option the scheduler
ranks first (Schedule.considered[0], tests/test_nas_auto.py) and its live-set bound. The scheduler then
packs its options in that order and keeps the smallest arena; the packing can land above a bound, so the
peak is a lower bound of the engine's auto arena, equal to it on most networks (bench/oracles.py measures
how often and by how much: docs/oracles.md).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import accumulate

from ..engine.plan.lifetimes import ALIGN, buffer_bytes, round_up
from ..engine.plan.scratch import SLACK_MARGIN
from ..operators.conv_2d import im2col_stride, is_pointwise, pointwise_column_bytes
from ..operators.depthwise_conv_2d import DW_PLANE_MAX_K, dw_plane_bytes, dw_ring_rows
from ..engine.schedule.choose import MAX_EXTRA_MACS, MAX_GRID, SHORTLIST
from ..engine.schedule.fuse import slice_widths as _slice_widths
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


def _profile(steps: list[_Step]) -> list[int]:
    """Live bytes per step, each op with the scratch it gets at a peak step (choose.live_profile): its
    first variant that needs no more than the smallest, else the smallest."""
    out = []
    for s in steps:
        scratch = s.smallest
        for _, size, _ in s.variants:
            if size <= scratch:
                scratch = size
                break
        out.append(s.live + round_up(scratch, ALIGN))
    return out


def _bound(steps: list[_Step]) -> int:
    """The live-set bound with each kernel's scratch chosen as engine.plan.scratch chooses it."""
    return max(_layer_live(steps))


def _conv_step(live: int, in_hw: tuple[int, int], out_hw: tuple[int, int], c_in: int, kernel: tuple[int, int],
               stride: tuple[int, int], pads: tuple[int, int, int, int]) -> _Step:
    if not is_pointwise(*kernel, pads[0], pads[2], *in_hw, *out_hw, *stride):
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


Walk = tuple[list[tuple[Span, int, int]], list[Span], list[int]]  # per op: (output span, pads), input span, size


class _Walks:
    """patch.chain_spans for every cut of one output axis, walked once from op `last` back to op 0 and shared
    by every chain ending at `last` (a chain first..last reads the input span of its first op): per cut,
    per op k <= last, its output span and pads (before, after), its input span and its output span's size;
    and per op the sum over the cuts of its output span's size (the patched MACs' factor along the axis).
    `geometry` is per op (kernel, stride, leading pad, input size) along the axis (_geometry)."""

    def __init__(self, geometry: tuple[tuple[int, int, int, int], ...], size: int, step: int) -> None:
        self.cuts: list[Walk] = []
        for out in ((lo, min(lo + step, size)) for lo in range(0, size, step)):  # patch: cuts of `step`
            spans: list[tuple[Span, int, int]] = []
            inputs: list[Span] = []
            for eff, stride, pad, extent in reversed(geometry):  # patch._input_span, clipped
                lo = out[0] * stride - pad
                hi = (out[1] - 1) * stride - pad + eff
                spans.append((out, -lo if lo < 0 else 0, hi - extent if hi > extent else 0))
                out = (lo if lo > 0 else 0, hi if hi < extent else extent)
                inputs.append(out)
            spans.reverse()
            inputs.reverse()
            self.cuts.append((spans, inputs, [hi - lo for (lo, hi), _, _ in spans]))
        self.total = [sum(sizes) for sizes in zip(*(cut[2] for cut in self.cuts))]

    def sizes(self, first: int, last: int) -> list[tuple[int, ...]]:
        """Per cut: the span of the chain's input (X), then each chain op's output span, as sizes."""
        return [(inputs[first][1] - inputs[first][0], *out[first:last + 1]) for _, inputs, out in self.cuts]


@lru_cache(maxsize=4096)
def _walks(geometry: tuple[tuple[int, int, int, int], ...], size: int, step: int) -> _Walks:
    """The walks of one axis cut in steps of `step`, shared by the rows and columns of a square input and
    by the networks of one space (their first layers, where patch stages lie, vary little)."""
    return _Walks(geometry, size, step)


@dataclass(frozen=True)
class _Stage:
    first: int
    last: int
    grid: tuple[int, int]
    rows: list[Walk]  # per row cut of Y: the walk (ops 0..last)
    cols: list[Walk]
    extra: float
    row_sizes: list[tuple[int, ...]]  # per row cut: X's rows, then each chain op's output rows
    col_sizes: list[tuple[int, ...]]

    def cut(self, walk: Walk) -> tuple[Span, list[tuple[Span, int, int]]]:
        """(X's span, per chain op (output span, pads)) of one cut (patch.chain_spans)."""
        spans, inputs, _ = walk
        return inputs[self.first], spans[self.first:self.last + 1]


def _nbytes(shape: tuple[int, int, int]) -> int:
    return shape[0] * shape[1] * shape[2]


def _rough_peak(ops: list[_Op], stage: _Stage, outside: int) -> int:
    """choose._rough_peak: `outside` (the largest layer-by-layer live set outside the stage), or X + Y + the
    largest (input + output) of an op of the chain on one patch."""
    chain = ops[stage.first:stage.last + 1]
    ends = [(k, op.layer.in_shape[2], op.layer.out_shape[2]) for k, op in enumerate(chain)]
    local = max(r[k] * c[k] * cin + r[k + 1] * c[k + 1] * cout  # interior patches repeat: distinct sizes suffice
                for r in set(stage.row_sizes) for c in set(stage.col_sizes) for k, cin, cout in ends)
    return max(outside, _nbytes(chain[0].layer.in_shape) + _nbytes(chain[-1].layer.out_shape) + local)


def _stage_steps(ops: list[_Op], stage: _Stage) -> list[_Step]:
    """The steps of the stage's patches (patch.split): per patch its window slice (when it is not all of X),
    the chain's ops on their regions, and the paste into Y; a patch whose steps repeat an earlier one's
    (same sizes, pads and place) is left out, which changes no maximum."""
    chain = ops[stage.first:stage.last + 1]
    x_shape, y_shape = chain[0].layer.in_shape, chain[-1].layer.out_shape
    big_x, big_y = buffer_bytes(_nbytes(x_shape)), buffer_bytes(_nbytes(y_shape))
    row_cuts, col_cuts = [stage.cut(r) for r in stage.rows], [stage.cut(c) for c in stage.cols]
    row_kinds = [(size, tuple(p[1:] for p in cut[1])) for size, cut in zip(stage.row_sizes, row_cuts)]
    col_kinds = [(size, tuple(p[1:] for p in cut[1])) for size, cut in zip(stage.col_sizes, col_cuts)]
    patches = [(i, j) for i in range(len(stage.rows)) for j in range(len(stage.cols))]
    steps: list[_Step] = []
    seen: set[tuple] = set()
    for k, (i, j) in enumerate(patches):
        key = (k == 0, k == len(patches) - 1, row_kinds[i], col_kinds[j])
        if key in seen:  # the same steps as an earlier patch: the bound and the profile's maxima are unchanged
            continue
        seen.add(key)
        (x_rows, rows), (x_cols, cols) = row_cuts[i], col_cuts[j]
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


def patch_stages(ops: list[_Op], layer_live: list[int], max_extra_macs: float, total_macs: int) -> list[_Stage]:
    """choose.patch_candidates' shortlist: the stages within the MAC cap with the lowest rough peaks
    (`layer_live`: the graph's _layer_live)."""
    before = list(accumulate(layer_live, max, initial=0))  # largest live set before op k
    after = list(accumulate(reversed(layer_live), max, initial=0))
    per_pixel = [op.layer.macs // max(op.layer.out_shape[0] * op.layer.out_shape[1], 1) for op in ops]
    macs_before = list(accumulate((op.layer.macs for op in ops), initial=0))
    geometry = [tuple((op.layer.kernel[a], op.layer.stride[a], op.pads[2 * a], op.layer.in_shape[a]) for op in ops)
                for a in (0, 1)]

    def walked(last: int, axis: int, size: int, parts: int) -> _Walks:
        return _walks(geometry[axis][:last + 1], size, -(-size // parts))  # the cuts depend on the step only

    # every stage, with a floor of its rough peak (`outside`, or X + Y) that needs no walk; the rough peaks are
    # then computed lowest floor first until the shortlist is full (an unwalked stage sorts before a walked
    # one of equal peak, so the order equals sorting all of them by (rough peak, extra MACs, enumeration))
    queue: list[tuple] = []
    seen: set[tuple] = set()
    for first, last in _chains(ops):
        outside = max(before[first], after[len(layer_live) - last - 1])
        ends = _nbytes(ops[first].layer.in_shape) + _nbytes(ops[last].layer.out_shape)
        h, w = ops[last].layer.out_shape[:2]
        for n in range(2, MAX_GRID + 1):
            grid = (min(n, h), min(n, w))
            key = (first, last, -(-h // grid[0]), -(-w // grid[1]))
            if key not in seen and grid != (1, 1):
                seen.add(key)
                queue.append((max(outside, ends), 0, len(queue), (first, last, grid, outside)))
    heapq.heapify(queue)
    shortlist: list[_Stage] = []
    while queue and len(shortlist) < SHORTLIST:
        item = heapq.heappop(queue)
        if item[1]:
            shortlist.append(item[-1])
            continue
        first, last, grid, outside = item[-1]
        (h, w), order = ops[last].layer.out_shape[:2], item[2]
        rows, cols = walked(last, 0, h, grid[0]), walked(last, 1, w, grid[1])
        patched = sum(per_pixel[k] * rows.total[k] * cols.total[k] for k in range(first, last + 1))
        extra = (patched - macs_before[last + 1] + macs_before[first]) / total_macs if total_macs else 0.0
        if extra <= max_extra_macs:
            stage = _Stage(first, last, grid, rows.cuts, cols.cuts, extra, rows.sizes(first, last),
                           cols.sizes(first, last))
            heapq.heappush(queue, (_rough_peak(ops, stage, outside), 1, extra, order, stage))
    return shortlist


def _layer_live(steps: list[_Step]) -> list[int]:
    """Live bytes per step, each kernel with the scratch engine.plan.scratch chooses for it: a fast variant
    when it needs no more than the smallest or stays SLACK_MARGIN under the largest live set."""
    base = [s.live + round_up(s.smallest, ALIGN) for s in steps]  # with the smallest scratch
    limit = max(base) - SLACK_MARGIN
    out = []
    for s, least in zip(steps, base):
        nbytes = s.smallest
        for _, size, _ in s.variants:
            if size <= s.smallest or least + size - s.smallest <= limit:
                nbytes = size
                break
        out.append(s.live + round_up(nbytes, ALIGN))
    return out


# ------------------------------------------------------------------ fused blocks (engine.schedule.fuse)


slice_widths = cache(_slice_widths)


def _fused_steps(step_in: _Step, ops: list[_Op], i: int, width: int) -> list[_Step]:
    """The steps of the block whose expand is ops[i] in slices of `width` expanded channels (fuse.fuse), of
    the first, second and last slice: the slices between repeat the second's steps, which changes no
    maximum (nor the scratch each step gets, which depends on the step and the largest live set only)."""
    expand, dw, project = ops[i].layer, ops[i + 1].layer, ops[i + 2].layer
    expanded, residual = ops[i].block  # type: ignore[misc]
    x = buffer_bytes(_nbytes(expand.in_shape))
    other = step_in.live - x - buffer_bytes(_nbytes(expand.out_shape))
    (h, w), (oh, ow) = expand.out_shape[:2], dw.out_shape[:2]
    acc = buffer_bytes(oh * ow * project.out_shape[2] * 4)
    pad_top = same_pads(h, oh, dw.kernel[0], dw.stride[0], 1)[0]
    slices = list(range(0, expanded, width))
    steps = []
    for n in sorted({0, min(1, len(slices) - 1), len(slices) - 1}):  # the slices between repeat slice 1's steps
        lo = slices[n]
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


def _fuse(steps: list[_Step], live: list[int], ops: list[_Op], start: int, shift: int,
          peaks: dict[tuple[int, int, int], int]) -> tuple[list[_Step], list[tuple[int, int]]]:
    """choose.choose_fusion on a graph whose steps are `steps` (`live`: their _profile) and whose op k is
    ops[k - shift] from `start` on: the steps with the chosen blocks fused, and (expand op index in the
    model, width) of each."""
    found = [k for k in range(start, len(steps) - 2) if ops[k - shift].block is not None]
    if not found:
        return steps, []
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


def _floor(steps: list[_Step], profile: list[int], ops: list[_Op], start: int, shift: int) -> int:
    """A lower bound of the live-set bound over steps start.. once _fuse(steps, ops, start, shift) has fused
    what it chooses: each step with the least scratch it can get (`profile`, the steps' _profile: the
    scratch chooser never gives less), where a block that could run fused counts the lower of its
    layer-by-layer steps and a floor of its fused steps."""
    bound = 0
    k = start
    while k < len(steps):
        op = ops[k - shift]
        if op.block is None or k + 2 >= len(steps):
            bound = max(bound, profile[k])
            k += 1
            continue
        expanded, residual = op.block
        (h, w, _), x = op.layer.out_shape, buffer_bytes(_nbytes(op.layer.in_shape))
        other = steps[k].live - x - buffer_bytes(_nbytes(op.layer.out_shape))
        acc = buffer_bytes(_nbytes(ops[k - shift + 2].layer.out_shape) * 4)
        # every slicing ends with the accumulator (and a residual block's input) live, and its second slice's
        # expand runs with X, the accumulator and at least ceil(C/16) expanded channels live (fuse.slice_widths)
        fused = max(other + (x if residual else 0) + acc, other + x + acc + buffer_bytes(h * w * -(-expanded // 16)))
        bound = max(bound, min(max(profile[k:k + 3]), fused))
        k += 3
    return bound


def auto_estimate(spec: NetworkSpec, max_extra_macs: float = MAX_EXTRA_MACS) -> AutoEstimate:
    """The live-set bound of the plan `compile_model(to_graph(spec), strategy="auto", max_extra_macs=...)`
    ranks first: its peak SRAM, or a little below it where the packing lands above the bound.

    choose.schedule fuses the graph as it is and after each shortlisted patch stage and keeps the lowest
    (bound, extra MACs, blocks fused), ties going to the earlier option (no stage first, then by the
    patched graph's bound and extra MACs, then the shortlist's order). The same options are tried here
    lowest floor first (_floor; before a stage's patches are laid out, the floor of the steps around it):
    one whose floor lies above the best bound found (or equals it with more extra MACs), or at the
    layer-by-layer peak, cannot win and is neither laid out nor fused."""
    steps, ops = _ops(spec)
    total = sum(op.layer.macs for op in ops)
    layer_live = _layer_live(steps)
    layer_peak = max(layer_live)
    profile = _profile(steps)
    before = list(accumulate(profile, max, initial=0))
    queue: list[tuple[int, int, _Stage | None, list[_Step] | None]] = [(_floor(steps, profile, ops, 0, 0), 0, None,
                                                                        steps)]
    for n, stage in enumerate(patch_stages(ops, layer_live, max_extra_macs, total), 1):
        queue.append((max(before[stage.first], _floor(steps, profile, ops, stage.last + 1, 0)), n, stage, None))
    heapq.heapify(queue)
    peaks: dict[tuple[int, int, int], int] = {}
    best: tuple | None = None  # ((bound, extra MACs, blocks fused, tie order), stage, blocks)
    while queue:
        floor, n, stage, candidate = heapq.heappop(queue)
        if floor >= layer_peak or best and floor > best[0][0]:
            break
        if best and floor == best[0][0] and stage is not None and stage.extra > best[0][1]:
            continue  # at best a tie on the bound, lost on the extra MACs
        if stage is None:
            fused, blocks = _fuse(steps, profile, ops, 0, 0, peaks)
            option = ((_bound(fused), 0.0, len(blocks), ()), stage, blocks)
        elif candidate is None:  # lay the stage's patches out, then queue it again with its exact floor
            candidate = steps[:stage.first] + _stage_steps(ops, stage) + steps[stage.last + 1:]
            end = len(candidate) - len(steps) + stage.last + 1
            inside = _profile(candidate[stage.first:end])
            heapq.heappush(queue, (max(floor, *inside), n, stage, candidate))
            continue
        else:
            shift = len(candidate) - len(steps)
            live = profile[:stage.first] + _profile(candidate[stage.first:stage.last + 1 + shift]) + \
                profile[stage.last + 1:]
            fused, blocks = _fuse(candidate, live, ops, stage.last + 1 + shift, shift, peaks)
            option = ((_bound(fused), stage.extra, len(blocks), (_bound(candidate), stage.extra, n)), stage, blocks)
        if best is None or option[0] < best[0]:
            best = option
    if best is None or best[0][0] >= layer_peak:
        return AutoEstimate(layer_peak, layer_peak, "layer", None, (), 0.0)
    (bound, extra, _, _), stage, blocks = best
    name = "+".join(n for n, used in (("patch", stage is not None), ("fused", bool(blocks))) if used) or "layer"
    return AutoEstimate(bound, layer_peak, name, (stage.first, stage.last, stage.grid) if stage else None,
                        tuple(blocks), extra)


__all__ = ["AutoEstimate", "auto_estimate"]


def auto_lower_bound(spec: NetworkSpec) -> int:
    """A cheap lower bound of auto_estimate(spec).peak_sram_bytes: _floor over the ops no rewrite touches
    (outside every chain a patch stage could cover)."""
    steps, ops = _ops(spec)
    reach = max((last for _, last in _chains(ops)), default=-1)
    return _floor(steps, _profile(steps), ops, reach + 1, 0)
