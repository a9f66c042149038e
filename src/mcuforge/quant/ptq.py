"""Post-training int8 quantization: calibrate a float IR graph on data, then quantize it.

    int8_graph = quantize(float_graph, x_calibration, observer="mse")
    compiled = mcuforge.pipeline.compile_model(int8_graph)

The graph's inputs and outputs become int8 (no QUANTIZE / DEQUANTIZE ops): feed
`quantize_input(int8_graph, x)` and read `dequantize_output(int8_graph, y)`.

Calibration runs the float graph with torch (`TorchGraph`), batch by batch, and feeds every activation
to its own observer (see `observers`); `quantize_with_ranges` (numpy only) turns the ranges into the
int8 graph.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..ir import Graph, QuantParams
from .observers import Observer, Range, make_observer
from .quantize_graph import quantize_with_ranges

__all__ = ["calibrate", "dequantize_output", "quantize", "quantize_input", "quantize_with_ranges"]

Batch = tuple[np.ndarray, ...]  # one array per graph input, batch first
Calibration = Iterable[Any] | np.ndarray
ObserverChoice = str | Callable[[], Observer]
PROGRESS_MIN_BATCHES = 4  # fewer batches than this run without a progress bar


def _as_batch(graph: Graph, item: Any) -> Batch:
    """One calibration item (an array, or a tuple of arrays for a graph with several inputs) as a batch."""
    arrays = tuple(item) if isinstance(item, (tuple, list)) else (item,)
    if len(arrays) != len(graph.inputs):
        raise ValueError(f"{graph.name} takes {len(graph.inputs)} input(s); a calibration item holds {len(arrays)}")
    batch = []
    for name, x in zip(graph.inputs, arrays):
        x = np.asarray(x, np.float32)
        sample = graph[name].shape[1:]
        if x.shape == sample:  # one sample without its batch axis
            x = x[None]
        if x.shape[1:] != sample:
            raise ValueError(f"calibration data for input {name!r} must be [N, {', '.join(map(str, sample))}] "
                             f"(IR layout, NHWC), got {list(x.shape)}")
        batch.append(x)
    return tuple(batch)


def calibration_batches(graph: Graph, data: Calibration, batch_size: int = 64) -> tuple[Iterator[Batch], int | None]:
    """The calibration data as batches, and how many there are (None if unknown).

    An array [N, ...] (numpy, or anything with `__array__` such as a torch tensor) is cut into batches of
    `batch_size`; an iterable yields one batch per item."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if isinstance(data, np.ndarray) or (hasattr(data, "__array__") and hasattr(data, "shape")):
        whole = _as_batch(graph, np.asarray(data))[0]
        if len(whole) == 0:
            raise ValueError("no calibration samples")
        starts = range(0, len(whole), batch_size)
        return ((whole[s:s + batch_size],) for s in starts), len(starts)
    count = len(data) if hasattr(data, "__len__") else None
    return (_as_batch(graph, item) for item in data), count


def _with_progress(batches: Iterator[Batch], count: int | None, progress: bool) -> Iterable[Batch]:
    if not progress or (count is not None and count < PROGRESS_MIN_BATCHES):
        return batches
    from rich.progress import track

    return track(batches, description="calibrating", total=count, transient=True)


def observer_factory(observer: ObserverChoice) -> Callable[[], Observer]:
    if callable(observer):
        return observer
    make_observer(observer)  # fails early, with the list of choices, on an unknown name
    return lambda: make_observer(observer)


def calibrate(float_graph: Graph, data: Calibration, observer: ObserverChoice = "minmax", *,
              batch_size: int = 64, progress: bool = False) -> dict[str, Range]:
    """The real range (lo, hi) of every activation of `float_graph` over the calibration data."""
    import torch

    from .torch_graph import TorchGraph

    new_observer = observer_factory(observer)
    observers: dict[str, Observer] = {}

    def observe(name: str, value: Any) -> Any:
        if name not in observers:
            observers[name] = new_observer()
        try:
            observers[name].update(value)
        except ValueError as e:
            raise ValueError(f"calibrating tensor {name!r}: {e}") from None
        return value

    module = TorchGraph(float_graph, observe=observe).eval()
    batches, count = calibration_batches(float_graph, data, batch_size)
    seen = 0
    with torch.no_grad():
        for batch in _with_progress(batches, count, progress):
            module(*(torch.from_numpy(np.ascontiguousarray(x)) for x in batch))
            seen += 1
    if seen == 0:
        raise ValueError("no calibration batches")
    return {name: obs.range() for name, obs in observers.items()}


def quantize(float_graph: Graph, calibration: Calibration, *, observer: ObserverChoice = "minmax",
             batch_size: int = 64, progress: bool = True, layout: str = "nhwc") -> Graph:
    """The int8 graph of `float_graph`, with activation ranges calibrated on `calibration`, samples first.
    `layout`: "nhwc" (channels last, the IR's layout, as from_torch lays the graph out) or "nchw" (channels
    first, as the torch model and `mcuforge quantize --calib` take them: an array is moved to channels last)."""
    if layout.lower() in ("nchw", "ncl", "channels_first"):
        if not isinstance(calibration, np.ndarray):
            raise ValueError("layout='nchw' takes the calibration data as one array, samples first")
        calibration = np.moveaxis(calibration, 1, -1) if calibration.ndim >= 3 else calibration
    elif layout.lower() not in ("nhwc", "nlc", "channels_last"):
        raise ValueError(f"layout {layout!r}: choose nhwc (channels last) or nchw (channels first)")
    ranges = calibrate(float_graph, calibration, observer, batch_size=batch_size, progress=progress)
    return quantize_with_ranges(float_graph, ranges)


# ---------------------------------------------------------------- the int8 graph's edges


def _edge_quant(graph: Graph, names: Sequence[str], i: int, role: str) -> QuantParams:
    if not 0 <= i < len(names):
        raise IndexError(f"{graph.name} has {len(names)} {role}(s), not {i + 1}")
    q = graph[names[i]].quant
    if q is None or graph[names[i]].dtype != "int8":
        raise ValueError(f"{role} {names[i]!r} of {graph.name} is not int8")
    return q


def quantize_input(graph: Graph, x: np.ndarray, i: int = 0) -> np.ndarray:
    """Real values -> the int8 codes of the graph's input i (float32 division, halves away from zero,
    as TFLite's QUANTIZE)."""
    from ..operators.quantize import quantize_f32_values

    q = _edge_quant(graph, graph.inputs, i, "input")
    return quantize_f32_values(q.s, q.zp, x)


def dequantize_output(graph: Graph, y: np.ndarray, i: int = 0) -> np.ndarray:
    """The int8 codes of the graph's output i -> real values (float32)."""
    q = _edge_quant(graph, graph.outputs, i, "output")
    return ((np.asarray(y, np.int32) - q.zp) * np.float32(q.s)).astype(np.float32)
