"""NAS code-size oracle: flash taken by a network's code (not its weights) on Cortex-M4/M7.

    code_bytes(layers, "cortex-m7")            # .text of the model's C at -Os (what firmware builds use)
    code_bytes(layers, "cortex-m7", opt="O2")  # at -O2 (the speed build)

The quantity is SizeReport.code_bytes (targets/cortex_m/size.py): the .text that arm-none-eabi-size
reports for the model's objects of a Cortex-M build (the <name>.c invoke function with its layer bodies
and the kernels it pulls in; the weights, the model's small .rodata tables, the harness and libc are not
in it). The two builds differ in kind:
- at -Os the compiler keeps one shared copy of a kernel (MCU_SPECIALIZE does not force inlining there):
  a fixed part, a part per kernel path the network uses at all, and a call per layer;
- at -O2 every kernel is inlined into each layer's call and specialised by its literal shapes: each layer
  brings its own copy, whose size follows what the compiler unrolls (the depthwise plane kernel's output
  blocks and window rows, the pointwise GEMM's depth remainder, ...).
Both are linear in counts from nas.latency's kernel paths, with non-negative coefficients fitted by
least squares on measured networks (bench/latency.py, docs/latency.md). Identical layer bodies would be
shared as one static function (engine/codegen/shared_layers.py), but layers with weights of their own
never are identical in a layer-by-layer build, so every layer counts.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Sequence

from .latency import PLANE_BLOCK, THREE_PX_MIN_DEPTH, GEMM_UNROLL, _plane_loads, kernel_path
from .layers import Layer

TABLE = "codesize_table.json"
OPTS = ("Os", "O2")
PATHS = ("conv1x1", "im2col", "dw_plane", "dw_rows", "dw_channels", "add", "pool", "fc", "softmax", "alias",
         "generic")
# per-layer features at -O2, beyond the layer itself ("one"), by path
O2_FEATURES: dict[str, tuple[str, ...]] = {
    "conv1x1": ("one", "three_px", "four_px", "depth_tail_steps", "borrowed_column"),
    "im2col": ("one", "four_px", "window_values"),
    "dw_plane": ("one", "block_code", "window_rows"),
    "dw_rows": ("one", "taps", "in_place"),
}


def _opt(opt: str) -> str:
    o = opt.lstrip("-")
    if o not in OPTS:
        raise ValueError(f"code size is modelled at {', '.join('-' + x for x in OPTS)}, not {opt!r}")
    return o


def _o2_layer(layer: Layer, path: str) -> list[float]:
    if path == "conv1x1":
        depth = layer.in_shape[2]
        groups = depth // 4
        quads = depth % 4 == 0
        three = quads and depth >= THREE_PX_MIN_DEPTH
        return [1, int(three), int(quads and not three), groups % GEMM_UNROLL if quads else 0,
                int(layer.variant != "column")]
    if path == "im2col":
        (kh, kw), c = layer.kernel, layer.in_shape[2]
        return [1, int(layer.variant == "im2col4"), kh * kw * c]
    if path == "dw_plane":
        ow, (kh, kw), sw = layer.out_shape[1], layer.kernel, layer.stride[1]
        pairs = (kw + 1) // 2
        nblocks = -(-ow // PLANE_BLOCK)
        block = -(-ow // nblocks)
        sizes = {block} | ({ow % block} if ow % block else set())
        return [1, sum(kh * (_plane_loads(n, sw, pairs) + n * pairs) + n for n in sizes), kh]
    if path == "dw_rows":
        kh, kw = layer.kernel
        return [1, kh * kw, int(layer.inplace)]
    return [1]


def feature_names(opt: str) -> list[str]:
    """Names of the network features code_bytes is linear in."""
    o = _opt(opt)
    names = ["one"] + [f"uses {p}" for p in PATHS]
    for p in PATHS:
        names += [f"{p}: {f}" for f in (O2_FEATURES.get(p, ("one",)) if o == "O2" else ("one",))]
    return names


def network_features(layers: Sequence[Layer], opt: str = "Os") -> list[float]:
    """The network's features: a constant, which kernel paths it uses, and per path the sum of its
    layers' features (-Os: the layer count; -O2: also what the specialised copies unroll)."""
    o = _opt(opt)
    sums: dict[str, list[float]] = {}
    for layer in layers:
        path = kernel_path(layer)
        f = _o2_layer(layer, path) if o == "O2" else [1]
        acc = sums.setdefault(path, [0.0] * len(f))
        for i, v in enumerate(f):
            acc[i] += v
    out: list[float] = [1.0] + [float(p in sums) for p in PATHS]
    for p in PATHS:
        width = len(O2_FEATURES.get(p, ("one",))) if o == "O2" else 1
        out += sums.get(p, [0.0] * width)
    return out


@lru_cache(maxsize=None)
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
    return round(sum(a * b for a, b in zip(coef, network_features(layers, o))))
