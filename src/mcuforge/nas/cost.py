"""NAS cost model: peak SRAM, flash and MACs of a candidate network from its shapes alone.

    est = estimate(spec)     # Estimate(peak_sram_bytes, flash_bytes, param_bytes, macs, ops)

No graph, no weights, no numpy: pure integer arithmetic over the blocks, thousands of networks a second.
It replays what the planner does on `to_graph(spec)` with its default settings (align 4, in place):
- tensors take their bytes rounded up to 4; a tensor is live from the op writing it to the last op reading
  it, so a block's input stays live across the block when the block adds it back (residual ADD);
- a depthwise conv runs in place over its input when that input dies there (not when it is the residual),
  its buffer then holding max(input, output); RESHAPE shares its input's bytes; ADD writes over an input;
- kernel scratch as engine/plan/scratch.py chooses it: the smallest (the in-place depthwise channel
  temporary), or a fast variant (the depthwise ring or plane, the im2col or 1x1 column) when its extra
  bytes keep the op within the largest live set of the smallest-scratch plan, less SLACK_MARGIN.
The peak is the largest live set over the steps: the plan's lower bound. The planner's packing reaches it
on these chain-like graphs (its arena equals it on every network tests/test_nas_cost.py and
bench/planner.py try); where a packing did not, the arena would be above this figure.

Flash is what the code generator stores (compile_model's flash_weights_bytes): int8 weights, a 4 x int32
requantization row per conv/depthwise channel (folded bias, multiplier, shift, rounding), the classifier's
folded bias, for an in-place depthwise conv left with the smallest scratch (plain kernel) its int32 bias,
multipliers and shifts too, and for the im2col stem with filter rows padded to a multiple of 4 both the
padded rows and the unpadded ones (emit_conv stores both). The code generator stores identical arrays
once, so it could come out lower if two layers had the same multipliers or shifts. `param_bytes` counts
int8 weights and int32 biases only (analyze's flash_weights_bytes).
MACs count as engine/opinfo.py does.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ..engine.plan.scratch import (SLACK_MARGIN, dw_plane_bytes, dw_ring_rows, im2col_stride,
                                   pointwise_column_bytes)
from .space import NetworkSpec

# A step with kernel scratch: (activation bytes live, smallest scratch, fast scratch variants fastest
# first, extra flash of the plain kernel that runs when it keeps the smallest scratch).
Step = tuple[int, int, tuple[int, ...], int]


@dataclass(frozen=True)
class Estimate:
    peak_sram_bytes: int  # the arena: every activation and kernel scratch (plan_memory(...).lower_bound)
    flash_bytes: int  # const data as the code generator stores it
    param_bytes: int  # int8 weights + int32 biases
    macs: int
    ops: int  # operators in the graph


@cache
def _depthwise(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """(output size, in-place ring rows, plane bytes) of a square SAME depthwise conv."""
    out = -(-size // stride)
    pad_top = max((out - 1) * stride + kernel - size, 0) // 2
    rows = dw_ring_rows(1, size, size, out, out, kernel, stride, 1, pad_top)
    return out, rows, dw_plane_bytes(out, out, kernel, kernel, stride, stride)


@cache
def _column(in_channels: int) -> tuple[int, ...]:
    """The 1x1 conv's one fast variant: its column."""
    return (pointwise_column_bytes(in_channels),)


def estimate(spec: NetworkSpec) -> Estimate:
    """Peak SRAM (equal to plan_memory(to_graph(spec)).lower_bound), flash and MACs of `spec`."""
    steps: list[Step] = []
    bare = 0  # the largest live set of the steps without scratch
    size, channels = spec.resolution, spec.image_channels
    x = ((size * size * channels + 3) & ~3) or 4  # tensor bytes: aligned to 4, at least 4

    out, stem = -(-size // 2), spec.stem_channels  # the stem: 3x3 stride 2 through im2col
    depth = im2col_stride(3, 3, channels)
    y = ((out * out * stem + 3) & ~3) or 4
    steps.append((x + y, 0, (9 * depth + 4, 4 * (depth + 1) + 4), 0))
    top = x + y  # the largest live set so far of the steps with scratch, with the smallest scratch
    macs = out * out * stem * 9 * channels
    weights = stem * 9 * channels
    requant_rows = stem  # output channels of conv and depthwise layers
    # the code generator stores the filter rows as given and, when they need padding, padded as well
    extra_flash = stem * depth if depth != 9 * channels else 0
    n_ops = 1
    size, channels, x = out, stem, y

    for stage in spec.stages:
        expand, kernel, out_channels = stage.expand, stage.kernel, stage.channels
        kk = kernel * kernel
        for repeat in range(stage.repeats):
            stride = stage.stride if repeat == 0 else 1
            hidden = channels * expand
            residual = stride == 1 and channels == out_channels
            keep = x if residual else 0  # the block input, live until the ADD
            area = size * size
            if expand != 1:
                e = ((area * hidden + 3) & ~3) or 4
                steps.append((x + e, 0, _column(channels), 0))
                if x + e > top:
                    top = x + e
                weights += hidden * channels
                macs += area * hidden * channels
                requant_rows += hidden
                n_ops += 1
            else:
                e = x
            out, rows, plane = _depthwise(size, kernel, stride)
            out_area = out * out
            d = ((out_area * hidden + 3) & ~3) or 4
            if expand != 1 or not residual:  # the depthwise input dies here: in place
                ring = rows * out * hidden
                live = keep + (e if e > d else d)
                steps.append((live, out_area, (ring if ring > plane else plane, ring), 12 * hidden))
                live += (out_area + 3) & ~3
            else:
                live = x + d
                steps.append((live, 0, (plane,), 0))
            if live > top:
                top = live
            p = ((out_area * out_channels + 3) & ~3) or 4
            live = keep + d + p
            steps.append((live, 0, _column(hidden), 0))
            if live > top:
                top = live
            if residual and x + p > bare:  # the ADD
                bare = x + p
            weights += hidden * (kk + out_channels)
            macs += out_area * hidden * (kk + out_channels)
            requant_rows += hidden + out_channels
            n_ops += 3 if residual else 2
            size, channels, x = out, out_channels, p

    head = spec.head_channels
    if head:
        y = ((size * size * head + 3) & ~3) or 4
        steps.append((x + y, 0, _column(channels), 0))
        top = max(top, x + y)
        weights += head * channels
        macs += size * size * head * channels
        requant_rows += head
        n_ops += 1
        channels, x = head, y
    classes = spec.classes
    pooled, logits = ((channels + 3) & ~3) or 4, ((classes + 3) & ~3) or 4
    bare = max(bare, x + pooled, pooled + logits, 2 * logits)  # pool, reshape (an alias), FC, softmax
    weights += classes * channels
    macs += classes * channels
    n_ops += 4

    peak, plain_flash = _chosen_peak(steps, max(top, bare), bare)
    params = weights + 4 * requant_rows + 4 * classes
    flash = weights + 16 * requant_rows + 4 * classes + extra_flash + plain_flash
    return Estimate(peak, flash, params, macs, n_ops)


def _chosen_peak(steps: list[Step], top: int, bare: int) -> tuple[int, int]:
    """The largest live set once each step has its chosen scratch (a fast variant when it needs no more
    than the smallest or keeps the step within `top` - SLACK_MARGIN), and the plain kernels' extra flash.
    `top`: the largest live set with the smallest scratch; `bare`: that of the steps without scratch."""
    limit = top - SLACK_MARGIN
    peak = bare
    plain_flash = 0
    for live, smallest, variants, plain in steps:
        chosen = smallest
        for nbytes in variants:
            if nbytes <= smallest or live + ((smallest + 3) & ~3) + nbytes - smallest <= limit:
                chosen = nbytes
                break
        else:
            plain_flash += plain
        live += (chosen + 3) & ~3
        if live > peak:
            peak = live
    return peak, plain_flash
