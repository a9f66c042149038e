"""NAS cost model: peak SRAM, flash and MACs of a candidate network from its shapes alone.

    est = estimate(spec)     # Estimate(peak_sram_bytes, flash_bytes, param_bytes, macs, ops)
    rows = layers(spec)      # the Layer records (nas.layers) the latency and code-size models take

No graph, no weights, no numpy: integer arithmetic over the blocks, thousands of networks a second, for
images (square) and signals (1 x L). It replays what the planner does on `to_graph(spec)` with its default
settings (align 4, in place), through the planner's own shape rules (engine.plan.scratch):
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
multipliers and shifts too, and for the im2col stem whose filter rows need padding to a multiple of 4 both
the padded rows and the unpadded ones (emit_conv stores both). The code generator stores identical arrays
once, so it could come out lower if two layers had the same multipliers or shifts. `param_bytes` counts
int8 weights and int32 biases only (analyze's flash_weights_bytes). MACs count as engine/opinfo.py does.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ..engine.plan.scratch import (SLACK_MARGIN, dw_plane_bytes, dw_ring_rows, im2col_stride,
                                   pointwise_column_bytes, uses_im2col)
from ..frontends.tflite_ops import same_pads
from .layers import Layer
from .space import NetworkSpec

# Fast scratch variants of a step, fastest first: (variant, bytes, plane).
Variants = tuple[tuple[str, int, bool], ...]


@dataclass(frozen=True)
class Estimate:
    peak_sram_bytes: int  # the arena: every activation and kernel scratch (plan_memory(...).lower_bound)
    flash_bytes: int  # const data as the code generator stores it
    param_bytes: int  # int8 weights + int32 biases
    macs: int
    ops: int  # operators in the graph
    weight_bytes: int = 0  # int8 weight values (of flash_bytes)
    int4_weight_bytes: int = 0  # the same weights as int4: two per byte, each tensor rounded up to a byte


@dataclass
class _Step:
    """One op with kernel scratch: the bytes live without scratch, its smallest scratch (and variant), its
    fast variants, the extra flash of the plain kernel that runs when it keeps the smallest scratch, and
    (when layer records are asked for) its Layer without a variant."""

    live: int
    smallest: int
    minimal: str
    variants: Variants
    plain_flash: int
    layer: Layer | None


def _aligned(nbytes: int) -> int:
    return ((nbytes + 3) & ~3) or 4  # tensor bytes: aligned to 4, at least 4


@cache
def _depthwise(in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int]
               ) -> tuple[tuple[int, int], int, int]:
    """((out_h, out_w), in-place ring rows, plane bytes) of a SAME depthwise conv."""
    out = (-(-in_hw[0] // stride[0]), -(-in_hw[1] // stride[1]))
    pad_top = same_pads(in_hw[0], out[0], kernel[0], stride[0], 1)[0]
    rows = dw_ring_rows(1, in_hw[0], in_hw[1], out[0], out[1], kernel[0], stride[0], 1, pad_top)
    return out, rows, dw_plane_bytes(out[0], out[1], kernel[0], kernel[1], stride[0], stride[1])


@cache
def _column(in_channels: int) -> Variants:
    """The 1x1 conv's one fast variant: its column."""
    return (("column", pointwise_column_bytes(in_channels), False),)


@cache
def _stem(in_hw: tuple[int, int], channels: int, kernel: tuple[int, int], stride: tuple[int, int]
          ) -> tuple[tuple[int, int], Variants, int]:
    """((out_h, out_w), fast variants, padded filter values per output channel) of the stem conv."""
    out = (-(-in_hw[0] // stride[0]), -(-in_hw[1] // stride[1]))
    pads = [same_pads(in_hw[i], out[i], kernel[i], stride[i], 1)[0] for i in (0, 1)]
    if not uses_im2col(*kernel, 1, pads[0], pads[1], *in_hw, *out, *stride):
        return out, _column(channels), 0
    depth = im2col_stride(*kernel, channels)
    padded = depth if (kernel[1] * channels) % 4 else 0  # emit_conv stores padded rows as well
    return out, (("im2col4", 9 * depth + 4, False), ("im2col", 4 * (depth + 1) + 4, False)), padded


def estimate(spec: NetworkSpec) -> Estimate:
    """Peak SRAM (equal to plan_memory(to_graph(spec)).lower_bound), flash and MACs of `spec`."""
    return _walk(spec, False)[0]


def layers(spec: NetworkSpec) -> list[Layer]:
    """The layers `compile_model(to_graph(spec))` runs, with the kernel variants its planner chooses
    (equal to nas.layers.layers_of on the compiled model)."""
    return _walk(spec, True)[1]


def _walk(spec: NetworkSpec, records: bool) -> tuple[Estimate, list[Layer]]:
    steps: list[_Step] = []
    rows: list[Layer | _Step] = []  # with `records`: every op in order (steps get their variant below)

    def add(step: _Step) -> None:
        steps.append(step)
        if records:
            rows.append(step)
    bare = 0  # the largest live set of the ops without scratch
    h, w, channels = spec.input_shape
    x = _aligned(h * w * channels)

    k3, s2 = spec.window(3), spec.window(2)
    (oh, ow), variants, padded = _stem((h, w), channels, k3, s2)
    stem = spec.stem_channels
    y = _aligned(oh * ow * stem)
    macs = oh * ow * stem * k3[0] * k3[1] * channels
    add(_Step(x + y, 0, "", variants, 0, Layer("CONV_2D", (h, w, channels), (oh, ow, stem), k3, s2, "RELU6",
                                                macs=macs) if records else None))
    top = x + y  # the largest live set so far of the steps with scratch, with the smallest scratch
    weights = stem * k3[0] * k3[1] * channels
    weights4 = (weights + 1) // 2
    requant_rows = stem  # output channels of conv and depthwise layers
    extra_flash = stem * padded
    n_ops = 1
    h, w, channels, x = oh, ow, stem, y

    for block in spec.blocks():
        expand, out_channels, kernel, stride = block.expand, block.channels, spec.window(block.kernel), \
            spec.window(block.stride)
        hidden = channels * expand
        residual = block.stride == 1 and channels == out_channels
        keep = x if residual else 0  # the block input, live until the ADD
        area = h * w
        if expand != 1:
            e = _aligned(area * hidden)
            m = area * hidden * channels
            add(_Step(x + e, 0, "", _column(channels), 0, Layer(
                "CONV_2D", (h, w, channels), (h, w, hidden), activation="RELU6", macs=m) if records else None))
            top = max(top, x + e)
            weights += hidden * channels
            weights4 += (hidden * channels + 1) // 2
            macs += m
            requant_rows += hidden
            n_ops += 1
        else:
            e = x
        (oh, ow), ring_rows, plane = _depthwise((h, w), kernel, stride)
        out_area = oh * ow
        d = _aligned(out_area * hidden)
        m = out_area * hidden * kernel[0] * kernel[1]
        layer = Layer("DEPTHWISE_CONV_2D", (h, w, hidden), (oh, ow, hidden), kernel, stride, "RELU6",
                      macs=m) if records else None
        if expand != 1 or not residual:  # the depthwise input dies here: in place
            ring = ring_rows * ow * hidden
            live = keep + max(e, d)
            variants = (("rows", max(ring, plane), True), ("rows", ring, False)) if plane else \
                (("rows", ring, False),)
            add(_Step(live, out_area, "channels", variants, 12 * hidden, _inplace(layer) if layer else None))
            live += _aligned(out_area)
        else:
            live = x + d
            add(_Step(live, 0, "", (("rows", plane, True),), 0, layer))
        top = max(top, live)
        p = _aligned(out_area * out_channels)
        live = keep + d + p
        m2 = out_area * hidden * out_channels
        add(_Step(live, 0, "", _column(hidden), 0, Layer(
            "CONV_2D", (oh, ow, hidden), (oh, ow, out_channels), macs=m2) if records else None))
        top = max(top, live)
        if residual:  # the ADD, in place over an input
            bare = max(bare, x + p)
            if records:
                rows.append(Layer("ADD", (oh, ow, out_channels), (oh, ow, out_channels), inplace=True))
        weights += hidden * (kernel[0] * kernel[1] + out_channels)
        weights4 += (hidden * kernel[0] * kernel[1] + 1) // 2 + (hidden * out_channels + 1) // 2
        macs += m + m2
        requant_rows += hidden + out_channels
        n_ops += 3 if residual else 2
        h, w, channels, x = oh, ow, out_channels, p

    head = spec.head_channels
    if head:
        y = _aligned(h * w * head)
        m = h * w * head * channels
        add(_Step(x + y, 0, "", _column(channels), 0, Layer(
            "CONV_2D", (h, w, channels), (h, w, head), activation="RELU6", macs=m) if records else None))
        top = max(top, x + y)
        weights += head * channels
        weights4 += (head * channels + 1) // 2
        macs += m
        requant_rows += head
        n_ops += 1
        channels, x = head, y
    classes = spec.classes
    pooled, logits = _aligned(channels), _aligned(classes)
    bare = max(bare, x + pooled, pooled + logits, 2 * logits)  # pool, reshape (an alias), FC, softmax
    weights += classes * channels
    weights4 += (classes * channels + 1) // 2
    macs += classes * channels
    n_ops += 4

    peak, plain_flash, chosen = _choose(steps, max(top, bare), bare)
    params = weights + 4 * requant_rows + 4 * classes
    flash = weights + 16 * requant_rows + 4 * classes + extra_flash + plain_flash
    est = Estimate(peak, flash, params, macs, n_ops, weights, weights4)
    if not records:
        return est, []
    index = {id(s): i for i, s in enumerate(steps)}
    out = [_with_variant(r.layer, chosen[index[id(r)]]) if isinstance(r, _Step) else r for r in rows]  # type: ignore[arg-type]
    pool = "AVERAGE_POOL_2D" if spec.pool == "avg" else "MAX_POOL_2D"
    out += [Layer(pool, (h, w, channels), (1, 1, channels), (h, w), (h, w)),
            Layer("RESHAPE", (1, 1, channels), (1, 1, channels)),  # an alias, not an in-place op
            Layer("FULLY_CONNECTED", (1, 1, channels), (1, 1, classes), macs=classes * channels),
            Layer("SOFTMAX", (1, 1, classes), (1, 1, classes))]
    return est, out


def _inplace(layer: Layer) -> Layer:
    return Layer(**{**layer.__dict__, "inplace": True})


def _with_variant(layer: Layer, variant: tuple[str, bool]) -> Layer:
    return Layer(**{**layer.__dict__, "variant": variant[0], "plane": variant[1]})


def _choose(steps: list[_Step], top: int, bare: int) -> tuple[int, int, list[tuple[str, bool]]]:
    """The largest live set once each step has its chosen scratch (a fast variant when it needs no more
    than the smallest or keeps the step within `top` - SLACK_MARGIN), the plain kernels' extra flash, and
    each step's chosen (variant, plane). `top`: the largest live set with the smallest scratch; `bare`:
    that of the ops without scratch."""
    limit = top - SLACK_MARGIN
    peak = bare
    plain_flash = 0
    chosen: list[tuple[str, bool]] = []
    for step in steps:
        nbytes, pick = step.smallest, (step.minimal, False)
        for variant, size, plane in step.variants:
            if size <= step.smallest or step.live + ((step.smallest + 3) & ~3) + size - step.smallest <= limit:
                nbytes, pick = size, (variant, plane)
                break
        else:
            plain_flash += step.plain_flash
        chosen.append(pick)
        live = step.live + ((nbytes + 3) & ~3)
        if live > peak:
            peak = live
    return peak, plain_flash, chosen
