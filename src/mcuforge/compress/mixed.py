"""Mixed precision: a weight format per layer that fits a flash budget, chosen by each layer's measured
sensitivity (the sweep's "mixed" combination).

1. The flash that is not weights (code, biases, requantization words, tables) is measured once: the int8
   graph compiled for the core. The weights get the rest of the budget.
2. Sensitivity: with every other layer in int8, each layer's weights are fake-quantized into each smaller
   format (quant.qat, ranges calibrated on the training samples, no training) and the accuracy on
   SENSITIVITY_SAMPLES held-back training samples is measured: drop(layer, format) = int8's accuracy - that.
3. Greedy: from all int8, take the move (one layer into a smaller format) that saves the most bytes per point
   of accuracy dropped, until the weights fit; then, while some layer can take a larger format that drops
   less and still fit, give it the one that wins the most accuracy per byte. The drops are measured one
   layer at a time and assumed to add.
The chosen formats are then trained together by quantization-aware training (compress.sweep).
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..ir import Graph
from ..ir.formats import encoded_bytes

SENSITIVITY_SAMPLES = 512
_BITS = {"int8": 8, "int4": 4, "pow2": 4, "ternary": 2}


def _bits(fmt: str) -> int:
    return int(fmt.split(":")[1]) if fmt.startswith("codebook") else _BITS[fmt]


def _accuracy(qat, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        return float((qat(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def choose_layer_formats(float_graph: Graph, x_train: np.ndarray, y_train: np.ndarray, formats, flash_budget: int,
                         core: str | None) -> tuple[dict[str, str], str]:
    """(weight tensor -> format, a line saying what was chosen) for `float_graph` under `flash_budget`
    (see the module docstring); `x_train` in IR layout."""
    from ..nas.deploy import OPT
    from ..pipeline import compile_model
    from ..quant.qat import convert, prepare_qat

    shape = float_graph[float_graph.inputs[0]].shape[1:]
    x = np.ascontiguousarray(x_train, np.float32).reshape(len(x_train), *shape)
    held, y_held = x[-SENSITIVITY_SAMPLES:], np.asarray(y_train)[-SENSITIVITY_SAMPLES:]
    int8 = prepare_qat(float_graph, calibration=x[:512]).eval()
    sizes = {n: int(p.numel()) for n, p in int8.weight_parameters().items()}
    names = list(sizes)
    weight_bytes = sum(sizes.values())
    other = compile_model(convert(int8), "model", target=core or "host", opt=OPT).report.flash_bytes - weight_bytes
    budget = flash_budget - other
    smaller = sorted({f for f in formats if _bits(f) < 8}, key=_bits, reverse=True)
    if not smaller or budget < sum(encoded_bytes(smaller[-1], sizes[n]) for n in names):
        raise UsageError(f"--flash-budget {flash_budget:,} B: the code and constants take {other:,} B, and the "
                         f"weights need more than the {max(budget, 0):,} B left even in the smallest of "
                         f"{', '.join(formats)}: raise the budget or add a smaller format")
    base = _accuracy(int8, held, y_held)
    ranges = int8.ranges()  # the same calibration for every format: the activations are the float graph's

    def one_layer_in(n: str, f: str):
        trial = prepare_qat(float_graph, weights={n: f})
        trial.set_ranges(ranges)
        return trial.eval()

    drops = {(n, f): max(0.0, base - _accuracy(one_layer_in(n, f), held, y_held)) for n in names for f in smaller}
    chosen = {n: "int8" for n in names}

    def used() -> int:
        return sum(encoded_bytes(chosen[n], sizes[n]) for n in names)

    def drop(n: str, f: str) -> float:
        return drops.get((n, f), 0.0)

    def saved(n: str, f: str) -> int:  # bytes saved by moving layer n from its format to f
        return encoded_bytes(chosen[n], sizes[n]) - encoded_bytes(f, sizes[n])

    while used() > budget:
        moves = [(n, f) for n in names for f in smaller if _bits(f) < _bits(chosen[n])]
        n, f = max(moves, key=lambda m: saved(*m) / (drop(*m) + 1e-3))
        chosen[n] = f
    while True:  # the last move may have overshot: give back precision where it still fits, best gain per byte
        ups = [(n, f) for n in names for f in ("int8", *smaller) if _bits(f) > _bits(chosen[n])
               and used() - saved(n, f) <= budget and drop(n, f) < drop(n, chosen[n])]
        if not ups:
            break
        n, f = max(ups, key=lambda m: (drop(m[0], chosen[m[0]]) - drop(*m)) / -saved(*m))
        chosen[n] = f
    note = (f"mixed precision: {', '.join(f'{n} {f}' for n, f in chosen.items())}; weights {used():,} B of the "
            f"{budget:,} B the budget leaves after {other:,} B of code and constants")
    return chosen, note


__all__ = ["SENSITIVITY_SAMPLES", "choose_layer_formats"]
