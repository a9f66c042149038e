"""PTQ benchmark: wall time of post-training quantization of a ~1 M-parameter CNN on 512 calibration
samples, per observer (issue goal: < 30 s on 2 cores).

    python bench/ptq.py [--samples 512] [--threads 2]

The model is a MobileNet-style CNN built here with random weights (the time does not depend on what the
weights learned); capture (from_torch) is timed separately from calibration + quantization. A benchmark,
not a test: wall time depends on the machine and its load.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from mcuforge.frontends.torch_capture import from_torch  # noqa: E402
from mcuforge.quant.ptq import quantize  # noqa: E402

OBSERVERS = ("minmax", "ema", "percentile", "mse")


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in), nn.BatchNorm2d(c_in), nn.ReLU6(),
                         nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out), nn.ReLU6())


def model() -> nn.Module:
    widths = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
              (512, 512, 1), (512, 512, 1)]
    layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU6()]
    layers += [_block(a, b, s) for a, b, s in widths]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = model()
    params = sum(p.numel() for p in net.parameters())
    start = time.perf_counter()
    graph = from_torch(net, torch.zeros(1, 3, 64, 64))
    capture = time.perf_counter() - start
    data = np.random.default_rng(0).uniform(0, 1, (args.samples, 64, 64, 3)).astype(np.float32)
    print(f"model: {params:,} parameters, input 64x64x3; capture {capture:.2f} s; {args.samples} samples, "
          f"{args.threads} threads")
    print("| observer | PTQ seconds | goal |\n|---|--:|--:|")
    for observer in OBSERVERS:
        start = time.perf_counter()
        quantize(graph, data, observer=observer, progress=False)
        seconds = time.perf_counter() - start
        print(f"| {observer} | {seconds:.1f} | < 30 {'✓' if seconds < 30 else '✗'} |", flush=True)


if __name__ == "__main__":
    main()
