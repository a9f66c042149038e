"""Seed models for the fuzzer: the dev models on disk and small graphs made with our own builder.

The builder seeds cover operators the dev models lack (concatenation, pad, mean, logistic, tanh,
hard swish, leaky relu, mul, maximum/minimum, transpose, strided slice, resize ...), so that the
structure-aware mutations reach those readers, planners and kernels too. They are written to
.tflite bytes in memory with our writer and are kept tiny, so their C builds cost little.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..ir import Graph
from ..models import GraphBuilder, tiny_mobilenet


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes


def _mixed_image(seed: int = 1) -> Graph:
    """Image ops: pad (folded into the conv, and one standalone), conv, depthwise, hard swish, leaky relu,
    max/min, concat, resize, max pool, mean, logistic."""
    b = GraphBuilder(seed=seed)
    x = b.input((1, 6, 6, 3), scale=1 / 64, zero_point=-3)
    p = b.pad(x, ((0, 0), (1, 0), (0, 1), (0, 0)))
    c = b.conv2d(p, 4, kernel=3, stride=1, padding="valid", activation="RELU")
    d = b.depthwise_conv2d(c, kernel=2, stride=2, padding="same")
    h = b.hard_swish(d)
    l = b.leaky_relu(d, alpha=0.125)
    m = b.maximum(h, l)
    n = b.minimum(h, l)
    cat = b.concat([m, n], axis=3)
    r = b.resize_nearest(cat, (4, 4))
    mp = b.max_pool(r, filter=2, stride=2)
    mean = b.mean(b.pad(mp, ((0, 0), (0, 1), (1, 0), (0, 0))), axes=(1, 2), keep_dims=False)
    return b.build([b.logistic(mean)], name="fz_mixed_image")


def _mixed_vector(seed: int = 2) -> Graph:
    """Sequence ops: transpose, strided slice, mul, sub, tanh, reduce max, fully connected, log softmax."""
    b = GraphBuilder(seed=seed)
    x = b.input((1, 4, 6), scale=1 / 32, zero_point=5)
    t = b.transpose(x, (0, 2, 1))
    s = b.strided_slice(t, ((0, 1), (1, 6, 2), (0, 4)))
    m = b.mul(s, s)
    d = b.sub(m, s)
    th = b.tanh(d)
    r = b.reshape(th, (1, 12))
    fc = b.fully_connected(r, 5, activation="RELU")
    a = b.add(fc, fc)
    mx = b.reduce_max(b.reshape(a, (1, 5, 1)), axes=(2,), keep_dims=False)
    return b.build([b.log_softmax(mx)], name="fz_mixed_vector")


def _float_io(seed: int = 3) -> Graph:
    """float32 in and out (QUANTIZE / DEQUANTIZE at the edges), average pool, relu6, softmax."""
    b = GraphBuilder(seed=seed)
    x = b.input((1, 4, 4, 2), scale=1 / 50, zero_point=1, float_io=True)
    c = b.conv2d(x, 3, kernel=1, activation="RELU6")
    a = b.avg_pool(c, filter=2, stride=2, padding="same")
    r = b.relu6(b.reshape(a, (1, 12)))
    return b.build([b.dequantize(b.softmax(r, beta=0.5))], name="fz_float_io")


BUILT: dict[str, Callable[[], Graph]] = {
    "fz_tiny_mobilenet": lambda: tiny_mobilenet(seed=0, input_size=16, num_classes=4),
    "fz_mixed_image": _mixed_image,
    "fz_mixed_vector": _mixed_vector,
    "fz_float_io": _float_io,
}


def built_seeds(names: Iterable[str] | None = None) -> list[Seed]:
    """The builder seeds (all, or those named), as .tflite bytes."""
    from ..frontends.tflite_writer import write_tflite

    return [Seed(n, write_tflite(BUILT[n]())) for n in (names if names is not None else BUILT)]


def file_seeds(folder: str | Path, names: Iterable[str] | None = None) -> list[Seed]:
    """The .tflite files of a folder (all, or those whose stem is named); missing names are an error."""
    folder = Path(folder)
    paths = sorted(folder.glob("*.tflite"))
    if names is not None:
        wanted = list(names)
        by_stem = {p.stem: p for p in paths}
        missing = [n for n in wanted if n not in by_stem]
        if missing:
            raise FileNotFoundError(f"seed models not found in {folder}: {missing}")
        paths = [by_stem[n] for n in wanted]
    if not paths:
        raise FileNotFoundError(f"no .tflite seed models in {folder}")
    return [Seed(p.stem, p.read_bytes()) for p in paths]
