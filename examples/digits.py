"""Handwritten digits, end to end: train a small CNN in PyTorch, quantize it to int8 (post-training and
quantization-aware), compile it to C and check the C against the reference interpreter.

    python examples/digits.py --out digits_out [--epochs 30 --qat-epochs 4 --seed 0 --threads 1]

Data: scikit-learn's bundled 8x8 digits (`mcuforge.data.load_digits`), 75 % to train, 25 % held back.
Writes into --out: test_x.npy (the held-back inputs as the int8 model takes them, NHWC), test_y.npy
(labels), model_int8.tflite (the QAT int8 model) and c/ (its generated C library). Prints progress; the
last line is one JSON object (accuracies in percent on the held-back split). Runs on CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mcuforge.data import Split, load_digits
from mcuforge.engine.reference import run
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.frontends.torch_capture import from_torch
from mcuforge.ir import Graph
from mcuforge.pipeline import Compiled, compile_model, write_library
from mcuforge.quant.ptq import quantize, quantize_input
from mcuforge.targets.host import HostModel

try:
    from mcuforge.quant import qat
except ImportError:  # quantization-aware training is not part of this install: PTQ only
    qat = None

CLASSES = 10
BATCH = 32


def log(message: str) -> None:
    print(message, flush=True)


def digits_cnn() -> nn.Module:
    """8x8x1 -> 10 logits: conv, depthwise + pointwise, pool, conv, pool, linear (about 6 k parameters)."""

    def block(cin: int, cout: int, kernel: int = 3, groups: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(*block(1, 16), *block(16, 16, groups=16), *block(16, 32, kernel=1), nn.MaxPool2d(2),
                         *block(32, 32), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(32 * 2 * 2, CLASSES))


def nchw(x: np.ndarray) -> torch.Tensor:
    """IR-layout images [N, H, W, C] -> torch's [N, C, H, W]."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, seed: int, what: str) -> None:
    """Adam with a one-cycle learning rate, cross-entropy, mini-batches of BATCH."""
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * -(-len(x) // BATCH)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(x), generator=generator).split(BATCH):
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        log(f"  {what} epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}")
    model.eval()


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Percent of correct predictions, rounded to 0.01."""
    return round(100.0 * float(np.mean(predicted == labels)), 2)


def torch_predictions(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(x).argmax(-1).numpy()


def int8_predictions(run_one: Callable[[np.ndarray], np.ndarray], x_int8: np.ndarray) -> np.ndarray:
    """Class of each int8 sample: argmax of the int8 logits (monotonic in the real logits)."""
    return np.array([int(np.argmax(run_one(x[None]))) for x in x_int8])


def reference_predictions(graph: Graph, x_int8: np.ndarray) -> np.ndarray:
    return int8_predictions(lambda x: run(graph, [x])[0], x_int8)


def c_predictions(compiled: Compiled, x_int8: np.ndarray) -> np.ndarray:
    model = HostModel.build(compiled.lib)
    return int8_predictions(lambda x: model.run([x])[0], x_int8)


def post_training(model: nn.Module, data: Split) -> Graph:
    """int8 by post-training quantization, calibrated (min/max) on the training split."""
    float_graph = from_torch(model, nchw(data.x_train[:BATCH]))
    return quantize(float_graph, data.x_train, observer="minmax", progress=False)


def quantization_aware(model: nn.Module, data: Split, epochs: int, seed: int) -> Graph:
    """int8 by quantization-aware fine-tuning of the float model (inputs NHWC, as the IR takes them)."""
    assert qat is not None
    qat_model = qat.prepare_qat(model, nchw(data.x_train[:BATCH]), calibration=data.x_train, observer="ema")
    train(qat_model, torch.from_numpy(data.x_train), torch.from_numpy(data.y_train), epochs, 1e-3, seed + 1, "QAT")
    return qat.convert(qat_model)


def save_outputs(out: Path, graph: Graph, compiled: Compiled, x_int8: np.ndarray, labels: np.ndarray) -> None:
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "test_x.npy", x_int8)
    np.save(out / "test_y.npy", labels)
    (out / "model_int8.tflite").write_bytes(write_tflite(graph))
    write_library(compiled.lib, out / "c")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--epochs", type=int, default=30, help="float training epochs (default 30)")
    p.add_argument("--qat-epochs", type=int, default=4, help="quantization-aware fine-tuning epochs (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the model is tiny)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the example; returns (and prints as the last line) the summary."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    data = load_digits(seed=args.seed)
    log(f"digits: {len(data.x_train)} training, {len(data.x_test)} test samples of 8x8x1")

    model = digits_cnn()
    train(model, nchw(data.x_train), torch.from_numpy(data.y_train), args.epochs, 1e-2, args.seed, "float")
    train_seconds = time.perf_counter() - start
    float_acc = accuracy(torch_predictions(model, nchw(data.x_test)), data.y_test)
    log(f"float accuracy {float_acc:.2f} % ({train_seconds:.1f} s)")

    ptq_graph = post_training(model, data)
    ptq_acc = accuracy(reference_predictions(ptq_graph, quantize_input(ptq_graph, data.x_test)), data.y_test)
    log(f"PTQ int8 accuracy {ptq_acc:.2f} % (reference interpreter)")

    graph, qat_acc, qat_seconds = ptq_graph, None, 0.0
    if qat is None:
        log("QAT skipped: mcuforge.quant.qat is not available; compiling the PTQ model")
    else:
        qat_start = time.perf_counter()
        graph = quantization_aware(model, data, args.qat_epochs, args.seed)
        qat_seconds = time.perf_counter() - qat_start
    x_int8 = quantize_input(graph, data.x_test)
    reference = reference_predictions(graph, x_int8)
    if qat is not None:
        qat_acc = accuracy(reference, data.y_test)
        log(f"QAT int8 accuracy {qat_acc:.2f} % (reference interpreter, {qat_seconds:.1f} s)")

    compiled = compile_model(graph, "digits")
    c_pred = c_predictions(compiled, x_int8)
    differ = np.flatnonzero(c_pred != reference)
    assert differ.size == 0, f"C and reference disagree on test samples {differ[:10].tolist()}"
    c_acc = accuracy(c_pred, data.y_test)
    log(f"C (host build) accuracy {c_acc:.2f} %: same prediction as the reference on all {len(x_int8)} samples; "
        f"arena {compiled.report.arena_bytes} B, flash {compiled.report.flash_weights_bytes} B, "
        f"{compiled.report.macs:,} MACs")

    save_outputs(args.out, graph, compiled, x_int8, data.y_test)
    log(f"wrote {args.out}/test_x.npy, test_y.npy, model_int8.tflite and c/")
    summary = {"float_acc": float_acc, "ptq_acc": ptq_acc, "qat_acc": qat_acc, "c_acc": c_acc,
               "c_model": "ptq" if qat is None else "qat", "test_samples": len(x_int8),
               "train_seconds": round(train_seconds, 1), "qat_seconds": round(qat_seconds, 1),
               "total_seconds": round(time.perf_counter() - start, 1),
               "arena_bytes": compiled.report.arena_bytes, "flash_bytes": compiled.report.flash_weights_bytes,
               "macs": compiled.report.macs}
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
