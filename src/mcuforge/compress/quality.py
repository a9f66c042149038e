"""Quality metrics of a compressed deployment: one number that trades the size it saves against the accuracy
it loses, so a sweep can rank its combinations (`mcuforge compress sweep --metric`).

The seed's work (arXiv 2105.10059) scores each combination of pruning level and quantization by how much it
shrinks the model against how much accuracy it costs. Ours, "halvings-per-point" (the default), says that
halving the flash is worth one point of test accuracy:

    quality = log2(float_flash_bytes / flash_bytes) - max(0, float_test_accuracy - test_accuracy) in points

so int8 (4x smaller than float32: 2.0) with no loss scores 2, int4 at a 1-point loss scores 3 - 1 = 2, and a
combination that loses more points than it saves halvings scores below the float model (0). Gains above the
float accuracy are not rewarded (they are noise at these sizes). "accuracy" ranks by test accuracy alone,
the smaller flash first on a tie. A metric is any function of a result's fields; register more in METRICS.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

from ..errors import UsageError

Metric = Callable[[Mapping[str, float]], float]


def halvings_per_point(r: Mapping[str, float]) -> float:
    loss = max(0.0, 100.0 * (r["float_test_accuracy"] - r["test_accuracy"]))
    return math.log2(r["float_flash_bytes"] / r["flash_bytes"]) - loss


def accuracy_first(r: Mapping[str, float]) -> float:
    return 100.0 * r["test_accuracy"] - 1e-9 * r["flash_bytes"]


METRICS: dict[str, Metric] = {"halvings-per-point": halvings_per_point, "accuracy": accuracy_first}
DEFAULT_METRIC = "halvings-per-point"


def metric(name: str) -> Metric:
    if name not in METRICS:
        raise UsageError(f"quality metric {name!r}: choose one of {', '.join(METRICS)}")
    return METRICS[name]


def pareto_front(results: list[Mapping[str, float]]) -> list[int]:
    """Indices of the results no other beats on both test accuracy (higher) and flash (lower), by flash."""
    order = sorted(range(len(results)), key=lambda i: (results[i]["flash_bytes"], -results[i]["test_accuracy"]))
    front, best = [], -1.0
    for i in order:
        if results[i]["test_accuracy"] > best:
            front.append(i)
            best = results[i]["test_accuracy"]
    return front


__all__ = ["DEFAULT_METRIC", "METRICS", "Metric", "accuracy_first", "halvings_per_point", "metric", "pareto_front"]
