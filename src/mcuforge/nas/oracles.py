"""What a candidate network costs on a board, from its shapes alone: peak SRAM per memory model, flash,
latency. These are the numbers TinyNAS's stage 1 filters on and stage 2 searches under.

Memory models (`peak_sram(spec, model)`):
- "layer": mcuforge's planner, layer by layer (nas.cost.estimate: equal to compile_model's arena);
- "auto": mcuforge's auto strategy: patch-based first layers and fused inverted-residual blocks where they
  lower the peak (nas.auto: the live-set bound of the option the engine's scheduler ranks first, a lower
  bound of its arena, equal on most networks: docs/oracles.md);
- "tflm": a model of a TFLM-like runtime for comparison (the co-design argument): no op runs in place (a
  depthwise conv or an ADD gets its own output buffer), every tensor lives from its writer to its last
  reader, and the largest kernel scratch the model's convolutions need (our im2col and column buffers,
  CMSIS-NN-sized) is added on top of the largest live set instead of being planned into its gaps. It is a
  lower bound for such a runtime: its greedy packing can only add to it.

Flash (`flash_bytes(spec, weights)`): the const data as the code generator stores it (weights, requantization
rows; with `weights` a fixed-width format (ir/formats.py: int4, ternary, pow2, codebook:B), each weight
tensor's bytes in that format, as the plain kernels store it; the fast kernels pad their rows to whole words
and the im2col rows to the column's stride, a few bytes more), plus the model's code when a code-size model
is given (nas.codesize).
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

from ..engine.plan.lifetimes import buffer_bytes
from ..ir.formats import CODEBOOKS, encoded_bytes
from ..targets.boards import Board
from .cost import Estimate, estimate, layers
from .layers import Layer
from .space import NetworkSpec

MEMORY_MODELS = ("layer", "auto", "tflm")
WEIGHT_FORMATS = ("int8", "int4", "ternary", "pow2", *CODEBOOKS)  # fixed width: bytes from the count alone


def peak_sram(spec: NetworkSpec, model: str = "layer", est: Estimate | None = None) -> int:
    if model == "layer":
        return (est or estimate(spec)).peak_sram_bytes
    if model == "auto":
        from .auto import auto_estimate

        return auto_estimate(spec).peak_sram_bytes
    if model == "tflm":
        return tflm_like_peak(spec)
    raise ValueError(f"unknown memory model {model!r}: choose one of {', '.join(MEMORY_MODELS)}")


def const_bytes(est: Estimate, weights: str = "int8") -> int:
    """Flash of the const data with the weights stored in `weights` (one of WEIGHT_FORMATS). In a format the
    int8 stem's padded copy is not stored; its rows in the format's own layout (padded to a weight word) are
    bounded by the int8 filter's bytes, which are added back."""
    if weights == "int8":
        return est.flash_bytes
    if weights in WEIGHT_FORMATS:
        return (est.flash_bytes + est.stem_filter_bytes - est.weight_bytes
                + sum(encoded_bytes(weights, n) for n in est.weight_sizes))
    raise ValueError(f"unknown weight format {weights!r}: choose one of {', '.join(WEIGHT_FORMATS)}")


CodeModel = Callable[[Sequence[Layer]], int]  # the model's code bytes from its layers
LatencyModel = Callable[[Sequence[Layer]], float]  # milliseconds from its layers


def code_model(core: str, opt: str = "Os") -> CodeModel:
    """The code-size model (nas.codesize) for `core` at `opt`, as stage 1 takes it (picklable)."""
    from . import codesize

    return partial(codesize.code_bytes, core=core, opt=opt)


def latency_model(board: Board) -> LatencyModel:
    """The latency model (nas.latency) for `board`: instructions counted on its core / its clock."""
    from . import latency

    return partial(latency.estimate_ms, board=board)


def flash_bytes(spec: NetworkSpec, weights: str = "int8", est: Estimate | None = None,
                code: CodeModel | None = None) -> int:
    """Const data plus, when `code` is given, the model's code bytes."""
    return const_bytes(est or estimate(spec), weights) + (code(layers(spec)) if code else 0)


def tflm_like_peak(spec: NetworkSpec) -> int:
    """Peak SRAM under the "tflm" memory model (see the module docstring)."""
    from .cost import _column, _depthwise, _stem  # the same kernel scratch sizes as our planner's

    h, w, c = spec.input_shape
    x = buffer_bytes(h * w * c)
    (h, w), stem_variants, _ = _stem((h, w), c, spec.window(3), spec.window(2))
    y = buffer_bytes(h * w * spec.stem_channels)
    live = x + y
    scratch = min(v[1] for v in stem_variants)
    c = spec.stem_channels
    for block in spec.blocks():
        hidden = c * block.expand
        residual = block.stride == 1 and c == block.channels
        keep = x if residual else 0
        e = x
        if block.expand != 1:
            e = buffer_bytes(h * w * hidden)
            live = max(live, x + e)
            scratch = max(scratch, _column(c)[0][1])
        (h, w), _, plane = _depthwise((h, w), spec.window(block.kernel), spec.window(block.stride))
        d = buffer_bytes(h * w * hidden)
        live = max(live, keep + e + d if block.expand != 1 else x + d)
        scratch = max(scratch, plane)
        p = buffer_bytes(h * w * block.channels)
        live = max(live, keep + d + p)
        scratch = max(scratch, _column(hidden)[0][1])
        if residual:
            live = max(live, x + 2 * p)  # the ADD writes a third buffer
        c, x = block.channels, p
    if spec.head_channels:
        y = buffer_bytes(h * w * spec.head_channels)
        live = max(live, x + y)
        scratch = max(scratch, _column(c)[0][1])
        c, x = spec.head_channels, y
    pooled, logits = buffer_bytes(c), buffer_bytes(spec.classes)
    live = max(live, x + pooled, pooled + logits, 2 * logits)
    return live + scratch
