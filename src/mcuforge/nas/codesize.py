"""NAS code-size oracle: flash taken by a network's code (not its weights) on Cortex-M4/M7.

    code_bytes(layers, "cortex-m7")            # .text of the model's C at -Os (what firmware builds use)
    code_bytes(layers, "cortex-m7", opt="O2")  # at -O2 (the speed build)

The quantity is SizeReport.code_bytes (targets/cortex_m/size.py): the .text that arm-none-eabi-size
reports for the model's objects of a Cortex-M build (the <name>.c invoke function with its layer bodies
and the kernels it pulls in; the weights, the model's small .rodata tables, the harness and libc are not
in it). At -O2 and at -Os alike every kernel is inlined into each layer's call and specialised by its
literal shapes (runtime/mcu_build.h): each layer brings its own copy, whose size follows what the compiler
unrolls (the depthwise plane kernel's output blocks and window rows, the pointwise GEMM's depth remainder,
...); -Os compiles the same copies for size. (-DMCU_SMALL_CODE, one shared copy per kernel, is not
modelled.)

Both are linear in counts from nas.latency's kernel paths, with non-negative coefficients fitted by
least squares on measured networks (bench/latency.py, docs/latency.md). Identical layer bodies would be
shared as one static function (engine/codegen/shared_layers.py), but layers with weights of their own
never are identical in a layer-by-layer build, so every layer counts.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources

from ..operators.variants import Variant
from .latency import GEMM_UNROLL, PLANE_BLOCK, kernel_path, plane_loads, pointwise_runs, spent_flags
from .layers import Layer

TABLE = "codesize_table.json"
OPTS = ("Os", "O2")
PATHS = ("conv1x1", "im2col", "dw_plane", "dw_rows", "dw_channels", "add", "pool", "fc", "softmax", "alias",
         "generic")
# per-layer features, beyond the layer itself ("one"), by path
O2_FEATURES: dict[str, tuple[str, ...]] = {
    "conv1x1": ("one", "no_activation", "three_px_loops", "four_px_loops", "column_pair_loops", "int8_pair_loops",
                "three_px_tail_steps", "four_px_steps", "four_px_peeled_loop"),
    "im2col": ("one", "window_rows"),
    "dw_plane": ("one", "block_code", "window_rows"),
    "dw_rows": ("one", "taps"),
}


def _opt(opt: str) -> str:
    o = opt.lstrip("-")
    if o not in OPTS:
        raise ValueError(f"code size is modelled at {', '.join('-' + x for x in OPTS)}, not {opt!r}")
    return o


def _o2_layer(layer: Layer, path: str, spent: bool) -> list[float]:
    if path == "conv1x1":  # the pixel loops that run at all: the compiler drops the others (literal counts)
        groups = layer.in_shape[2] // 4
        rows = pointwise_runs(layer, spent)
        live = [0, 0, 0, 0]
        for k in range(len(rows[0])):  # each run call is a copy of the loops
            for j, index in enumerate((0, 1, 2, 4)):
                live[j] += any(runs[k][index] > 0 for runs in rows)
        three, four, pairs, int8 = live
        return [1, int(layer.activation == "NONE"), three, four, pairs, int8, three * (groups % GEMM_UNROLL),
                four * groups, four * (GEMM_UNROLL <= groups < 2 * GEMM_UNROLL)]
    if path == "im2col":
        return [1, layer.kernel[0]]
    if path == "dw_plane":
        ow, (kh, kw), sw = layer.out_shape[1], layer.kernel, layer.stride[1]
        pairs = (kw + 1) // 2
        nblocks = -(-ow // PLANE_BLOCK)
        block = -(-ow // nblocks)
        sizes = {block} | ({ow % block} if ow % block else set())
        return [1, sum(kh * (plane_loads(n, sw, pairs) + n * pairs) + n for n in sizes), kh]
    if path == "dw_rows":
        kh, kw = layer.kernel
        return [1, kh * kw]
    return [1]


def feature_names(opt: str) -> list[str]:
    """Names of the network features code_bytes is linear in."""
    _opt(opt)
    names = ["one", *(f"uses {p} once" for p in PATHS), *(f"uses {p} more than once" for p in PATHS)]
    for p in PATHS:
        names += [f"{p}: {f}" for f in O2_FEATURES.get(p, ("one",))]
    return names + ["a pointwise conv over its spent input", "a pointwise conv with a borrowed column"]


def network_features(layers: Sequence[Layer], opt: str = "Os") -> list[float]:
    """The network's features, the same at both levels: a constant; which kernel paths it uses once and
    more than once; per path the sum of its layers' features (the layer count and what the specialised
    copies unroll); whether any pointwise convolution takes the spent-input or the borrowed-column loops."""
    _opt(opt)
    sums: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    spent_any = borrowed_any = 0.0
    for layer, spent in zip(layers, spent_flags(layers)):
        path = kernel_path(layer)
        f = _o2_layer(layer, path, spent)
        acc = sums.setdefault(path, [0.0] * len(f))
        for i, v in enumerate(f):
            acc[i] += v
        counts[path] = counts.get(path, 0) + 1
        if path == "conv1x1" and layer.variant != Variant.COLUMN:
            spent_any, borrowed_any = max(spent_any, float(spent)), max(borrowed_any, float(not spent))
    out: list[float] = [1.0, *(float(counts.get(p) == 1) for p in PATHS),
                        *(float(counts.get(p, 0) > 1) for p in PATHS)]
    for p in PATHS:
        out += sums.get(p, [0.0] * len(O2_FEATURES.get(p, ("one",))))
    return out + [spent_any, borrowed_any]


@cache
def table() -> dict:
    """The fitted coefficients (src/mcuforge/nas/codesize_table.json, written by bench/latency.py fit)."""
    return json.loads(resources.files(__package__).joinpath(TABLE).read_text())


def code_bytes(layers: Sequence[Layer], core: str, opt: str = "Os") -> int:
    """Predicted .text bytes of the model's code (SizeReport.code_bytes) built for `core` at `opt`
    ('Os' or 'O2', with or without the dash)."""
    o = _opt(opt)
    try:
        coef = table()["cores"][core][o]
    except KeyError:
        raise ValueError(f"no code-size coefficients for {core!r} at -{o} "
                         f"(fitted: {', '.join(table()['cores'])})") from None
    feats = network_features(layers, o)
    if len(coef) != len(feats):
        raise ValueError(f"{TABLE} was fitted for other features ({len(coef)}, not {len(feats)}): "
                         "run python bench/latency.py fit")
    return round(sum(a * b for a, b in zip(coef, feats)))
