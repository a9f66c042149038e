"""`mcuforge validate`: the generated C of an int8 model on the user's own data, held against TFLM running
the same int8 model (bit for bit) and, optionally, against the float model it was made from.

    v = validate("model.tflite", "data.npz", float_model="model_float.tflite")
    print("\\n".join(v.lines())); v.as_json(); v.ok        # ok: the C equals TFLM on every sample

The data: an .npz with `x` (or `x_test`) and optional labels `y` (or `y_test`), or an .npy with x alone.
Samples lie along x's first axis, each of the int8 model's input shape in its layout (NHWC), axes of size
1 optional. Real (float) values are quantized with the input's scale and zero point as TFLite's QUANTIZE
does; integer values for an int8 input are taken as codes already quantized (-128..127) and dequantized
for the float model. A torch float model (.pt2) usually takes channels-first input: `float_layout="nchw"`
(its default) moves the channel axis of each sample there, and back on the outputs.

Against the float model, per output: RMSE, cosine similarity (over all samples' values together) and the
largest absolute error, of the C's outputs dequantized with the output's scale and zero point (float32
outputs as they are). With labels: top-1 accuracy of the C (and of the float model) on output 0. All
metrics are computed here with numpy, from the outputs alone.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UsageError, shown
from .progress import phase_bars
from .ir import Graph

DEFAULT_MAX_SAMPLES = 1000  # without --samples, at most this many of the data's samples
QEMU_CHUNK = 50  # samples per QEMU run (each run reports progress)
LAYOUTS = ("nchw", "nhwc")


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Data:
    x: np.ndarray
    y: np.ndarray | None
    path: str
    key: str  # the array x was read from ("x", "x_test"; "" for an .npy)

    @property
    def source(self) -> str:
        """How messages name the samples, e.g. 'data.npz' x_test."""
        return f"{shown(self.path)} {self.key}".rstrip()


def _npz_arrays(path: Path, given: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            for x_key, y_key in (("x", "y"), ("x_test", "y_test")):
                if x_key in names:
                    return archive[x_key], (archive[y_key] if y_key in names else None), x_key
    except (OSError, ValueError, EOFError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"{shown(given)}: cannot read it as an .npz archive ({shown(reason, 60)}); write it "
                         "with numpy.savez") from None
    listed = ", ".join(shown(n, 24) for n in names[:8]) or "nothing"
    raise UsageError(f"{shown(given)} holds {listed} but no 'x' (or 'x_test'): save the samples as x (and the "
                     "labels as y), e.g. numpy.savez(path, x=x, y=y)")


def load_data(path: str | os.PathLike) -> Data:
    """Samples (and labels) from an .npz (x or x_test, y or y_test) or an .npy (x)."""
    from .arrays import existing_file, load_array

    given = os.fspath(path)
    p = existing_file(given, "a data file (.npz with x and optional y, or .npy)")
    if p.suffix.lower() == ".npy":
        return Data(load_array(p), None, given, "")
    if p.suffix.lower() != ".npz":
        raise UsageError(f"{shown(given)}: expected an .npz (x and optional y) or an .npy (x)")
    x, y, key = _npz_arrays(p, given)
    return Data(x, y, given, key)


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(d) for d in shape if d != 1)


def stack_samples(x: np.ndarray, shape: tuple[int, ...], source: str) -> np.ndarray:
    """x as [N, *shape]: samples along the first axis (one sample may come without it), each of `shape`
    up to axes of size 1. A sample of the right size in another order (e.g. NCHW) is refused, not guessed."""
    want = _squeezed(shape)
    if x.ndim >= 1 and _squeezed(x.shape[1:]) == want:
        if len(x) == 0:
            raise UsageError(f"{source} holds no samples (shape {list(x.shape)})")
        return x.reshape((len(x), *shape))
    if _squeezed(x.shape) == want:
        return x.reshape((1, *shape))
    expected = f"[N, {', '.join(map(str, shape[1:] if len(shape) > 1 and shape[0] == 1 else shape))}]"
    hint = ""
    if x.ndim >= 2 and sorted(_squeezed(x.shape[1:])) == sorted(want):
        hint = ("; its samples look transposed (e.g. NCHW): give them in the model's layout (NHWC), e.g. "
                "numpy.moveaxis(x, 1, -1)")
    raise UsageError(f"{source} has shape {list(x.shape)}, not samples of the model's input {list(shape)}: expected "
                     f"{expected}, samples first (axes of size 1 may be left out){hint}")


def _check_codes(x: np.ndarray, source: str) -> None:
    if x.size and (x.min() < -128 or x.max() > 127):
        raise UsageError(f"{source} holds integers from {x.min()} to {x.max()}: integer data is taken as int8 codes "
                         "already quantized (-128..127); give real values as floats to have them quantized with "
                         "the input's scale and zero point")


def model_inputs(graph: Graph, x: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """[N, *input shape] data -> (what the int8 model takes, the real values a float model takes)."""
    from .arrays import model_input

    t = graph[graph.inputs[0]]
    is_codes = x.dtype.kind in "iu" and t.dtype == "int8"
    if is_codes:
        _check_codes(x, source)
    inputs = model_input(graph, x, quantize=x.dtype.kind == "f" and t.dtype == "int8", source=source)
    if is_codes and t.quant is not None:
        real = (inputs.astype(np.float32) - np.float32(t.quant.zp)) * np.float32(t.quant.s)
    else:
        real = x.astype(np.float32)
    return inputs, real


def labels_of(y: np.ndarray, count: int, classes: int, source: str) -> np.ndarray:
    """Class indices, one per sample: integers in 0..classes-1."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != count:
        raise UsageError(f"{source}: labels of shape {list(y.shape)} do not give one label per sample "
                         f"({count} samples): give y as [{count}] class indices")
    if y.dtype.kind not in "iu":
        raise UsageError(f"{source}: labels must be whole class indices, not {y.dtype} values")
    if classes < 2:
        raise UsageError(f"{source}: labels need a classifier, but the model's output 0 holds one value")
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise UsageError(f"{source}: labels run from {y.min()} to {y.max()}, but the model's output 0 has {classes} "
                         f"classes (0..{classes - 1})")
    return y.astype(np.int64)


# ---------------------------------------------------------------- metrics (numpy only)


@dataclass(frozen=True)
class OutputError:
    """The C's output (real values) against the float model's, over all samples."""

    index: int
    name: str
    rmse: float
    cosine: float | None  # None when either side is all zeros
    max_abs: float


def output_error(index: int, name: str, ours: np.ndarray, ref: np.ndarray) -> OutputError:
    a = np.asarray(ours, np.float64).ravel()
    b = np.asarray(ref, np.float64).ravel()
    diff = a - b
    norms = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    cosine = float(np.dot(a, b)) / norms if norms > 0 else None
    return OutputError(index, name, math.sqrt(float(np.mean(diff * diff))), cosine, float(np.max(np.abs(diff))))


def top1(values: np.ndarray) -> np.ndarray:
    """The class with the largest value, per sample (values: [N, ...])."""
    return np.asarray(values).reshape(len(values), -1).argmax(axis=1)


def real_outputs(graph: Graph, j: int, codes: np.ndarray) -> np.ndarray:
    """Output j's values as real numbers: int8 codes dequantized with its scale and zero point."""
    t = graph[graph.outputs[j]]
    if t.dtype == "int8" and t.quant is not None:
        return (codes.astype(np.float64) - float(t.quant.zp)) * float(t.quant.s)
    return codes.astype(np.float64)


# ---------------------------------------------------------------- the report


def _finite(value: float | None) -> float | None:
    """A number for JSON: NaN and infinity (a float model that overflowed) become null."""
    return value if value is not None and math.isfinite(value) else None



@dataclass(frozen=True)
class Validation:
    model: str  # paths as given
    data: str
    target: str
    samples: int
    samples_in_data: int
    bit_exact: int  # samples on which every output of the C equals TFLM's
    max_diff: float  # largest |C - TFLM| over all outputs (int8 steps for int8 outputs)
    diff_unit: str
    float_model: str | None = None
    float_layout: str | None = None
    outputs: tuple[OutputError, ...] = ()
    labels: int = 0
    accuracy: float | None = None  # top-1 of the C
    float_accuracy: float | None = None
    top1_agreement: float | None = None  # C and float model pick the same class
    notes: tuple[str, ...] = field(default=())
    data_key: str = ""  # the .npz array the samples came from ("x", "x_test")

    @property
    def ok(self) -> bool:
        """The C equals TFLM on every sample."""
        return self.bit_exact == self.samples

    def as_json(self) -> dict:
        return {"model": self.model, "data": self.data, "data_key": self.data_key, "target": self.target,
                "samples": self.samples,
                "samples_in_data": self.samples_in_data, "ok": self.ok,
                "tflm": {"bit_exact": self.bit_exact, "max_abs_diff": self.max_diff, "unit": self.diff_unit},
                "float_model": self.float_model, "float_layout": self.float_layout,
                "outputs": [{"index": o.index, "name": o.name, "rmse": _finite(o.rmse), "cosine": _finite(o.cosine),
                             "max_abs_error": _finite(o.max_abs)} for o in self.outputs],
                "labels": self.labels, "accuracy": self.accuracy, "float_accuracy": self.float_accuracy,
                "top1_agreement": self.top1_agreement}

    def lines(self) -> list[str]:
        where = "host" if self.target == "host" else f"{self.target} (QEMU)"
        of = "" if self.samples == self.samples_in_data else f" (the first {self.samples} of {self.samples_in_data})"
        data = f"{shown(self.data, 120)} {self.data_key}".rstrip()
        out = [f"validated {shown(self.model, 120)} on {self.samples} sample(s) of {data}{of}, C built for {where}",
               f"  C vs TFLM int8: {self.bit_exact}/{self.samples} samples bit-exact, max |difference| "
               f"{self.max_diff:g} {self.diff_unit}" + ("" if self.ok else "  <- MISMATCH: a bug of mcuforge, "
                                                       "please report it")]
        if self.float_model is not None:
            out.append(f"  vs the float model {shown(self.float_model, 120)} ({self.float_layout} input):")
            for o in self.outputs:
                cosine = "n/a" if o.cosine is None else f"{o.cosine:.6f}"
                out.append(f"    output {o.index} {shown(o.name)}: RMSE {o.rmse:.6g}, cosine {cosine}, "
                           f"max |error| {o.max_abs:.6g}")
            if self.top1_agreement is not None:
                out.append(f"    top-1 class of the C = the float model's on {self.top1_agreement:.2%} of samples")
        if self.accuracy is not None:
            line = f"  top-1 accuracy on {self.labels} labels: C {self.accuracy:.2%}"
            if self.float_accuracy is not None:
                line += f", float model {self.float_accuracy:.2%}"
            out.append(line)
        return out + [f"  note: {n}" for n in self.notes]


# ---------------------------------------------------------------- running


def _run_c(graph: Graph, inputs: np.ndarray, target: str, opt: str, strategy: str, max_extra_macs: float,
           advance: Callable[[int], None]) -> list[list[np.ndarray]]:
    from .pipeline import compile_model

    lib = compile_model(graph, strategy=strategy, max_extra_macs=max_extra_macs).lib
    if target == "host":
        from .targets.host import HostModel

        model = HostModel.build(lib)
        outs = []
        for x in inputs:
            outs.append(model.run([x]))
            advance(1)
        return outs
    from .targets.cortex_m import CortexMModel

    model = CortexMModel.build(lib, target, opt)
    outs = []
    for start in range(0, len(inputs), QEMU_CHUNK):
        chunk = [[x] for x in inputs[start:start + QEMU_CHUNK]]
        outs += model.run_batch(chunk)
        advance(len(chunk))
    return outs


def _run_tflm(graph: Graph, data: bytes, what: str, inputs: np.ndarray,
              advance: Callable[[int], None]) -> list[list[np.ndarray]]:
    from .pytorch.float_reference import tflm_interpreter

    interpreter = tflm_interpreter(data, what)
    outs = []
    for x in inputs:
        interpreter.set_input(np.ascontiguousarray(x), 0)
        interpreter.invoke()
        outs.append([np.array(interpreter.get_output(j)).reshape(graph[n].shape) for j, n in enumerate(graph.outputs)])
        advance(1)
    return outs


def _float_input(real: np.ndarray, model_shape: tuple[int, ...], layout: str, float_shape: tuple[int, ...],
                 what: str) -> np.ndarray:
    """The real values [N, *int8 input shape] as [N, *float_shape], channels moved for an nchw model."""
    from .pytorch.float_reference import batchless

    x = real.reshape((len(real), *batchless(model_shape)))
    if layout == "nchw" and x.ndim >= 3:
        x = np.moveaxis(x, -1, 1)
    if _squeezed(x.shape[1:]) != _squeezed(float_shape):
        raise UsageError(f"{what} takes samples of shape {list(float_shape)}, but the int8 model's input "
                         f"{list(model_shape)} is {list(x.shape[1:])} in {layout} layout: not the same network's "
                         "input (or the wrong --float-layout)")
    return x.reshape((len(x), *float_shape))


def _float_output(y: np.ndarray, j: int, graph: Graph, layout: str, what: str) -> np.ndarray:
    """The float model's output j [N, ...] in the int8 model's layout, as [N, *its output shape]."""
    shape = graph[graph.outputs[j]].shape
    if layout == "nchw" and y.ndim >= 3:
        y = np.moveaxis(y, 1, -1)
    if _squeezed(y.shape[1:]) != _squeezed(shape):
        raise UsageError(f"{what}: its output {j} has shape {list(y.shape[1:])} per sample (in the int8 model's "
                         f"layout), the int8 model's output {j} {list(shape)}: not the same network's output")
    return y.reshape((len(y), *shape))


def _float_outputs(float_model, real: np.ndarray, graph: Graph, layout: str, task) -> list[np.ndarray]:
    from .pytorch.float_reference import load_float_model

    ref = load_float_model(float_model)
    what = f"the float model {shown(os.fspath(float_model), 100)}"
    x = _float_input(real, graph[graph.inputs[0]].shape, layout, ref.sample_shape, what)
    outs = ref.run(x[:1])  # one sample first: a wrong output shape is refused before the long runs
    if len(outs) != len(graph.outputs):
        raise UsageError(f"{what} has {len(outs)} output(s), the int8 model {len(graph.outputs)}")
    for j, y in enumerate(outs):
        _float_output(y, j, graph, layout, what)
    outs = ref.run(x, task("float model", len(x)))
    return [_float_output(y, j, graph, layout, what) for j, y in enumerate(outs)]


def validate(model: str | os.PathLike, data: str | os.PathLike, *, float_model: str | os.PathLike | None = None,
             float_layout: str | None = None, target: str = "host", opt: str = "-O2", samples: int | None = None,
             strategy: str = "auto", max_extra_macs: float = 0.15, progress: bool = False) -> Validation:
    """Runs the first `samples` samples of `data` (default all, at most DEFAULT_MAX_SAMPLES) through the
    generated C of the int8 `model` (on `target`), TFLM and the float model; see the module docstring."""
    from .pytorch.float_reference import tflm_runtime
    from .pipeline import load_model

    if float_layout is not None and float_model is None:
        raise UsageError("--float-layout describes the float model's input: give the float model with --float")
    if float_layout is not None and float_layout not in LAYOUTS:
        raise UsageError(f"unknown float layout {shown(float_layout)}: choose nchw or nhwc")
    if float_model is not None:
        float_layout = float_layout or ("nchw" if Path(float_model).suffix.lower() == ".pt2" else "nhwc")
    graph = load_model(model)
    if len(graph.inputs) != 1:
        raise UsageError(f"the model takes {len(graph.inputs)} inputs; validate takes models with one input")
    loaded = load_data(data)
    shape = graph[graph.inputs[0]].shape
    stack = stack_samples(loaded.x, shape, loaded.source)
    total = len(stack)
    count = min(total, samples if samples is not None else DEFAULT_MAX_SAMPLES)
    classes = int(np.prod(graph[graph.outputs[0]].shape))
    y = None if loaded.y is None else labels_of(loaded.y, total, classes, loaded.source)[:count]
    inputs, real = model_inputs(graph, stack[:count], loaded.source)
    notes = [] if samples is not None or total <= DEFAULT_MAX_SAMPLES else [
        f"{total} samples in the data; the first {count} were used (--samples N for more)"]
    model_what = shown(os.fspath(model))
    tflm_runtime()  # before the long runs: TFLM is the oracle
    with phase_bars(progress) as task:
        ref = None if float_model is None else _float_outputs(float_model, real, graph, float_layout, task)
        ours = _run_c(graph, inputs, target, opt, strategy, max_extra_macs,
                      task("C on " + ("host" if target == "host" else target), count))
        oracle = _run_tflm(graph, Path(model).read_bytes(), model_what, inputs, task("TFLM int8", count))
    exact = sum(all(np.array_equal(a, b) for a, b in zip(o, t)) for o, t in zip(ours, oracle))
    max_diff = max((float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                    for o, t in zip(ours, oracle) for a, b in zip(o, t) if a.size), default=0.0)
    unit = "int8 steps" if all(graph[n].dtype == "int8" for n in graph.outputs) else "(output units)"
    c_real = [real_outputs(graph, j, np.stack([o[j] for o in ours])) for j in range(len(graph.outputs))]
    outputs: tuple[OutputError, ...] = ()
    if ref is not None:
        outputs = tuple(output_error(j, graph.outputs[j], c_real[j], ref[j]) for j in range(len(graph.outputs)))
    agreement = accuracy = float_accuracy = None
    if ref is not None and classes > 1:
        agreement = float(np.mean(top1(c_real[0]) == top1(ref[0])))
    if y is not None:
        accuracy = float(np.mean(top1(c_real[0]) == y))
        float_accuracy = None if ref is None else float(np.mean(top1(ref[0]) == y))
    return Validation(os.fspath(model), loaded.path, target, count, total, int(exact), max_diff, unit,
                      None if float_model is None else os.fspath(float_model), float_layout, outputs,
                      0 if y is None else len(y), accuracy, float_accuracy, agreement, tuple(notes), loaded.key)
