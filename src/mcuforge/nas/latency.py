"""NAS latency oracle: Cortex-M4/M7 instructions of a network from its layer records alone.

    layers = layers_of(compiled.graph, compiled.plan)      # or the shape-only records of a NetworkSpec
    predict_instructions(layers, "cortex-m7")            # instructions of one inference (-O2 build)
    layer_instructions(layers, "cortex-m7")              # the same, per layer
    estimate_ms(layers, get_board("stm32f746"))          # instructions / the board's clock: an estimate

Each layer is reduced to the kernel path the engine runs for it (which kernel, which of its inner loops:
engine/runtime and the variant the planner chose) and a few counts of that path's work, computed from
the shapes the way the kernel's loops run (pixels through the three- or four-pixel GEMM, SMLAD steps,
depthwise plane loads per output block, taps of border pixels, ...). Instructions are a linear function
of those counts with non-negative coefficients per kernel class (path, activation, window, stride),
fitted by least squares on the QEMU plugin's per-layer counts of our own kernels built at -O2
(bench.SPEED_OPT) for random MCUNet networks (bench/latency.py, docs/latency.md). A class the fit did
not see falls back to its path's pooled coefficients, then to a generic MACs-and-elements model.

The counts are those of one inference on the seeded random input of bench.SEED: requantization, softmax
and a few other kernels take data-dependent branches, which moves counts by well under 1 %. Cycles are
not instructions: estimate_ms takes one cycle per instruction, as the CLI's board estimate does.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache, lru_cache
from importlib import resources

from ..operators.variants import Variant
from ..operators.conv_2d import im2col_stride
from .layers import Layer

TABLE = "latency_table.json"
PLANE_BLOCK = 8  # MCU_DW_PLANE_BLOCK
BIG_BLOCK = 7  # plane blocks of this many outputs or more cost more per tap (measured: register pressure)
GEMM_UNROLL = 8  # MCU_4PX_UNROLL: depth groups per inner-loop iteration
THREE_PX_MIN_DEPTH = 8 * GEMM_UNROLL  # MCU_3PX_MIN_DEPTH
POOL_BLOCK = 16  # MCU_POOL_BLOCK

FEATURES: dict[str, tuple[str, ...]] = {
    "conv1x1": ("one", "rows", "px3", "px3_filters", "px3_steps", "px3_iters", "px3_pack",
                "px4", "px4_filters", "px4_steps", "px4_iters", "px4_pack",
                "col_pairs", "col_filters", "col_steps", "col_pack", "s8_pairs", "s8_filters", "s8_steps"),
    "im2col": ("one", "quads", "quad_filters", "quad_steps", "quad_inside_px", "quad_border_px",
               "quad_border_values", "pairs", "pair_filters", "pair_steps", "pair_px", "pair_border_px",
               "direct_px", "direct_filters", "direct_taps"),
    "dw_plane": ("one", "pad_values", "pad_rows", "channels", "fill_rows", "fill_pairs", "weight_pairs",
                 "out_rows", "blocks", "block_weight_loads", "plane_loads", "smlad", "outputs",
                 "big_block_loads", "big_block_smlad", "one_block_row_smlad"),
    "dw_rows": ("one", "rows", "quad_rows", "quads", "quad_taps", "border_quads", "border_taps",
                "copy_rows", "copy_bytes"),
    "dw_channels": ("one", "channels", "points", "row_iters", "valid_rows", "valid_taps", "copy"),
    "add": ("one", "elements"),
    "pool": ("one", "pixels", "blocks", "channels", "window_values"),
    "fc": ("one", "filters", "steps", "tail", "outputs"),
    "softmax": ("one", "elements"),
    "alias": ("one",),
    "generic": ("one", "macs", "out_elements", "in_elements"),
}


# ------------------------------------------------------------------------------------ kernel paths

def _same_pad(size: int, out: int, kernel: int, stride: int) -> int:
    return max((out - 1) * stride + kernel - size, 0) // 2


def _pointwise(layer: Layer) -> bool:
    (h, w, _), (oh, ow, _) = layer.in_shape, layer.out_shape
    return (layer.kernel == (1, 1) and (oh - 1) * layer.stride[0] < h and (ow - 1) * layer.stride[1] < w
            and _same_pad(h, oh, 1, layer.stride[0]) == 0 and _same_pad(w, ow, 1, layer.stride[1]) == 0)


def kernel_path(layer: Layer) -> str:
    """The engine's kernel path for `layer` on a Cortex-M core with the DSP extension."""
    kind = layer.kind
    if kind == "CONV_2D":
        return "conv1x1" if _pointwise(layer) else "im2col"
    if kind == "DEPTHWISE_CONV_2D":
        if layer.plane:  # the plane kernel (mcu_dwconv_s8_plane), in place or not
            return "dw_plane"
        if layer.variant == Variant.CHANNELS:  # the plain in-place kernel, one channel at a time
            return "dw_channels"
        return "dw_rows"  # row by row, into the output or (in place) through a ring of rows
    if kind in ("ADD", "SUB"):
        return "add"
    if kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return "pool"
    if kind == "FULLY_CONNECTED":
        return "fc"
    if kind == "SOFTMAX":
        return "softmax"
    if kind in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
        return "alias"
    return "generic"


def class_keys(layer: Layer) -> tuple[str, ...]:
    """The coefficient classes of `layer`, most specific first: path|activation|window|stride, then
    path|activation, then path."""
    path = kernel_path(layer)
    act = "none" if layer.activation == "NONE" else "clamp"
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    return (f"{path}|{act}|k{kh}x{kw}|s{sh}x{sw}", f"{path}|{act}", path)


def _pixel_run(start: int, end: int, fits: int, quads: bool, three: bool, column: bool) -> list[int]:
    """mcu_conv_s8_1x1_run over pixels [start, end) of a row: (triples, quads, pairs through the column,
    pixels in those pairs, pairs from the int8 input). `fits`: the pixels from the row's start whose outputs
    end at or below the column's start (the column, when there is one, may serve them)."""
    n3 = n4 = 0
    col = start
    if quads and column:
        if three:
            n3 = max(min(end, fits) - col, 0) // 3
            col += 3 * n3
        else:
            n4 = max(min(end, fits) - col, 0) // 4
            col += 4 * n4
    iters = (end - col + 1) // 2
    fast = max(min(end, fits) - col, 0) // 2 if column else 0
    if column and (end - col) % 2 and end <= fits:
        fast += 1
    fast = min(fast, iters)
    return [n3, n4, fast, min(2 * fast, end - col), iters - fast]


def spent_input(layer: Layer, input_dies: bool) -> bool:
    """Whether the code generator lets a pointwise convolution without the planner's column put its column
    over the input pixels it has read (plan.kernels' column_over_input): the input dies at this layer, its depth is
    a multiple of 4, and more than 1 % of the pixels would otherwise run without a column."""
    depth, out_c = layer.in_shape[2], layer.out_shape[2]
    pixels = layer.out_shape[0] * layer.out_shape[1]
    blocked = -(-(8 * depth + 3) // max(out_c, 1))
    return input_dies and layer.variant != Variant.COLUMN and depth % 4 == 0 and 100 * blocked > pixels


def pointwise_runs(layer: Layer, spent: bool) -> list[list[list[int]]]:
    """Per output row of a pointwise convolution, its calls of mcu_conv_s8_1x1_run (one, or two over a spent
    input), each as _pixel_run's counts."""
    (h, w, depth), (oh, ow, out_c) = layer.in_shape, layer.out_shape
    one_run = layer.stride == (1, 1) and (h, w) == (oh, ow)
    rows, cols = (1, oh * ow) if one_run else (oh, ow)
    row_step, col_step = (0, depth) if one_run else (layer.stride[0] * w * depth, layer.stride[1] * depth)
    quads = depth % 4 == 0
    three = quads and depth >= THREE_PX_MIN_DEPTH
    column_bytes = (4 * depth if quads else 2 * (depth + depth % 2)) * 2
    out_bytes = oh * ow * out_c
    if layer.variant == Variant.COLUMN:  # the planner's scratch: every pixel may use the column
        column, limit = True, out_bytes
    else:  # the column borrows the output's unwritten end
        column, limit = out_bytes >= column_bytes + 3, (out_bytes - column_bytes) & ~3
    spent = spent and quads and layer.variant != Variant.COLUMN
    out = []
    for row in range(rows):
        base = row * cols * out_c
        fits = (limit - base) // out_c if column else 0
        if spent:  # pixels [first, cols) take a column over the input already read, below no output
            ahead = column_bytes - row * row_step
            first = 0 if ahead <= 0 else min(-(-ahead // col_step), cols)
            out.append([_pixel_run(0, first, fits, quads, three, column),
                        _pixel_run(first, cols, (out_bytes - base) // out_c, quads, three, True)])
        else:
            out.append([_pixel_run(0, cols, fits, quads, three, column)])
    return out


def _conv1x1(layer: Layer, spent: bool) -> list[float]:
    rows = pointwise_runs(layer, spent)
    counts = [sum(run[k] for runs in rows for run in runs) for k in range(5)]
    n3, n4, col_pairs, col_px, s8_pairs = counts
    depth, out_c = layer.in_shape[2], layer.out_shape[2]
    rows = len(rows)
    groups, filter_pairs = depth // 4, (out_c + 1) // 2
    per3 = filter_pairs * groups
    per4 = out_c * groups
    return [1, rows, n3, n3 * filter_pairs, n3 * per3, n3 * filter_pairs * (groups // GEMM_UNROLL), n3 * 3 * groups,
            n4, n4 * out_c, n4 * per4, n4 * out_c * (groups // GEMM_UNROLL), n4 * 4 * groups,
            col_pairs, col_pairs * filter_pairs, col_pairs * filter_pairs * (depth // 4), col_px * depth,
            s8_pairs, s8_pairs * filter_pairs, s8_pairs * filter_pairs * (depth // 4 + depth % 4)]


def _inside(size: int, out: int, kernel: int, stride: int, pad: int) -> int:
    """Output positions along one axis whose window lies inside the input."""
    return sum(1 for o in range(out) if o * stride - pad >= 0 and o * stride - pad + kernel <= size)


def _im2col(layer: Layer) -> list[float]:
    (h, w, c), (oh, ow, out_c) = layer.in_shape, layer.out_shape
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    stride = im2col_stride(kh, kw, c)
    pad_top, pad_left = _same_pad(h, oh, kh, sh), _same_pad(w, ow, kw, sw)
    inside_rows = [o * sh - pad_top >= 0 and o * sh - pad_top + kh <= h for o in range(oh)]
    inside_cols = [o * sw - pad_left >= 0 and o * sw - pad_left + kw <= w for o in range(ow)]
    pixels = oh * ow
    scratch = layer.variant in (Variant.IM2COL4, Variant.IM2COL)
    quads = pixels // 4 if layer.variant == Variant.IM2COL4 and stride % 4 == 0 else 0
    inside = sum(inside_rows[p // ow] and inside_cols[p % ow] for p in range(4 * quads))
    p = 4 * quads
    column_bytes = 4 * (stride + stride % 2)
    end = (pixels * out_c - column_bytes) & ~3  # the borrowed column's start, without scratch
    pairs = pair_px = pair_border = 0
    while p < pixels:
        pair = int(p + 1 < pixels)
        if not scratch and (pixels * out_c < column_bytes + 3 or (p + 1 + pair) * out_c > end):
            break
        pairs, pair_px = pairs + 1, pair_px + 1 + pair
        pair_border += sum(not (inside_rows[q // ow] and inside_cols[q % ow]) for q in range(p, p + 1 + pair))
        p += 2
    direct = pixels - p
    filter_pairs = (out_c + 1) // 2
    return [1, quads, quads * out_c, quads * out_c * stride // 4, inside, 4 * quads - inside,
            (4 * quads - inside) * stride, pairs, pairs * filter_pairs, pairs * filter_pairs * stride // 4, pair_px,
            pair_border, direct, direct * out_c, direct * out_c * kh * kw * c]


def plane_loads(n: int, stride: int, pairs: int) -> int:
    """Plane words one window row of an n-output block loads (mcu_dw_plane_outputs)."""
    span = (n - 1) * stride + 2 * (pairs - 1) + 1
    return sum(1 for j in range(span)
               if any((k := j - 2 * i) >= 0 and k % stride == 0 and k // stride < n for i in range(pairs)))


def _dw_plane(layer: Layer) -> list[float]:
    (h, w, c), (oh, ow, _) = layer.in_shape, layer.out_shape
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    cols = (ow - 1) * sw + kw + 1
    cols += cols % 2
    rows = (oh - 1) * sh + kh
    pad_top, pad_left = _same_pad(h, oh, kh, sh), _same_pad(w, ow, kw, sw)
    first = min(pad_left, cols)
    inside = max(0, min(w, cols - first))
    fill_rows = max(0, min(rows, pad_top + h) - max(pad_top, 0))
    pad_rows = rows - fill_rows
    pad_values = pad_rows * cols + fill_rows * (cols - inside)
    pairs = (kw + 1) // 2
    nblocks = -(-ow // PLANE_BLOCK)
    block = -(-ow // nblocks)
    sizes = [block] * (ow // block) + ([ow % block] if ow % block else [])
    loads = sum(plane_loads(n, sw, pairs) for n in sizes)
    big = [n for n in sizes if n >= BIG_BLOCK]  # blocks whose sums no longer all stay in registers
    per_row = c * oh
    return [1, pad_values, rows, c, c * fill_rows, c * fill_rows * (inside // 2 + inside % 2), c * kh * pairs,
            per_row, per_row * len(sizes), per_row * len(sizes) * kh * pairs, per_row * kh * loads,
            per_row * ow * kh * pairs, per_row * ow,
            per_row * kh * sum(plane_loads(n, sw, pairs) for n in big), per_row * kh * pairs * sum(big),
            per_row * kh * pairs * ow if len(sizes) == 1 else 0]


def _dw_rows(layer: Layer) -> list[float]:
    (h, w, c), (oh, ow, _) = layer.in_shape, layer.out_shape
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    pad_top, pad_left = _same_pad(h, oh, kh, sh), _same_pad(w, ow, kw, sw)
    inner = _inside(h, oh, kh, sh, pad_top) * _inside(w, ow, kw, sw, pad_left)
    quads = -(-c // 4)
    border = quads * (oh * ow - inner)
    copy = layer.inplace
    return [1, oh, oh * quads, oh * ow * quads, oh * ow * quads * kh * kw, border, border * kh * kw,
            oh if copy else 0, oh * ow * c if copy else 0]


def _valid(size: int, out: int, kernel: int, stride: int, pad: int) -> int:
    """Taps inside the input along one axis, summed over the output positions."""
    return sum(min(size, o * stride - pad + kernel) - max(0, o * stride - pad) for o in range(out))


def _dw_channels(layer: Layer) -> list[float]:
    (h, w, c), (oh, ow, _) = layer.in_shape, layer.out_shape
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    vy = _valid(h, oh, kh, sh, _same_pad(h, oh, kh, sh))
    vx = _valid(w, ow, kw, sw, _same_pad(w, ow, kw, sw))
    points = c * oh * ow
    return [1, c, points, points * kh, c * vy * ow, c * vy * vx, points]


def _pool(layer: Layer) -> list[float]:
    (h, w, c), (oh, ow, _) = layer.in_shape, layer.out_shape
    blocks = c // POOL_BLOCK + (c % POOL_BLOCK > 0)
    kh, kw = layer.kernel
    return [1, oh * ow, oh * ow * blocks, oh * ow * c, oh * ow * c * min(kh, h) * min(kw, w)]


def _fc(layer: Layer) -> list[float]:
    depth, out = layer.in_shape[2], layer.out_shape[2]
    batches = layer.in_shape[0] * layer.in_shape[1]
    pairs = (out + 1) // 2 * -(-batches // 2)
    return [1, pairs, pairs * (depth // 4), pairs * (depth % 4), out * batches]


def _elements(shape: tuple[int, int, int]) -> int:
    return shape[0] * shape[1] * shape[2]


def features(layer: Layer, spent: bool = False) -> tuple[str, list[float]]:
    """(kernel path, its work counts in FEATURES[path] order) of one layer. `spent`: a pointwise
    convolution may put its column over its spent input (spent_input)."""
    path = kernel_path(layer)
    if path == "conv1x1":
        return path, _conv1x1(layer, spent)
    if path == "im2col":
        return path, _im2col(layer)
    if path == "dw_plane":
        return path, _dw_plane(layer)
    if path == "dw_rows":
        return path, _dw_rows(layer)
    if path == "dw_channels":
        return path, _dw_channels(layer)
    if path in ("add", "softmax"):
        return path, [1, _elements(layer.out_shape)]
    if path == "pool":
        return path, _pool(layer)
    if path == "fc":
        return path, _fc(layer)
    if path == "alias":
        return path, [1]
    return path, generic_features(layer)


def generic_features(layer: Layer) -> list[float]:
    return [1, layer.macs, _elements(layer.out_shape), _elements(layer.in_shape)]


# ------------------------------------------------------------------------------------ the table

class UnknownCore(ValueError):
    """No fitted latency coefficients for this core."""


@cache
def table() -> dict:
    """The fitted coefficients (src/mcuforge/nas/latency_table.json, written by bench/latency.py fit)."""
    return json.loads(resources.files(__package__).joinpath(TABLE).read_text())


def cores() -> tuple[str, ...]:
    return tuple(table()["cores"])


def _core_table(core: str) -> dict:
    try:
        return table()["cores"][core]
    except KeyError:
        raise UnknownCore(f"no latency coefficients for core {core!r} (fitted: {', '.join(cores())})") from None


def _dot(coef: Sequence[float], feats: Sequence[float]) -> float:
    return sum(a * b for a, b in zip(coef, feats))


def layer_prediction(layer: Layer, core: str, spent: bool = False) -> float:
    """Predicted instructions of one layer (unrounded, before the trace-to-normal build scale)."""
    models = _core_table(core)["classes"]
    _, feats = features(layer, spent)
    for key in class_keys(layer):
        if key in models:
            coef = models[key]
            break
    else:
        coef, feats = models["generic"], generic_features(layer)
    if len(coef) != len(feats):
        raise ValueError(f"{TABLE} was fitted for other features ({len(coef)}, not {len(feats)}): "
                         "run python bench/latency.py fit")
    return _dot(coef, feats)


@lru_cache(maxsize=1 << 16)
def _scaled(layer: Layer, core: str, spent: bool) -> float:
    """A layer's prediction in counts of the normal build (memoised: a search meets the same layers often)."""
    return _core_table(core)["scale"] * layer_prediction(layer, core, spent)


def input_dies(layers: Sequence[Layer]) -> list[bool]:
    """Per layer of a chain (each layer reads the previous one's output), whether its data input dies there:
    not when a later ADD adds it back, i.e. it is the input of a residual block. A residual ADD's other
    operand is the input of the earliest of the three layers before it that takes the ADD's shape (the
    expand conv, or the depthwise conv of a block without one)."""
    dies = [True] * len(layers)
    for j, layer in enumerate(layers):
        if layer.kind in ("ADD", "SUB"):
            for k in range(max(j - 3, 0), j):
                if layers[k].in_shape == layer.out_shape:
                    dies[k] = False
                    break
    return dies


def spent_flags(layers: Sequence[Layer]) -> list[bool]:
    """Per layer, spent_input for the pointwise convolutions of a chain (False for every other layer)."""
    return [kernel_path(layer) == "conv1x1" and spent_input(layer, dies)
            for layer, dies in zip(layers, input_dies(layers))]


def clear_caches() -> None:
    """Forget the loaded table and the memoised predictions (after a new fit)."""
    table.cache_clear()
    _scaled.cache_clear()


def layer_instructions(layers: Sequence[Layer], core: str) -> list[int]:
    """Predicted instructions of each layer of one inference on `core` ('cortex-m4', 'cortex-m7')."""
    return [round(_scaled(layer, core, spent)) for layer, spent in zip(layers, spent_flags(layers))]


def predict_instructions(layers: Sequence[Layer], core: str) -> int:
    """Predicted instructions of one inference (`<name>_invoke()`, -O2 build) on `core`."""
    return round(sum(_scaled(layer, core, spent) for layer, spent in zip(layers, spent_flags(layers))))


def estimate_ms(layers: Sequence[Layer], board) -> float:
    """Estimated milliseconds of one inference on `board` (targets.boards.Board): the predicted
    instructions taken as one cycle each at the board's maximum clock. An estimate: real cycles per
    instruction depend on the core's pipeline, flash wait states and caches."""
    core = board.core if isinstance(board.core, str) else str(board.core)
    return board.cycles_to_ms(predict_instructions(layers, core))
