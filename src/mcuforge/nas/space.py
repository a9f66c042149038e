"""The search space: MobileNetV2-style candidate networks (MCUNet's TinyNAS space), described by shapes.

    spec = NetworkSpec(resolution=128, stem_channels=16, stages=(Stage(1, 3, 8), Stage(6, 5, 16, 2, 2)),
                       head_channels=160, classes=10)
    graph = to_graph(spec)           # the real int8 IR graph (random weights), for the full pipeline
    spec = random_spec(rng)          # a random MobileNetV2-sized candidate

A network is: a 3x3 stride-2 stem conv (RELU6), inverted-residual blocks, an optional 1x1 head conv
(RELU6), a global pool, a fully-connected classifier and a softmax. A block is an optional 1x1 expand conv
(RELU6, absent when the expand ratio is 1), a KxK depthwise conv with SAME padding (RELU6) and a linear 1x1
project conv; it adds its input back (residual ADD) when its stride is 1 and its channels are unchanged.
Channels are given as built: the caller applies any width multiplier (see `make_divisible`).

Signals (`signal=True`: ECG, activity, audio features) take the same network in one dimension: the input
is 1 x resolution x channels (NHWC with H = 1, `resolution` the window length), every KxK window becomes
1xK and every stride s becomes (1, s). `nas.mcunet` builds specs of MCUNet's search space.
"""
from __future__ import annotations

import numbers
import random
from collections.abc import Iterator
from dataclasses import dataclass

from ..ir import Graph
from ..models.builder import GraphBuilder

EXPAND_RATIOS = (1, 3, 4, 5, 6)
KERNEL_SIZES = (3, 5, 7)
STRIDES = (1, 2)
POOLS = ("avg", "max")

# MobileNetV2's stages (channels at width 1.0, stride of the first block, blocks in the stage).
MOBILENET_V2_STAGES = ((16, 1, 1), (24, 2, 2), (32, 2, 3), (64, 2, 4), (96, 1, 3), (160, 2, 3), (320, 1, 1))
RESOLUTIONS = tuple(range(96, 225, 16))


@dataclass(frozen=True)
class Block:
    """One inverted-residual block, as built (stride already resolved)."""

    expand: int
    kernel: int
    channels: int
    stride: int


@dataclass(frozen=True)
class Stage:
    """`repeats` inverted-residual blocks with one expand ratio, kernel and output width; the first block
    has `stride`, the others stride 1."""

    expand: int
    kernel: int
    channels: int
    stride: int = 1
    repeats: int = 1

    def __post_init__(self) -> None:
        if self.expand not in EXPAND_RATIOS:
            raise ValueError(f"expand ratio must be one of {EXPAND_RATIOS}, not {self.expand!r}")
        if self.kernel not in KERNEL_SIZES:
            raise ValueError(f"kernel size must be one of {KERNEL_SIZES}, not {self.kernel!r}")
        if self.stride not in STRIDES:
            raise ValueError(f"stride must be one of {STRIDES}, not {self.stride!r}")
        _count("stage channels", self.channels)
        _count("stage repeats", self.repeats)


@dataclass(frozen=True)
class NetworkSpec:
    resolution: int  # square input image, resolution x resolution x image_channels int8
    stem_channels: int  # the first conv: 3x3, stride 2
    stages: tuple[Stage, ...]
    head_channels: int = 0  # the final 1x1 conv before pooling; 0: none
    classes: int = 1000
    pool: str = "avg"  # global pooling: "avg" or "max"
    image_channels: int = 3  # input channels (colour planes, or a signal's sensor channels)
    signal: bool = False  # 1-D: the input is 1 x resolution x image_channels, windows 1xK

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        _count("input resolution", self.resolution)
        _count("stem channels", self.stem_channels)
        _count("classifier classes", self.classes)
        _count("image channels", self.image_channels)
        _count("head channels (0: no head conv)", self.head_channels, minimum=0)
        if not isinstance(self.signal, bool):
            raise ValueError(f"signal must be True or False, not {self.signal!r}")
        if self.pool not in POOLS:
            raise ValueError(f"pooling must be one of {POOLS}, not {self.pool!r}")
        for stage in self.stages:
            if not isinstance(stage, Stage):
                raise ValueError(f"stages must be Stage values, not {type(stage).__name__}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the input."""
        r = self.resolution
        return (1, r, self.image_channels) if self.signal else (r, r, self.image_channels)

    def window(self, k: int) -> tuple[int, int]:
        """A KxK window, or 1xK for signals (also strides: window(s))."""
        return (1, k) if self.signal else (k, k)

    def blocks(self) -> Iterator[Block]:
        """The blocks in execution order, repeats unrolled."""
        for s in self.stages:
            yield Block(s.expand, s.kernel, s.channels, s.stride)
            for _ in range(s.repeats - 1):
                yield Block(s.expand, s.kernel, s.channels, 1)


def _count(what: str, value: object, minimum: int = 1) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, not {value!r}")


def make_divisible(channels: float, divisor: int = 8) -> int:
    """MobileNetV2's channel rounding: the nearest multiple of `divisor`, never below 90% of `channels`."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


# ------------------------------------------------------------------ the real graph

def to_graph(spec: NetworkSpec, seed: int = 0) -> Graph:
    """The int8 IR graph of `spec` (random weights from `seed`), built with GraphBuilder."""
    b = GraphBuilder(seed=seed)
    x = b.input((1, *spec.input_shape), scale=1 / 128, zero_point=0)
    x = b.conv2d(x, spec.stem_channels, kernel=spec.window(3), stride=spec.window(2), padding="same",
                 activation="RELU6")
    for block in spec.blocks():
        x = _inverted_residual(b, x, block, spec)
    if spec.head_channels:
        x = b.conv2d(x, spec.head_channels, kernel=1, activation="RELU6")
    size = b.shape(x)[1:3]
    pool = b.avg_pool if spec.pool == "avg" else b.max_pool
    x = pool(x, filter=size, stride=size, padding="valid")
    x = b.reshape(x, (1, b.shape(x)[-1]))
    x = b.fully_connected(x, spec.classes)
    x = b.softmax(x)
    return b.build([x], name="nas_candidate")


def _inverted_residual(b: GraphBuilder, x: str, block: Block, spec: NetworkSpec) -> str:
    in_channels = b.shape(x)[-1]
    y = x
    if block.expand != 1:
        y = b.conv2d(y, in_channels * block.expand, kernel=1, activation="RELU6")
    y = b.depthwise_conv2d(y, kernel=spec.window(block.kernel), stride=spec.window(block.stride), padding="same",
                           activation="RELU6")
    y = b.conv2d(y, block.channels, kernel=1, activation="NONE")
    if block.stride == 1 and in_channels == block.channels:
        y = b.add(x, y)
    return y


# ------------------------------------------------------------------ sampling

def random_spec(rng: random.Random, *, resolutions: tuple[int, ...] = RESOLUTIONS,
                width: tuple[float, float] = (0.3, 1.0), classes: int = 1000) -> NetworkSpec:
    """A random MobileNetV2-sized candidate: a resolution from `resolutions`, a width multiplier drawn
    uniformly from `width` (channels rounded as MobileNetV2), MobileNetV2's stages with 1 extra or 1 fewer
    block in each repeated stage (16-20 blocks in all), and per block an expand ratio and kernel size."""
    w = rng.uniform(*width)
    stages: list[Stage] = []
    for index, (channels, stride, depth) in enumerate(MOBILENET_V2_STAGES):
        if depth > 1:
            depth += rng.choice((-1, 0, 0, 1))
        for k in range(depth):
            expand = 1 if index == 0 else rng.choice(EXPAND_RATIOS[1:])
            stages.append(Stage(expand, rng.choice(KERNEL_SIZES), make_divisible(channels * w),
                                stride if k == 0 else 1))
    return NetworkSpec(resolution=rng.choice(resolutions), stem_channels=make_divisible(32 * w),
                       stages=tuple(stages), head_channels=make_divisible(1280 * max(w, 1.0)), classes=classes)
