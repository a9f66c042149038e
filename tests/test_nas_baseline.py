"""The S-MbV2 baseline: MobileNetV2 as published, scaled to the largest configuration that fits."""
from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from mcuforge.nas.baseline import WIDTHS, mobilenet_v2, scale_to_fit  # noqa: E402
from mcuforge.nas.cost import estimate  # noqa: E402
from mcuforge.nas.evolution import spec_check  # noqa: E402
from mcuforge.nas.mcunet import SearchSpace  # noqa: E402
from mcuforge.nas.oracles import peak_sram  # noqa: E402
from mcuforge.nas.stage1 import Budgets  # noqa: E402
from mcuforge.nas.supernet import Supernet, build_network  # noqa: E402


def test_mobilenet_v2_is_the_published_network():
    spec = mobilenet_v2(1.0, 224)
    net = build_network(spec)
    # torchvision's mobilenet_v2() has 3,504,872 parameters; the paper gives 300 M multiply-adds at 224
    assert sum(p.numel() for p in net.parameters()) == 3_504_872
    assert estimate(spec).macs == pytest.approx(300e6, rel=0.01)
    assert net(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_build_network_has_the_shapes_extract_gives():
    space = SearchSpace(width=0.3, resolution=48, channels=1, classes=4)
    arch = space.sample(random.Random(3))
    built = build_network(space.network(arch)).state_dict()
    extracted = Supernet(space).extract(arch).state_dict()
    assert {k: v.shape for k, v in built.items()} == {k: v.shape for k, v in extracted.items()}


def test_signal_version_runs_in_one_dimension():
    net = build_network(mobilenet_v2(0.25, 128, channels=6, classes=4, signal=True))
    assert net(torch.zeros(2, 6, 128)).shape == (2, 4)


def test_scale_to_fit_takes_the_most_compute_that_fits():
    budgets = Budgets(sram_bytes=64 * 1024, flash_bytes=256 * 1024)
    fits = spec_check(budgets)
    resolutions = (32, 48, 64, 80, 96)
    base = scale_to_fit(fits, resolutions, channels=1, classes=10)
    assert base is not None and fits(base.spec) and base.name == f"S-MbV2 w{base.width:g}-r{base.resolution}"
    assert peak_sram(base.spec) <= budgets.sram_bytes
    for w in WIDTHS:  # nothing of the grid with more MACs fits
        for r in resolutions:
            spec = mobilenet_v2(w, r, channels=1, classes=10)
            if estimate(spec).macs > base.macs:
                assert not fits(spec), (w, r)
    assert scale_to_fit(spec_check(Budgets(sram_bytes=1024)), resolutions, channels=1, classes=10) is None
