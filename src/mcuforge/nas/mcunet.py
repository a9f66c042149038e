"""MCUNet's TinyNAS search space: a width multiplier W and an input resolution R pick a space; an
architecture (`Arch`, the genes stage 2 searches) picks one network in it.

    space = SearchSpace(width=0.5, resolution=160, classes=1000)
    arch = space.sample(random.Random(0))
    spec = space.network(arch)          # a NetworkSpec: to_graph(spec), estimate(spec) ...

The backbone is MobileNetV2 / ProxylessNAS as MCUNet released it: a 3x3 stride-2 stem of 32 * W channels, a
first inverted-residual block with expand ratio 1 and kernel 3 (16 * W channels), then six stages of base
widths 24, 40, 80, 96, 192, 320 (times W, rounded to multiples of 8) with strides 2, 2, 2, 1, 2, 1; each stage
has 2, 3 or 4 blocks (the last stage 1), each block its own kernel (3, 5, 7) and expand ratio (3, 4, 5, 6);
then global average pooling and the classifier, with an optional 1x1 feature-mix conv before the pool (off
by default, as in MCUNet). `signal=True` gives the same space in one dimension (windows 1xK on a window of
`resolution` samples with `channels` sensor channels).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .space import NetworkSpec, Stage, make_divisible

WIDTHS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
NARROW_WIDTHS = (0.1, 0.15)  # below the paper's grid: `mcuforge search` falls back to them for tiny budgets
RESOLUTIONS = tuple(range(48, 225, 16))  # 48 .. 224: with WIDTHS, the paper's 108 spaces
STEM_CHANNELS, FIRST_CHANNELS = 32, 16
STAGES = ((24, 2), (40, 2), (80, 2), (96, 1), (192, 2), (320, 1))  # base width, stride of the first block
DEPTHS = (2, 3, 4)
LAST_DEPTH = 1
KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 5, 6)
MAX_DEPTH = max(DEPTHS)
SLOTS = len(STAGES) * MAX_DEPTH  # kernel and expand genes: MAX_DEPTH slots per stage, unused ones ignored


@dataclass(frozen=True)
class Arch:
    """One network of a space: blocks per stage, and per block slot (stage * MAX_DEPTH + block) its kernel
    size and expand ratio. Slots past a stage's depth are kept (stage 2 mutates them) but not built."""

    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("depths", "kernels", "expands"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.depths) != len(STAGES) or len(self.kernels) != SLOTS or len(self.expands) != SLOTS:
            raise ValueError(f"an Arch has {len(STAGES)} depths and {SLOTS} kernels and expand ratios, not "
                             f"{len(self.depths)}, {len(self.kernels)} and {len(self.expands)}")
        if any(d not in DEPTHS for d in self.depths[:-1]) or self.depths[-1] != LAST_DEPTH:
            raise ValueError(f"stage depths must be in {DEPTHS} (the last stage {LAST_DEPTH}), not {self.depths}")
        if any(k not in KERNELS for k in self.kernels) or any(e not in EXPANDS for e in self.expands):
            raise ValueError(f"kernels must be in {KERNELS} and expand ratios in {EXPANDS}")

    def blocks(self) -> list[tuple[int, int, int]]:
        """(stage, kernel, expand) of each built block, in order."""
        return [(s, self.kernels[s * MAX_DEPTH + i], self.expands[s * MAX_DEPTH + i])
                for s, depth in enumerate(self.depths) for i in range(depth)]


@dataclass(frozen=True)
class SearchSpace:
    """One (W, R) search space for a task: input channels, classes, 2-D images or 1-D signals."""

    width: float
    resolution: int
    channels: int = 3
    classes: int = 1000
    signal: bool = False
    feature_mix: int = 0  # channels of a final 1x1 conv before the pool (0: none, as in MCUNet)

    def __post_init__(self) -> None:
        if not 0 < self.width <= 4:
            raise ValueError(f"width multiplier must be in (0, 4], not {self.width!r}")
        for what, value in (("resolution", self.resolution), ("channels", self.channels),
                            ("classes", self.classes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be an int >= 1, not {value!r}")
        if self.resolution < 32:
            raise ValueError(f"resolution must be at least 32 (five stride-2 layers), not {self.resolution}")

    @property
    def name(self) -> str:
        return f"w{self.width:g}-r{self.resolution}"

    def channels_of(self, base: int) -> int:
        return make_divisible(base * self.width)

    def sample(self, rng: random.Random) -> Arch:
        """A uniformly random architecture (each depth, kernel and expand ratio drawn independently)."""
        depths = [rng.choice(DEPTHS) for _ in STAGES[:-1]] + [LAST_DEPTH]
        return Arch(depths, [rng.choice(KERNELS) for _ in range(SLOTS)], [rng.choice(EXPANDS) for _ in range(SLOTS)])

    def largest(self) -> Arch:
        return Arch([MAX_DEPTH] * (len(STAGES) - 1) + [LAST_DEPTH], [max(KERNELS)] * SLOTS, [max(EXPANDS)] * SLOTS)

    def smallest(self) -> Arch:
        return Arch([min(DEPTHS)] * (len(STAGES) - 1) + [LAST_DEPTH], [min(KERNELS)] * SLOTS,
                    [min(EXPANDS)] * SLOTS)

    def network(self, arch: Arch) -> NetworkSpec:
        """The NetworkSpec of `arch` in this space."""
        stages = [Stage(1, 3, self.channels_of(FIRST_CHANNELS))]
        for s, (base, stride) in enumerate(STAGES):
            for i in range(arch.depths[s]):
                slot = s * MAX_DEPTH + i
                stages.append(Stage(arch.expands[slot], arch.kernels[slot], self.channels_of(base),
                                    stride if i == 0 else 1))
        return NetworkSpec(resolution=self.resolution, stem_channels=self.channels_of(STEM_CHANNELS),
                           stages=tuple(stages), head_channels=self.feature_mix, classes=self.classes,
                           image_channels=self.channels, signal=self.signal)


def spaces(widths: tuple[float, ...] = WIDTHS, resolutions: tuple[int, ...] = RESOLUTIONS,
           **task: object) -> list[SearchSpace]:
    """Every (W, R) space of the grid for one task (channels, classes, signal, feature_mix)."""
    return [SearchSpace(w, r, **task) for w in widths for r in resolutions]  # type: ignore[arg-type]
