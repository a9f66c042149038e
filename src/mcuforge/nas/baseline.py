"""The MCUNet paper's baseline S-MbV2: MobileNetV2 scaled by width and input resolution to the
configuration that fits the same budgets, judged by the same oracles as the searched networks.

    fits = spec_check(Budgets(sram_bytes=64 * 1024, flash_bytes=256 * 1024))
    base = scale_to_fit(fits, resolutions=(32, 48, 64), channels=1, classes=10)   # None if none fits
    model = build_network(base.spec)        # nas.supernet: plain layers, trained from scratch

MobileNetV2 as published: a 3x3 stride-2 stem of 32 * W channels, seven stages of inverted residuals
(expand ratio 1 in the first, 6 elsewhere; kernel 3), a 1x1 conv to 1280 * W channels, global average
pooling and the classifier. Channels round as MobileNetV2 does (make_divisible). One departure: the final
conv is scaled with W (torchvision keeps 1280 for W < 1); its 1280 channels alone would not fit the small
budgets this baseline is for, so scaling it favours the baseline. Of the grid (WIDTHS x the resolutions
given) the configuration with the most MACs that fits wins, the paper's rule of thumb for "the largest
model that fits"; ties go to the higher resolution. `mcuforge search` takes the first of `fitting(...)` that
also passes the exact compile (nas.deploy.exact_misfit).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .cost import estimate
from .space import MOBILENET_V2_STAGES, NetworkSpec, Stage, make_divisible

WIDTHS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0)
STEM, HEAD, KERNEL, EXPAND = 32, 1280, 3, 6


def mobilenet_v2(width: float, resolution: int, *, channels: int = 3, classes: int = 1000,
                 signal: bool = False) -> NetworkSpec:
    """MobileNetV2 at width multiplier `width` and input `resolution` (a 1-D version when `signal`)."""
    stages = [Stage(1 if i == 0 else EXPAND, KERNEL, make_divisible(c * width), stride, repeats)
              for i, (c, stride, repeats) in enumerate(MOBILENET_V2_STAGES)]
    return NetworkSpec(resolution=resolution, stem_channels=make_divisible(STEM * width), stages=tuple(stages),
                       head_channels=make_divisible(HEAD * width), classes=classes, image_channels=channels,
                       signal=signal)


@dataclass(frozen=True)
class ScaledMobileNet:
    width: float
    resolution: int
    spec: NetworkSpec
    macs: int

    @property
    def name(self) -> str:
        return f"S-MbV2 w{self.width:g}-r{self.resolution}"


def fitting(fits: Callable[[NetworkSpec], bool], resolutions: Sequence[int], *, channels: int, classes: int,
            signal: bool = False, widths: Sequence[float] = WIDTHS) -> list[ScaledMobileNet]:
    """The MobileNetV2s of the (width, resolution) grid that `fits` accepts, the most MACs first (ties: the
    higher resolution first)."""
    found = []
    for width in widths:
        for resolution in resolutions:
            spec = mobilenet_v2(width, resolution, channels=channels, classes=classes, signal=signal)
            if fits(spec):
                found.append(ScaledMobileNet(width, resolution, spec, estimate(spec).macs))
    return sorted(found, key=lambda m: (m.macs, m.resolution), reverse=True)


def scale_to_fit(fits: Callable[[NetworkSpec], bool], resolutions: Sequence[int], *, channels: int, classes: int,
                 signal: bool = False, widths: Sequence[float] = WIDTHS) -> ScaledMobileNet | None:
    """The MobileNetV2 of the (width, resolution) grid with the most MACs among those `fits` accepts."""
    found = fitting(fits, resolutions, channels=channels, classes=classes, signal=signal, widths=widths)
    return found[0] if found else None


__all__ = ["ScaledMobileNet", "WIDTHS", "fitting", "mobilenet_v2", "scale_to_fit"]
