"""Read a `.tflite` flatbuffer into the canonical IR, refusing what the engine cannot run.

Every failure, from a truncated file to an unsupported operator, is a ModelError whose message names the
operator or tensor and says what to do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..ir import Graph, Op, QuantParams, Tensor
from ..ir.passes import fold_pads, validate
from .tflite_ops import BUILTIN_NAMES, TFLITE_DTYPES, RawOp, to_canonical

_MAX_ELEMENTS = 1 << 28


def read_tflite_file(path: str | Path, name: str | None = None) -> Graph:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from None
    return read_tflite(data, name or path.stem)


def read_tflite(data: bytes, name: str = "model") -> Graph:
    """Parse, normalise and validate a TFLite model."""
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise ModelError(f"{name}: not a TFLite flatbuffer (missing 'TFL3' identifier; is the file truncated?)")
    try:
        graph = _parse(data, name)
    except ModelError:
        raise
    except Exception as e:  # a malformed flatbuffer fails anywhere inside the generated accessors
        raise ModelError(f"{name}: malformed .tflite file ({type(e).__name__}: {e}); "
                         "re-export the model with the TFLite converter") from None
    graph = fold_pads(graph)
    validate(graph)
    return graph


def _parse(data: bytes, name: str) -> Graph:
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError(f"{name}: the model has no subgraph")
    if model.SubgraphsLength() > 1:
        raise ModelError(f"{name}: {model.SubgraphsLength()} subgraphs (control flow) are not supported; "
                         "export a model with a single subgraph")
    sub = model.Subgraphs(0)
    n_tensors = sub.TensorsLength()
    names: list[str] = []
    tensors: dict[str, Tensor] = {}
    for i in range(n_tensors):
        t = _tensor(model, sub.Tensors(i), i, set(names))
        names.append(t.name)
        tensors[t.name] = t

    def tname(index: int, where: str) -> str:
        if index == -1:
            return ""
        if not 0 <= index < n_tensors:
            raise ModelError(f"{name}: {where} refers to tensor #{index}, but the model has {n_tensors}")
        return names[index]

    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        custom = oc.CustomCode()
        codes.append((code, custom.decode("utf-8", "replace") if custom else ""))
    ops: list[Op] = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        idx = op.OpcodeIndex()
        if not 0 <= idx < len(codes):
            raise ModelError(f"{name}: operator #{i} has opcode index {idx}, but the model has {len(codes)} codes")
        code, custom = codes[idx]
        kind = BUILTIN_NAMES.get(code, f"builtin #{code}")
        where = f"operator #{i} ({kind})"
        inputs = tuple(tname(op.Inputs(j), where) for j in range(op.InputsLength()))
        outputs = tuple(tname(op.Outputs(j), where) for j in range(op.OutputsLength()))
        if kind == "CUSTOM":
            raise ModelError(f"operator #{i}: custom operator '{custom}' (output '{outputs[0] if outputs else '?'}') "
                             "is not supported; custom ops (e.g. Vela/Ethos-U NPU code) need the vendor's runtime. "
                             "Compile the model from its original int8 .tflite instead")
        raw = RawOp(kind=kind, inputs=inputs, outputs=outputs, options=op.BuiltinOptions(),
                    options_type=op.BuiltinOptionsType(), index=i)
        ops.extend(to_canonical(raw, tensors))
    g_inputs = tuple(tname(sub.Inputs(j), "the subgraph inputs") for j in range(sub.InputsLength()))
    g_outputs = tuple(tname(sub.Outputs(j), "the subgraph outputs") for j in range(sub.OutputsLength()))
    if not g_inputs or not g_outputs:
        raise ModelError(f"{name}: the model declares no inputs or no outputs")
    return Graph(tensors=tensors, ops=tuple(ops), inputs=g_inputs, outputs=g_outputs, name=name)


def _tensor(model, t, index: int, taken: set[str]) -> Tensor:
    raw_name = t.Name()
    name = raw_name.decode("utf-8", "replace") if raw_name else f"tensor_{index}"
    if name in taken:
        name = f"{name}#{index}"
    ttype = t.Type()
    if ttype not in TFLITE_DTYPES:
        raise ModelError(f"tensor '{name}': element type #{ttype} is not supported (int8 models only)")
    dtype = TFLITE_DTYPES[ttype]
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    if any(d < 0 for d in shape):
        raise ModelError(f"tensor '{name}': dynamic or negative shape {list(shape)}; "
                         "give the model a fixed input shape before converting")
    if int(np.prod(shape, dtype=np.int64)) > _MAX_ELEMENTS:
        raise ModelError(f"tensor '{name}': shape {list(shape)} is implausibly large (corrupt file?)")
    if t.IsVariable():
        raise ModelError(f"tensor '{name}': variable tensors (stateful models) are not supported")
    if t.Sparsity() is not None:
        raise ModelError(f"tensor '{name}': sparse tensors are not supported; convert with dense weights")
    quant = _quant(t.Quantization(), name)
    data = None
    b = t.Buffer()
    if not 0 <= b < model.BuffersLength():
        raise ModelError(f"tensor '{name}': buffer #{b} does not exist")
    buf = model.Buffers(b)
    if buf is not None and buf.DataLength() > 0:
        raw = buf.DataAsNumpy().tobytes()
        expect = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if len(raw) != expect:
            raise ModelError(f"tensor '{name}': {len(raw)} bytes of data for shape {list(shape)} {dtype} "
                             f"({expect} expected)")
        data = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    elif buf is not None and buf.Offset() > 1:
        raise ModelError(f"tensor '{name}': weights stored outside the flatbuffer (models over 2 GB) "
                         "are not supported")
    return Tensor(name=name, shape=shape, dtype=dtype, quant=quant, data=data)


def _quant(q, name: str) -> QuantParams | None:
    if q is None or q.ScaleLength() == 0:
        return None
    scale = q.ScaleAsNumpy().astype(np.float32)
    zp = q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else np.zeros(scale.size, np.int64)
    if zp.size == 1 and scale.size > 1:
        zp = np.full(scale.size, zp[0], np.int64)
    if zp.size != scale.size:
        raise ModelError(f"tensor '{name}': {scale.size} scales but {zp.size} zero points")
    if not np.all(np.isfinite(scale)) or np.any(scale < 0):
        raise ModelError(f"tensor '{name}': invalid quantization scale {scale[:4].tolist()}")
    axis = int(q.QuantizedDimension()) if scale.size > 1 else None
    return QuantParams(scale=scale, zero_point=zp, axis=axis)
