"""The float model that `mcuforge validate` holds the int8 C against: a float `.tflite` run in TFLM (pip
tflite-micro), or a torch.export program (`.pt2`) run in PyTorch.

    ref = load_float_model("model_float.tflite")      # or "model.pt2"
    ref.sample_shape                                    # one sample's input shape (no batch axis)
    outs = ref.run(x, advance)                          # x: [N, *sample_shape] -> one [N, ...] array per output

A float `.tflite` whose weights are int8 (a 'hybrid', dynamic-range model, such as MLPerf Tiny's KWS
float32 reference: TFLM has no kernels for it) runs with those weights dequantized, w = scale * (q - zero
point) per channel: the float network the int8 weights stand for. (TFLite's own hybrid kernels also quantize
the activations on the fly, so they differ from it a little.)
"""
from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError, shown

TFLM_ARENA_BYTES = 16 << 20
TORCH_CHUNK = 64  # samples per call of a program exported with a free batch size
_TENSOR_TYPE_SLOT, _BUFFER_DATA_SLOT = 6, 4  # vtable slots in schema.fbs: Tensor.type, Buffer.data

Advance = Callable[[int], None]  # told how many samples are done since the last call


def tflm_runtime():
    """The tflite_micro runtime module; UsageError naming the package when it is not installed."""
    try:
        from tflite_micro import runtime
    except ImportError:
        raise UsageError("validate runs TFLM as the oracle and needs tflite-micro, which is not installed: "
                         "pip install tflite-micro") from None
    return runtime


@contextmanager
def _captured_native_output() -> Iterator[list[str]]:
    """Sends what native code writes to stdout/stderr (TFLM logs its errors there) into a list of lines
    instead of the terminal, so a refusal stays one line of ours."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    lines: list[str] = []
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            lines.extend(line.strip() for line in sink.read().decode("utf-8", "replace").splitlines() if line.strip())


def tflm_interpreter(data: bytes, what: str):
    """A TFLM interpreter of a .tflite held in `data`; UsageError with TFLM's own reason when it refuses."""
    runtime = tflm_runtime()
    try:
        with _captured_native_output() as log:
            return runtime.Interpreter.from_bytes(data, arena_size=TFLM_ARENA_BYTES)
    except (RuntimeError, ValueError) as e:
        reason = log[0] if log else str(e)
        raise UsageError(f"{what}: TFLM cannot run it ({shown(reason, 100)})") from None


# ---------------------------------------------------------------- float .tflite


def _tflite_model(data: bytes, what: str):
    import tflite

    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        model.Subgraphs(0).Tensors(0)
    except Exception:  # the generated accessors raise many kinds on a file that is not a flatbuffer
        raise UsageError(f"{what} is not a readable .tflite model (empty, truncated or another format)") from None
    return model


def _hybrid_weights(model) -> list[int]:
    """Tensors that are constant int8 weights read by an op computing float32 (not a DEQUANTIZE)."""
    import tflite

    sub = model.Subgraphs(0)
    found: set[int] = set()
    for k in range(sub.OperatorsLength()):
        op = sub.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        outs = [i for i in op.OutputsAsNumpy() if i >= 0]
        if kind == tflite.BuiltinOperator.DEQUANTIZE or not outs:
            continue
        if sub.Tensors(int(outs[0])).Type() != tflite.TensorType.FLOAT32:
            continue
        for i in op.InputsAsNumpy():
            t = sub.Tensors(int(i)) if i >= 0 else None
            if t is not None and t.Type() == tflite.TensorType.INT8 and model.Buffers(t.Buffer()).DataLength():
                found.add(int(i))
    return sorted(found)


def dequantized_weights(data: bytes) -> bytes:
    """The .tflite with its hybrid weights (see _hybrid_weights) stored as float32: each tensor's type byte
    is set to FLOAT32 and its buffer's data offset points at the dequantized values, appended at the end of
    the file (16-byte aligned); the rest of the file is left as it is."""
    model = _tflite_model(data, "the float model")
    out = bytearray(data)
    sub = model.Subgraphs(0)
    for i in _hybrid_weights(model):
        t = sub.Tensors(i)
        q = t.Quantization()
        scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else np.ones(1, np.float32)
        zero = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else np.zeros(1, np.int64)
        buf = model.Buffers(t.Buffer())
        codes = buf.DataAsNumpy().view(np.int8).astype(np.float32).reshape(t.ShapeAsNumpy())
        axis_shape = [1] * codes.ndim
        if scale.size > 1:
            axis_shape[q.QuantizedDimension()] = -1
        values = (codes - zero.reshape(axis_shape).astype(np.float32)) * scale.reshape(axis_shape).astype(np.float32)
        out[t._tab.Pos + t._tab.Offset(_TENSOR_TYPE_SLOT)] = 0  # TensorType.FLOAT32
        field = buf._tab.Pos + buf._tab.Offset(_BUFFER_DATA_SLOT)
        out += bytes(-(len(out) + 4) % 16)
        vector = len(out)
        payload = values.astype("<f4").tobytes()
        out += struct.pack("<I", len(payload)) + payload
        struct.pack_into("<I", out, field, vector - field)  # a forward offset, as flatbuffers require
    return bytes(out)


def _io_specs(model, which: str) -> list[tuple[tuple[int, ...], int]]:
    sub = model.Subgraphs(0)
    indices = sub.InputsAsNumpy() if which == "inputs" else sub.OutputsAsNumpy()
    return [(tuple(int(d) for d in sub.Tensors(int(i)).ShapeAsNumpy()), sub.Tensors(int(i)).Type()) for i in indices]


def batchless(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One sample's shape: a .tflite shape without its leading batch axis of 1."""
    return tuple(shape[1:]) if len(shape) >= 2 and shape[0] == 1 else tuple(shape)


@dataclass
class FloatModel:
    """A float model, run one sample (TFLM) or one batch (PyTorch) at a time."""

    path: str
    kind: str  # "tflite" or "torch"
    sample_shape: tuple[int, ...]  # one sample's input as the model takes it, without the batch axis
    _run: Callable[[np.ndarray, Advance], list[np.ndarray]]

    def run(self, x: np.ndarray, advance: Advance = lambda n: None) -> list[np.ndarray]:
        """x: [N, *sample_shape] float32 -> each output as [N, *one sample's output shape (no batch axis)]."""
        return self._run(np.ascontiguousarray(x, np.float32), advance)


def _load_tflite(path: Path, what: str) -> FloatModel:
    import tflite

    data = path.read_bytes()
    model = _tflite_model(data, what)
    inputs, outputs = _io_specs(model, "inputs"), _io_specs(model, "outputs")
    if len(inputs) != 1:
        raise UsageError(f"{what} takes {len(inputs)} inputs; validate compares models with one input")
    if inputs[0][1] != tflite.TensorType.FLOAT32:
        raise UsageError(f"{what} is not a float model (its input is not float32): give the float32 model "
                         "the int8 one was made from")
    if _hybrid_weights(model):
        data = dequantized_weights(data)
    interpreter = tflm_interpreter(data, what)
    shape = inputs[0][0]

    def run(x: np.ndarray, advance: Advance) -> list[np.ndarray]:
        got: list[list[np.ndarray]] = [[] for _ in outputs]
        for sample in x:
            interpreter.set_input(sample.reshape(shape), 0)
            interpreter.invoke()
            for j, (out_shape, _) in enumerate(outputs):
                got[j].append(np.array(interpreter.get_output(j), np.float32).reshape(batchless(out_shape)))
            advance(1)
        return [np.stack(g) for g in got]

    return FloatModel(str(path), "tflite", batchless(shape), run)


# ---------------------------------------------------------------- torch.export program


def _load_torch(path: Path, what: str) -> FloatModel:
    try:
        import torch

        from .pipeline import load_exported, user_input_nodes
    except ImportError as e:
        if (e.name or "").split(".")[0] != "torch":
            raise
        raise UsageError(f"{what} is a torch.export program and needs PyTorch, which is not installed: "
                         "pip install torch==2.13.0") from None
    program = load_exported(path)
    nodes = user_input_nodes(program)
    if len(nodes) != 1 or not isinstance(nodes[0].meta.get("val"), torch.Tensor):
        raise UsageError(f"{what} takes {len(nodes)} inputs; validate compares models with one tensor input")
    exported = nodes[0].meta["val"].shape
    batch = int(exported[0]) if len(exported) and isinstance(exported[0], int) else None
    sample_shape = tuple(int(d) for d in exported[1:])
    module = program.module()

    def run(x: np.ndarray, advance: Advance) -> list[np.ndarray]:
        step = batch or TORCH_CHUNK
        got: list[list[np.ndarray]] = []
        for start in range(0, len(x), step):
            chunk = x[start:start + step]
            n = len(chunk)
            if batch is not None and n < batch:  # the program takes exactly `batch` samples: pad, then drop
                chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
            with torch.no_grad():
                result = module(torch.from_numpy(chunk))
            tensors = list(result) if isinstance(result, (tuple, list)) else [result]
            arrays = [t.detach().float().numpy()[:n] for t in tensors]
            got = got or [[] for _ in arrays]
            for j, a in enumerate(arrays):
                got[j].append(a)
            advance(n)
        return [np.concatenate(g) for g in got]

    return FloatModel(str(path), "torch", sample_shape, run)


def load_float_model(path: str | os.PathLike) -> FloatModel:
    """A float .tflite (run in TFLM) or torch.export program (.pt2); UsageError if it is neither."""
    given = os.fspath(path)
    p = Path(given)
    what = f"the float model {shown(given, 100)}"
    if p.is_dir():
        raise UsageError(f"{what} is a folder, not a file")
    if not p.is_file():
        raise UsageError(f"{what}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".tflite":
        return _load_tflite(p, what)
    if suffix == ".pt2":
        return _load_torch(p, what)
    raise UsageError(f"{what}: unknown format {shown(p.suffix)} (expected a float .tflite or a torch.export .pt2)")
