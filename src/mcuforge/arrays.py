"""Arrays in and out of `mcuforge run` and `verify`: a .npy input checked against the model's input and
converted to its type, and the outputs saved whole.

    x = load_array("x.npy")
    batch, stacked = input_batch(graph, x, quantize=True)   # real values -> the int8 input's codes
    save_outputs("y.npy", outputs)

The rules: an integer input (int8) takes integer arrays of any integer type whose values lie in its range
(never wrapped), and real values only with `quantize=True`, which quantizes them with the input's scale
and zero point as TFLite's QUANTIZE does (float32 division, halves rounded away from zero, clamped to
the type's range). A float32 input takes float or integer arrays. Booleans, complex numbers, strings and
objects are refused. Every refusal is a UsageError whose one line says what to do.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import UsageError, shown
from .ir import NUMPY_DTYPES, Graph
from .outdir import check_output_file, write_file_atomically
from .pipeline import split_batch
from .quant.ptq import quantize_input

NPY_MAGIC = b"\x93NUMPY"


def existing_file(given: str, what: str) -> Path:
    """`given` as a Path; UsageError if it is a folder (not `what`, e.g. "a .npy file") or missing."""
    p = Path(given)
    if p.is_dir():
        raise UsageError(f"{shown(given)} is a folder, not {what}")
    if not p.exists():
        raise UsageError(f"{shown(given)}: no such file")
    return p


def load_array(path: str | os.PathLike) -> np.ndarray:
    """The array in a .npy file (numpy.save); UsageError if it is missing, a folder or not a .npy array."""
    given = os.fspath(path)
    p = existing_file(given, "a .npy file")
    if p.suffix.lower() != ".npy":
        raise UsageError(f"{shown(given)}: expected a .npy file (written with numpy.save)")
    try:
        with open(p, "rb") as f:
            if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
                raise UsageError(f"{shown(given)} is not a .npy file (no NumPy header: empty, truncated or "
                                 "another format); write it with numpy.save")
            f.seek(0)
            x = np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"{shown(given)}: cannot read it as a .npy array ({shown(reason, 60)}); "
                         "write it with numpy.save") from None
    return x


def _as_integer_input(x: np.ndarray, name: str, dtype: np.dtype, source: str) -> np.ndarray:
    info = np.iinfo(dtype)
    if x.size and (x.min() < info.min or x.max() > info.max):
        raise UsageError(f"{source} holds values from {x.min()} to {x.max()}, outside the {dtype} range "
                         f"{info.min}..{info.max} of the model's input {shown(name)}: give {dtype} values, or "
                         "real values with --quantize-input")
    return x.astype(dtype)


def model_input(graph: Graph, x: np.ndarray, *, quantize: bool = False, source: str = "the input array"
                ) -> np.ndarray:
    """`x` converted to the type of the graph's one input by the rules in the module docstring
    (`quantize`: x holds real values; `source` names x in messages)."""
    if len(graph.inputs) != 1:
        raise UsageError(f"the model takes {len(graph.inputs)} inputs; run and verify read models with one input")
    name = graph.inputs[0]
    t = graph[name]
    dtype = NUMPY_DTYPES[t.dtype]
    kind = x.dtype.kind
    if kind not in "iuf":
        raise UsageError(f"{source} holds {x.dtype} values; the model's input {shown(name)} takes {t.dtype} numbers")
    if dtype.kind == "f":
        if quantize:
            raise UsageError(f"the model's input {shown(name)} is {t.dtype} and takes real values as they are: "
                             "leave out --quantize-input")
        return x.astype(dtype)
    if quantize:
        if t.quant is None or t.dtype != "int8":
            raise UsageError(f"the model's input {shown(name)} is {t.dtype} without an int8 scale and zero point: "
                             "--quantize-input cannot quantize for it; give integer values")
        if kind == "f" and np.isnan(x).any():
            raise UsageError(f"{source} holds NaN, which has no {t.dtype} code: give finite values")
        return quantize_input(graph, x)
    if kind == "f":
        hint = f" (scale {t.quant.s:.6g}, zero point {t.quant.zp})" if t.quant is not None else ""
        raise UsageError(f"the model's input {shown(name)} is {t.dtype}{hint} and {source} holds {x.dtype} values: "
                         f"pass --quantize-input to quantize them with that scale and zero point, or give {t.dtype} "
                         "values")
    return _as_integer_input(x, name, dtype, source)


def input_batch(graph: Graph, x: np.ndarray, *, quantize: bool = False, source: str = "the input array"
                ) -> tuple[list[np.ndarray], bool]:
    """`x` (one input, or a stack along a new leading axis) as single inputs of the model's type, and
    whether it was a stack (see model_input and pipeline.split_batch)."""
    return split_batch(graph, model_input(graph, x, quantize=quantize, source=source))


def output_suffixes(outputs: int) -> tuple[str, ...]:
    """.npy holds one array; .npz (numpy.savez: arr_0, arr_1, ...) holds any number."""
    return (".npy", ".npz") if outputs == 1 else (".npz",)


def check_output_path(path: str | os.PathLike, outputs: int) -> Path:
    """UsageError unless `path` can take `outputs` arrays (suffix, existing folder)."""
    what = "the output" if outputs == 1 else f"the model's {outputs} outputs"
    return check_output_file(path, output_suffixes(outputs), what)


def save_outputs(path: str | os.PathLike, arrays: Sequence[np.ndarray]) -> Path:
    """Saves one array as .npy (or .npz), several as .npz (arr_0, arr_1, ...), written whole; the file name
    is used as given (numpy adds no suffix)."""
    target = check_output_path(path, len(arrays))
    if target.suffix.lower() == ".npy":
        return write_file_atomically(target, lambda f: np.save(f, arrays[0]))
    return write_file_atomically(target, lambda f: np.savez(f, *arrays))
