"""A saved PyTorch model to an int8 `.tflite`: the library behind `mcuforge quantize`.

    result = quantize_exported("model.pt2", "calib.npy", observer="mse")
    write_atomic(result.tflite, "model.tflite")

`model.pt2` is a `torch.export` program (`torch.export.save`); the calibration array holds inputs in the
torch model's own layout (NCHW, NCL or NF), batch first. The array is moved into the IR's layout (NHWC,
NLC) exactly as `from_torch` lays out the model's input, the float graph is calibrated and quantized
(`quant.ptq`), and the int8 graph is written as TFLite flatbuffer bytes.
"""
from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.export import ExportedProgram

from ..errors import ModelError
from ..frontends.tflite_writer import write_tflite
from ..frontends.torch_capture import from_torch
from ..frontends.torch_capture import input_layout as capture_layout
from ..frontends.torch_layout import Layout
from ..ir import Graph
from ..outdir import write_file_atomically
from ..pipeline import MemoryReport, analyze
from ..quant.ptq import ObserverChoice, quantize

__all__ = ["Quantized", "check_calibration", "example_inputs", "exported_module", "input_layout",
           "load_calibration", "load_exported", "quantize_exported", "to_ir_layout", "user_input_nodes", "write_atomic"]


@dataclass(frozen=True)
class Quantized:
    graph: Graph  # int8, inputs and outputs int8
    tflite: bytes
    report: MemoryReport
    samples: int  # calibration samples used


# ---------------------------------------------------------------- loading


def load_exported(path: str | os.PathLike) -> ExportedProgram:
    """A program saved with torch.export.save; ModelError if the file is missing or is not one."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: {'is a folder, not a file' if path.is_dir() else 'no such file'}")
    hint = "save the model with torch.export.save(torch.export.export(model.eval(), (x,)), path)"
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a torch.export program (not a .pt2 archive); {hint}")
    quiet = logging.getLogger("torch.export")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # torch logs a traceback before raising; the one line below says it
    try:
        return torch.export.load(path)
    except Exception as e:  # torch raises many kinds for a file that is not a saved program
        cause = _root_cause(e)
        detail = "" if "warnings above" in cause else f" ({cause})"  # torch logged the real error, now muted
        raise ModelError(f"{path}: cannot load it as a torch.export program of torch {torch.__version__}{detail}; "
                         f"{hint}") from None
    finally:
        quiet.setLevel(level)


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def user_input_nodes(program: ExportedProgram) -> list[torch.fx.Node]:
    names = set(program.graph_signature.user_inputs)
    return [n for n in program.graph.nodes if n.op == "placeholder" and n.name in names]


def example_inputs(program: ExportedProgram) -> tuple[torch.Tensor, ...]:
    """Zero tensors of the shapes the program was exported with."""
    out = []
    for node in user_input_nodes(program):
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            raise ModelError(f"model input '{node.name}' is not a tensor; only tensor inputs are supported")
        out.append(torch.zeros(tuple(int(d) for d in val.shape), dtype=val.dtype))
    return tuple(out)


def exported_module(program: ExportedProgram) -> torch.nn.Module:
    """The program as an nn.Module that from_torch can capture (it switches modules to eval mode, which
    `ExportedProgram.module()` refuses; the exported graph is fixed, so the switch changes nothing)."""
    module = program.module()
    for refused in ("train", "eval"):
        if refused in vars(module):
            delattr(module, refused)
    return module


# ---------------------------------------------------------------- layouts


def input_layout(node: torch.fx.Node, ir_shape: tuple[int, ...]) -> Layout:
    """How from_torch lays out the program's input `node` as an IR tensor of `ir_shape`: channels-last for
    images and for [N, C, L] signals (an input a Conv1d, BatchNorm1d or 1-D pool reads), else torch's order."""
    shape = tuple(int(d) for d in node.meta["val"].shape)
    layout = capture_layout(node)
    if layout.ir_shape[1:] != tuple(ir_shape[1:]):
        raise ModelError(f"input '{node.name}': the captured IR input {list(ir_shape)} is not the expected "
                         f"layout of the torch input {list(shape)}")
    return layout


def to_ir_layout(x: np.ndarray, layout: Layout) -> np.ndarray:
    """A batch-first array in torch's layout -> the same samples in the IR's layout (float32)."""
    x = np.asarray(x, np.float32)
    n = len(x)
    view = x.reshape((n, *layout.view[1:])).transpose(layout.perm)
    return np.ascontiguousarray(view.reshape((n, *layout.ir_shape[1:])))


def load_calibration(path: str | os.PathLike) -> np.ndarray:
    """The calibration array from a .npy file (float, batch first)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: {'is a folder, not a file' if path.is_dir() else 'no such file'}")
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot read it as .npy: {e}") from None
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ModelError(f"{path}: calibration data must be numbers, got dtype {x.dtype}")
    return x


def check_calibration(x: np.ndarray, node: torch.fx.Node) -> None:
    """ModelError unless x is [N >= 1, *sample shape of the program's input `node`] of finite numbers."""
    sample = tuple(int(d) for d in node.meta["val"].shape[1:])
    if x.ndim != len(sample) + 1 or tuple(x.shape[1:]) != sample or len(x) == 0:
        raise ModelError(f"calibration data of shape {list(x.shape)} does not fit the model: expected "
                         f"[N, {', '.join(map(str, sample))}] (the torch model's own layout, batch first, N >= 1)")
    if not np.all(np.isfinite(x)):
        raise ModelError("calibration data holds NaN or infinity")


# ---------------------------------------------------------------- quantize and write


def quantize_exported(model_path: str | os.PathLike, calibration_path: str | os.PathLike, *,
                      observer: ObserverChoice = "minmax", progress: bool = False) -> Quantized:
    """Load a saved torch.export program, capture it, calibrate on the .npy data, quantize to int8."""
    program = load_exported(model_path)
    examples = example_inputs(program)
    if len(examples) != 1:
        raise ModelError(f"{model_path}: the model takes {len(examples)} inputs; quantize supports one")
    node = user_input_nodes(program)[0]
    x = load_calibration(calibration_path)
    check_calibration(x, node)
    float_graph = replace(from_torch(exported_module(program), examples), name=Path(model_path).stem)
    calibration = to_ir_layout(x, input_layout(node, float_graph[float_graph.inputs[0]].shape))
    graph = quantize(float_graph, calibration, observer=observer, progress=progress)
    return Quantized(graph, write_tflite(graph), analyze(graph), len(calibration))


def write_atomic(data: bytes, path: str | os.PathLike) -> Path:
    """Writes `data` to a temporary file beside `path` and renames it: never a half-written file (ordinary
    permissions: the umask applies; missing parent folders are made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_file_atomically(path, lambda f: f.write(data))
