"""Post-training weight quantization of an int8 model into a weight format (`mcuforge compress`).

sparse: in each weight tensor the values of least magnitude are set to 0 until `sparsity` of them are 0
(magnitude pruning, post-training: the values, scales and biases stay). sparse:int4: pruned so, then
re-quantized into int4 as below (the zeros stay 0, and small values may join them).

codebook:B: each weight tensor's int8 values are clustered into at most 2^B int8 values (1-D k-means,
Lloyd's iterations from the quantiles, centers rounded to int8) and every weight is replaced by its nearest
center. Scales and biases stay: the values stay in the tensor's own int8 domain.

int4, ternary, pow2:
each weight tensor of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED is re-quantized into the format's value
set, per output channel (per-tensor fully-connected weights become per-channel ones: with 16 levels one
scale for the whole tensor loses too much): the real weights scale * w are approximated
by scale' * w' with w' in the format's values (int4: -8..7; ternary: -1, 0, 1; pow2: 0, +-1, +-2, .. +-64),
each weight taking the nearest, and scale' is chosen among clipping ratios (scale' = scale * max|w| / top * a,
top the format's largest value; int4: 26 ratios a in 0.5 .. 1.0; ternary and pow2: 60 in 0.05 .. 2.0,
geometric, since the best threshold for ternary lies far below the largest weight), never below scale, as
the one with the least squared error over the channel; a channel whose values fit already keeps them. The
bias, whose scale is input scale x weight scale, is re-scaled to match: bias' =
round(bias * scale / scale'). Everything else (activations, their scales, the operators) stays, so the
result is again an int8 model: TFLM runs it as it is, and `mcuforge compile --weights auto` stores the new
weights in the format (ir/formats.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..errors import ModelError, UsageError, shown
from ..ir import Graph, QuantParams
from ..quant.weight_grids import kmeans_centers, nearest
from ..ir.formats import (CODEBOOKS, ENCODED_KINDS, POW2, SPARSE, WEIGHTS, choose_formats, codebook_bits,
                          format_summary)

TARGETS = ("int4", "ternary", "ternary:base3", "pow2", *CODEBOOKS, "sparse", "sparse:int4")  # what `compress` makes
_LEVELS = {"int4": np.arange(-8, 8), "ternary": np.array([-1, 0, 1]), "pow2": np.array(POW2)}  # sorted
_RATIOS = {"int4": np.linspace(0.5, 1.0, 26)}
_WIDE_RATIOS = np.geomspace(0.05, 2.0, 60)


def _channel_axis(kind: str) -> int:
    return 3 if kind == "DEPTHWISE_CONV_2D" else 0


def _nearest(x: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each x as the nearest of the sorted `levels` (a whole range of integers: rounded, then clipped)."""
    if levels.size == levels[-1] - levels[0] + 1:
        return np.clip(np.round(x), levels[0], levels[-1])
    return levels[nearest(x, levels)].astype(np.float64)


def _best_step(w: np.ndarray, levels: np.ndarray, ratios: np.ndarray) -> tuple[float, np.ndarray]:
    """(step, codes): w (int8 values of one channel) ~ step * codes, codes among `levels`, least squares
    over the clipping ratios."""
    if w.size == 0 or np.isin(w, levels).all():
        return 1.0, w.copy()  # already in the format: exact
    top, hi = float(np.abs(w).max()), float(levels[-1])
    best = None
    for a in ratios:
        step = max(top / hi * float(a), 1.0)  # never finer than the int8 step: the bias only shrinks
        codes = _nearest(w / step, levels)
        err = float(((w - step * codes) ** 2).sum())
        if best is None or err < best[0]:
            best = (err, step, codes)
    assert best is not None
    return best[1], best[2]


@dataclass(frozen=True)
class CompressedTensor:
    name: str
    kind: str  # the operator that reads it
    channels: int
    rms_error: float  # of the real weights, relative to their RMS


def compress_weights(graph: Graph, fmt: str = "int4", sparsity: float = 0.5) -> tuple[Graph, list[CompressedTensor]]:
    """The graph with every convolution and fully-connected weight tensor re-quantized into `fmt` (see the
    module docstring; `sparsity`: the share of zeros for "sparse") and marked with that format; and what was
    done per tensor."""
    if fmt not in TARGETS:
        raise UsageError(f"compress into {fmt!r} is not supported yet: choose one of {', '.join(TARGETS)}")
    if fmt in CODEBOOKS:
        return _per_tensor(graph, fmt, lambda v: cluster(v, 1 << codebook_bits(fmt)))
    if fmt == "ternary:base3":  # the same values as ternary, stored five to a byte
        ternary, rows = compress_weights(graph, "ternary")
        return choose_formats(ternary, fmt), rows
    if fmt in SPARSE:
        if not 0 <= sparsity < 1:
            raise UsageError(f"sparsity {sparsity}: give a share of zeros in [0, 1), e.g. 0.8")
        pruned, rows = _per_tensor(graph, "sparse", lambda v: prune(v, sparsity))
        if fmt == "sparse":
            return pruned, rows
        quantized, _ = compress_weights(choose_formats(pruned, "int8"), "int4")
        return choose_formats(quantized, fmt), [replace(r, rms_error=_real_error(graph, quantized, r.name))
                                                for r in rows]
    levels, ratios = _LEVELS[fmt], _RATIOS.get(fmt, _WIDE_RATIOS)
    tensors = dict(graph.tensors)
    done: dict[str, np.ndarray] = {}  # weight tensor -> the factor scale'/scale per channel
    biases: dict[str, str] = {}  # bias tensor -> the weight tensor it was re-scaled for
    rows: list[CompressedTensor] = []
    for op in graph.ops:
        if op.kind not in ENCODED_KINDS or len(op.inputs) <= WEIGHTS:
            continue
        name = op.inputs[WEIGHTS]
        w = graph[name]
        if w.data is None or w.dtype != "int8" or w.quant is None:
            continue
        if name not in done:
            if np.any(np.asarray(w.quant.zero_point) != 0):
                raise ModelError(f"{op.kind} {shown(op.name)}: weights {shown(name)} have a zero point; only "
                                 "symmetric weights can be compressed")
            axis = _channel_axis(op.kind)
            data = np.moveaxis(np.asarray(w.data, np.float64), axis, 0)
            groups = data.shape[0]
            flat = data.reshape(groups, -1)
            steps, codes = zip(*(_best_step(flat[g], levels, ratios) for g in range(groups)))
            factor = np.asarray(steps, np.float64)
            new = np.moveaxis(np.stack(codes).reshape(data.shape), 0, axis).astype(np.int8)
            old = np.broadcast_to(np.asarray(w.quant.scale, np.float64).reshape(-1), (groups,))
            scale = (old * factor).astype(np.float32)
            quant = QuantParams(scale, np.zeros(groups, np.int64), axis)
            tensors[name] = replace(w, data=new, quant=quant)
            err = np.sqrt(((flat - factor[:, None] * np.stack(codes)) ** 2).mean() / max((flat ** 2).mean(), 1e-30))
            rows.append(CompressedTensor(name, op.kind, groups, float(err)))
            done[name] = factor
        bias_name = op.inputs[2] if len(op.inputs) > 2 else ""
        if bias_name and graph[bias_name].data is not None:
            if biases.setdefault(bias_name, name) != name:
                raise ModelError(f"bias {shown(bias_name)} is shared by layers with different weights; it cannot "
                                 "be re-scaled for both")
            tensors[bias_name] = _rescaled_bias(graph, bias_name, done[name])
    compressed = replace(graph, tensors=tensors)
    return choose_formats(compressed, fmt), rows


def cluster(values: np.ndarray, count: int) -> np.ndarray:
    """int8 `values` snapped to at most `count` int8 centers: 1-D k-means from the quantiles, then rounded."""
    v = np.asarray(values, np.float64).reshape(-1)
    centers = np.unique(np.clip(np.round(kmeans_centers(v, count)), -128, 127))
    return centers[nearest(v, centers)].astype(np.int8).reshape(np.shape(values))


def prune(values: np.ndarray, sparsity: float) -> np.ndarray:
    """int8 `values` with the floor(sparsity * size) of least magnitude (the first on a tie) set to 0."""
    v = np.asarray(values, np.int8).copy()
    flat = v.reshape(-1)
    flat[np.argsort(np.abs(flat.astype(np.int16)), kind="stable")[:int(sparsity * flat.size)]] = 0
    return v


def _per_tensor(graph: Graph, fmt: str,
                rule: Callable[[np.ndarray], np.ndarray]) -> tuple[Graph, list[CompressedTensor]]:
    """Every weight tensor's int8 values replaced by rule(values), in their own domain (scales stay)."""
    from ..ir.formats import weight_tensors

    tensors = dict(graph.tensors)
    rows = []
    kinds = {op.inputs[WEIGHTS]: op.kind for op in graph.ops if op.kind in ENCODED_KINDS and len(op.inputs) > WEIGHTS}
    for name in weight_tensors(graph):
        w = graph[name]
        new = rule(w.data)
        err = np.sqrt(((w.data.astype(np.float64) - new) ** 2).mean() / max((w.data.astype(np.float64) ** 2).mean(),
                                                                          1e-30))
        tensors[name] = replace(w, data=new)
        rows.append(CompressedTensor(name, kinds[name], 1, float(err)))
    return choose_formats(replace(graph, tensors=tensors), fmt), rows


def _real_error(before: Graph, after: Graph, name: str) -> float:
    """The RMS change of weight tensor `name`'s real values (scale x value), relative to their RMS."""
    def real(g: Graph) -> np.ndarray:
        t = g[name]
        axis = t.quant.axis if t.quant.axis is not None else 0
        scale = np.asarray(t.quant.scale, np.float64).reshape(-1)
        shape = [1] * t.data.ndim
        shape[axis] = scale.size if scale.size > 1 else 1
        return np.asarray(t.data, np.float64) * scale.reshape(shape)

    a, b = real(before), real(after)
    return float(np.sqrt(((a - b) ** 2).mean() / max((a ** 2).mean(), 1e-30)))


def _rescaled_bias(graph: Graph, name: str, factor: np.ndarray) -> object:
    b = graph[name]
    values = np.asarray(b.data, np.float64).reshape(-1)
    factor = np.broadcast_to(factor, values.shape)
    new = np.round(values / factor)
    if new.size and np.abs(new).max() > 2**31 - 1:
        raise ModelError(f"bias {shown(name)} would leave int32 once its weights are compressed")
    quant = b.quant
    if quant is not None:
        scale = (np.broadcast_to(np.asarray(quant.scale, np.float64), values.shape) * factor).astype(np.float32)
        quant = QuantParams(scale, np.zeros(scale.size, np.int64), quant.axis if scale.size > 1 else None)
    return replace(b, data=new.astype(np.int32).reshape(b.shape), quant=quant)


@dataclass(frozen=True)
class OutputChange:
    """How much the compressed model's outputs move, on the same inputs."""

    name: str
    samples: int
    max_steps: int  # largest difference, in steps of the output's quantization
    mean_steps: float
    top1_agreement: float | None  # share of samples whose largest output stays the same (classifiers)


def output_changes(before: Graph, after: Graph, inputs: np.ndarray) -> list[OutputChange]:
    """Run both graphs (numpy reference) on `inputs` [N, *input shape] and compare their outputs."""
    from ..engine import reference

    outs_a = [reference.run(before, [x]) for x in inputs]
    outs_b = [reference.run(after, [x]) for x in inputs]
    changes = []
    for j, name in enumerate(before.outputs):
        a = np.stack([o[j] for o in outs_a]).astype(np.int64)
        b = np.stack([o[j] for o in outs_b]).astype(np.int64)
        diff = np.abs(a - b)
        per_sample = a.reshape(len(inputs), -1)
        agree = None
        if per_sample.shape[1] > 1:
            agree = float((per_sample.argmax(1) == b.reshape(len(inputs), -1).argmax(1)).mean())
        changes.append(OutputChange(name, len(inputs), int(diff.max(initial=0)), float(diff.mean()), agree))
    return changes


def weight_bytes(graph: Graph) -> tuple[int, int]:
    """(bytes of the weight tensors in their formats, bytes as int8)."""
    summary = format_summary(graph)
    return sum(r["bytes"] for r in summary.values()), sum(r["int8_bytes"] for r in summary.values())
