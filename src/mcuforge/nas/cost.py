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
multipliers and shifts too, and for the im2col stem whose filter rows need padding to a multiple of 4 the
padded rows instead of the given ones (operators/conv_2d.py stores only those). The code generator stores identical arrays
once, so it could come out lower if two layers had the same multipliers or shifts. `param_bytes` counts
int8 weights and int32 biases only (MemoryReport.param_bytes). MACs count as engine/opinfo.py does.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache, partial
from typing import Callable

from ..engine.codegen.requant import CHANNEL_ROW, PLAIN_CHANNEL_VALUES
from ..engine.plan.lifetimes import ALIGN, buffer_bytes, round_up
from ..engine.plan.scratch import SLACK_MARGIN
from ..operators.conv_2d import im2col_stride, is_pointwise, pointwise_column_bytes
from ..operators.depthwise_conv_2d import dw_plane_bytes, dw_ring_rows
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
    weight_sizes: tuple[int, ...] = ()  # values of each weight tensor (for the flash of other weight formats)
    stem_filter_bytes: int = 0  # the padded im2col stem's filter as given (int8): not stored in int8 (see const_bytes)


@dataclass(slots=True)
class _Step:
    """One op with kernel scratch: the bytes live without scratch, its smallest scratch (and variant), its
    fast variants, the extra flash of the plain kernel that runs when it keeps the smallest scratch, and
    (when layer records are asked for) its Layer without a variant."""

    live: int
    smallest: int
    minimal: str
    variants: Variants
    plain_flash: int
    layer: Callable[..., Layer] | None  # the Layer, given its variant and plane


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
    if is_pointwise(*kernel, pads[0], pads[1], *in_hw, *out, *stride):
        return out, _column(channels), 0
    depth = im2col_stride(*kernel, channels)
    padded = depth if (kernel[1] * channels) % 4 else 0  # conv_2d.emit stores the padded rows instead
    return out, (("im2col4", 9 * depth + 4, False), ("im2col", 4 * (depth + 1) + 4, False)), padded


def estimate(spec: NetworkSpec) -> Estimate:
    """Peak SRAM (equal to plan_memory(to_graph(spec)).lower_bound), flash and MACs of `spec`."""
    return _walk(spec, False)[0]


def layers(spec: NetworkSpec) -> list[Layer]:
    """The layers `compile_model(to_graph(spec))` runs, with the kernel variants its planner chooses
    (equal to nas.layers.layers_of on the compiled model)."""
    return _walk(spec, True)[1]


class _Tally:
    """The running totals of a walk over a network: steps with scratch, flash and MACs."""

    def __init__(self, records: bool) -> None:
        self.records = records
        self.steps: list[_Step] = []
        self.rows: list[Layer | _Step] = []  # with `records`: every op in order (steps get variants later)
        self.order: list[_Step] = []  # every op in order, those without scratch as steps without variants
        self.top = 0  # the largest live set of the steps with scratch, with the smallest scratch
        self.bare = 0  # the largest live set of the ops without scratch
        self.weights = self.macs = self.requant_rows = self.ops = 0
        self.sizes: list[int] = []  # values of each weight tensor

    def weighted(self, step: _Step, weight_tensors: tuple[int, ...], requant_rows: int, macs: int,
                 top: int) -> None:
        """A conv or depthwise layer: its step (live bytes `top` with the smallest scratch), the values of
        each weight tensor, its requantization rows and MACs."""
        self.steps.append(step)
        self.order.append(step)
        if self.records:
            self.rows.append(step)
        self.top = max(self.top, top)
        self.weights += sum(weight_tensors)
        self.sizes.extend(weight_tensors)
        self.requant_rows += requant_rows
        self.macs += macs
        self.ops += 1

    def pointwise(self, hw: tuple[int, int], c_in: int, c_out: int, live: int, activation: str) -> None:
        """A 1x1 conv from c_in to c_out channels with `live` bytes live while it runs."""
        m = hw[0] * hw[1] * c_in * c_out
        layer = partial(Layer, "CONV_2D", (*hw, c_in), (*hw, c_out), activation=activation, macs=m) \
            if self.records else None
        self.weighted(_Step(live, 0, "", _column(c_in), 0, layer), (c_in * c_out,), c_out, m, live)

    def other(self, layer: Layer | None, live: int) -> None:
        """An op without scratch or weights (ADD, pool, reshape, softmax) with `live` bytes live."""
        self.bare = max(self.bare, live)
        self.order.append(_Step(live, 0, "", (), 0, None))
        if self.records and layer is not None:
            self.rows.append(layer)
        self.ops += 1


def _walk(spec: NetworkSpec, records: bool) -> tuple[Estimate, list[Layer]]:
    return _run(spec, records)[:2]


def layer_steps(spec: NetworkSpec) -> tuple[list[_Step], list[Layer]]:
    """Every op of `to_graph(spec)` in order, as a step (bytes live without scratch, smallest scratch, fast
    variants), and the Layer records: what nas.auto rewrites."""
    _, rows, t = _run(spec, True)
    return t.order, rows


def _run(spec: NetworkSpec, records: bool) -> tuple[Estimate, list[Layer], _Tally]:
    t = _Tally(records)
    h, w, channels = spec.input_shape
    x = buffer_bytes(h * w * channels)

    k3, s2 = spec.window(3), spec.window(2)
    (oh, ow), variants, padded = _stem((h, w), channels, k3, s2)
    stem = spec.stem_channels
    y = buffer_bytes(oh * ow * stem)
    m = oh * ow * stem * k3[0] * k3[1] * channels
    layer = partial(Layer, "CONV_2D", (h, w, channels), (oh, ow, stem), k3, s2, "RELU6", macs=m) if records else None
    t.weighted(_Step(x + y, 0, "", variants, 0, layer), (stem * k3[0] * k3[1] * channels,), stem, m, x + y)
    extra_flash = stem * (padded - k3[0] * k3[1] * channels) if padded else 0  # only the padded rows are stored
    h, w, channels, x = oh, ow, stem, y

    for block in spec.blocks():
        expand, out_channels, kernel, stride = block.expand, block.channels, spec.window(block.kernel), \
            spec.window(block.stride)
        hidden = channels * expand
        residual = block.stride == 1 and channels == out_channels
        keep = x if residual else 0  # the block input, live until the ADD
        e = x
        if expand != 1:
            e = buffer_bytes(h * w * hidden)
            t.pointwise((h, w), channels, hidden, x + e, "RELU6")
        (oh, ow), ring_rows, plane = _depthwise((h, w), kernel, stride)
        out_area = oh * ow
        d = buffer_bytes(out_area * hidden)
        m = out_area * hidden * kernel[0] * kernel[1]
        in_place = expand != 1 or not residual  # the depthwise input dies here: in place
        layer = partial(Layer, "DEPTHWISE_CONV_2D", (h, w, hidden), (oh, ow, hidden), kernel, stride, "RELU6",
                        inplace=in_place, macs=m) if records else None
        if in_place:
            ring = ring_rows * ow * hidden
            live = keep + max(e, d)
            variants = (("rows", max(ring, plane), True), ("rows", ring, False)) if plane else \
                (("rows", ring, False),)
            step = _Step(live, out_area, "channels", variants, 4 * PLAIN_CHANNEL_VALUES * hidden, layer)
            live += buffer_bytes(out_area)
        else:
            live = x + d
            step = _Step(live, 0, "", (("rows", plane, True),), 0, layer)
        t.weighted(step, (hidden * kernel[0] * kernel[1],), hidden, m, live)
        p = buffer_bytes(out_area * out_channels)
        t.pointwise((oh, ow), hidden, out_channels, keep + d + p, "NONE")
        if residual:  # the ADD, in place over an input
            t.other(Layer("ADD", (oh, ow, out_channels), (oh, ow, out_channels), inplace=True) if records else None,
                    x + p)
        h, w, channels, x = oh, ow, out_channels, p

    if spec.head_channels:
        y = buffer_bytes(h * w * spec.head_channels)
        t.pointwise((h, w), channels, spec.head_channels, x + y, "RELU6")
        channels, x = spec.head_channels, y
    classes = spec.classes
    pooled, logits = buffer_bytes(channels), buffer_bytes(classes)
    pool = "AVERAGE_POOL_2D" if spec.pool == "avg" else "MAX_POOL_2D"
    t.other(Layer(pool, (h, w, channels), (1, 1, channels), (h, w), (h, w)) if records else None, x + pooled)
    t.other(Layer("RESHAPE", (1, 1, channels), (1, 1, channels)) if records else None, pooled)  # an alias
    t.other(Layer("FULLY_CONNECTED", (1, 1, channels), (1, 1, classes), macs=classes * channels)
            if records else None, pooled + logits)
    t.other(Layer("SOFTMAX", (1, 1, classes), (1, 1, classes)) if records else None, 2 * logits)
    t.weights += classes * channels
    t.sizes.append(classes * channels)
    t.macs += classes * channels

    peak, plain_flash, chosen = _choose(t.steps, max(t.top, t.bare), t.bare)
    params = t.weights + 4 * t.requant_rows + 4 * classes
    flash = t.weights + 4 * CHANNEL_ROW * t.requant_rows + 4 * classes + extra_flash + plain_flash
    est = Estimate(peak, flash, params, t.macs, t.ops, t.weights, tuple(t.sizes),
                   stem * k3[0] * k3[1] * spec.input_shape[2] if padded else 0)
    if not records:
        return est, [], t
    index = {id(s): i for i, s in enumerate(t.steps)}
    return est, [r.layer(variant=chosen[index[id(r)]][0], plane=chosen[index[id(r)]][1])  # type: ignore[misc]
                 if isinstance(r, _Step) else r for r in t.rows], t


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
            if size <= step.smallest or step.live + round_up(step.smallest, ALIGN) + size - step.smallest <= limit:
                nbytes, pick = size, (variant, plane)
                break
        else:
            plain_flash += step.plain_flash
        chosen.append(pick)
        live = step.live + round_up(nbytes, ALIGN)
        if live > peak:
            peak = live
    return peak, plain_flash, chosen
