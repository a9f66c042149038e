"""Write a canonical IR graph as a `.tflite` flatbuffer (schema version 3) that TFLite and TFLM run.

Convolution weights in the int4 format (ir/formats.py) are written as TFLite INT4 tensors (packed two per
byte, low nibble first), which TFLM runs; every other tensor keeps its type.

The IR keeps explicit pads and moves constant operands (shapes, axes, perms ...) into attrs; each
operator's writer (Operator.write) maps both back with the helpers here: pads become SAME/VALID when they
equal what TFLite would compute (else an explicit PAD before a VALID op), and attrs become constant int32
tensors next to the options tables.
Op versions are informative: TFLM's op resolver does not check them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import flatbuffers
import numpy as np
import tflite

from ..errors import ModelError
from ..ir import Graph, Op, QuantParams, Tensor
from ..ir.formats import pack_int4

_TYPES = {"float32": tflite.TensorType.FLOAT32, "int32": tflite.TensorType.INT32,
          "uint8": tflite.TensorType.UINT8, "int64": tflite.TensorType.INT64,
          "bool": tflite.TensorType.BOOL, "int16": tflite.TensorType.INT16, "int8": tflite.TensorType.INT8,
          "int4": tflite.TensorType.INT4}
# Where weights in the int4 format are written as TFLite INT4 tensors: the kernels of the pip tflite-micro
# that take them (its FULLY_CONNECTED refuses an INT4 filter with int8 input, so those stay INT8).
INT4_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})
ACTIVATION_CODES = {"NONE": tflite.ActivationFunctionType.NONE, "RELU": tflite.ActivationFunctionType.RELU,
                "RELU_N1_TO_1": tflite.ActivationFunctionType.RELU_N1_TO_1,
                "RELU6": tflite.ActivationFunctionType.RELU6}
_SAME, _VALID = tflite.Padding.SAME, tflite.Padding.VALID
# builtin operator -> version written (the int8 version of each op in TFLite's op_version.cc; Operator.version)
VERSIONS: dict[str, int] = {}

Options = tuple[str, dict[str, Any]] | None  # (options table name, {field: value}); list values are vectors


@dataclass
class _TensorRecord:
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: QuantParams | None = None
    data: bytes | None = None
    variable: bool = False


@dataclass
class _OpRecord:
    kind: str  # TFLite builtin operator name
    inputs: list[int]
    outputs: list[int]
    options: Options = None
    version: int = 1


@dataclass
class _Lowering:
    """Accumulates TFLite tensors and operators for one graph."""

    graph: Graph
    packed: frozenset[str] = frozenset()  # weight tensors written as INT4
    tensors: list[_TensorRecord] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    ops: list[_OpRecord] = field(default_factory=list)

    def tensor(self, name: str) -> int:
        """Index of an IR tensor ("" -> -1, TFLite's absent optional operand)."""
        if not name:
            return -1
        if name not in self.index:
            t: Tensor = self.graph[name]
            if name in self.packed:
                self._add(_TensorRecord(name, tuple(t.shape), "int4", t.quant, pack_int4(t.data).tobytes()))
                return self.index[name]
            data = None if t.data is None else np.ascontiguousarray(t.data, t.dtype).tobytes()
            self._add(_TensorRecord(name, tuple(t.shape), t.dtype, t.quant, data, t.variable))
        return self.index[name]

    def extra(self, hint: str, shape: Sequence[int], dtype: str, quant: QuantParams | None = None,
              data: np.ndarray | None = None) -> int:
        """A tensor the IR does not have (a constant operand, a PAD output); named uniquely after `hint`."""
        name, n = hint, 1
        while name in self.index or name in self.graph.tensors:
            name, n = f"{hint}_{n}", n + 1
        raw = None if data is None else np.ascontiguousarray(data, dtype).tobytes()
        return self._add(_TensorRecord(name, tuple(int(d) for d in shape), dtype, quant, raw))

    def const_i32(self, hint: str, values: Sequence[Any], shape: Sequence[int] | None = None) -> int:
        arr = np.asarray(values, np.int32)
        return self.extra(hint, arr.shape if shape is None else shape, "int32", data=arr)

    def emit(self, kind: str, inputs: Sequence[int], outputs: Sequence[int], options: Options = None,
             version: int | None = None) -> None:
        self.ops.append(_OpRecord(kind, list(inputs), list(outputs), options,
                                  version or VERSIONS.get(kind, 1)))

    def _add(self, record: _TensorRecord) -> int:
        self.index[record.name] = len(self.tensors)
        self.tensors.append(record)
        return self.index[record.name]


# ---------------------------------------------------------------- padding


def _same_pads(in_size: int, out_size: int, stride: int, kernel: int, dilation: int) -> tuple[int, int]:
    total = max((out_size - 1) * stride + (kernel - 1) * dilation + 1 - in_size, 0)
    return total // 2, total - total // 2


def _padding_code(in_hw: Sequence[int], out_hw: Sequence[int], kernel: Sequence[int],
                  stride: Sequence[int], dilation: Sequence[int], pad: Sequence[int]) -> int | None:
    """TFLite's Padding for explicit (top, bottom, left, right) pads, or None if neither fits."""
    pad = tuple(int(p) for p in pad)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    valid_out = [(i - e) // s + 1 for i, e, s in zip(in_hw, eff, stride)]
    if pad == (0, 0, 0, 0) and list(out_hw) == valid_out:
        return _VALID
    same_out = [-(-i // s) for i, s in zip(in_hw, stride)]
    same = [_same_pads(*args) for args in zip(in_hw, out_hw, stride, kernel, dilation)]
    if list(out_hw) == same_out and pad == (*same[0], *same[1]):
        return _SAME
    return None


def _padded_input(low: _Lowering, op: Op, pad: Sequence[int], fill: int | None = None) -> int:
    """Emit PAD (or PADV2 with `fill`) of the NHWC input by (top, bottom, left, right); its output index."""
    src = low.graph[op.inputs[0]]
    t, b, l, r = (int(p) for p in pad)
    n, h, w, c = src.shape
    pads = low.const_i32(f"{op.name}/pad_amounts", [[0, 0], [t, b], [l, r], [0, 0]])
    out = low.extra(f"{op.name}/padded", (n, h + t + b, w + l + r, c), src.dtype, src.quant)
    if fill is None:
        low.emit("PAD", [low.tensor(src.name), pads], [out], ("PadOptions", {}))
    else:
        value = low.extra(f"{op.name}/pad_value", (), src.dtype, src.quant, np.array(fill))
        low.emit("PADV2", [low.tensor(src.name), pads, value], [out], ("PadV2Options", {}))
    return out


# ---------------------------------------------------------------- op lowerings


def window_op(low: _Lowering, op: Op, kernel: Sequence[int], dilation: Sequence[int]) -> tuple[int, int]:
    """(input index, Padding) for a windowed op, emitting a PAD first when the pads are not SAME/VALID."""
    src, dst = low.graph[op.inputs[0]], low.graph[op.outputs[0]]
    pad = op.attrs["pad"]
    code = _padding_code(src.shape[1:3], dst.shape[1:3], kernel, op.attrs["stride"], dilation, pad)
    if code is not None:
        return low.tensor(src.name), code
    if op.kind == "AVERAGE_POOL_2D":
        raise ModelError(f"{op.name}: AVERAGE_POOL_2D pads {tuple(pad)} are neither SAME nor VALID; "
                         "TFLite cannot express them (its average excludes padding)")
    fill = -128 if op.kind == "MAX_POOL_2D" else None  # max pool ignores padding: pad with the minimum
    return _padded_input(low, op, pad, fill), _VALID


# kind -> how it is written (Operator.write, mcuforge.operators.<op>); filled by install()
LOWERINGS: dict[str, Callable[[_Lowering, Op], None]] = {}


# ---------------------------------------------------------------- flatbuffer serialisation


def _vector(b: flatbuffers.Builder, values: Sequence[Any] | np.ndarray, dtype: str) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype).reshape(-1))


def _offsets(b: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _table(b: flatbuffers.Builder, name: str, fields: dict[str, Any]) -> int:
    vectors = {k: _vector(b, v, "int32") for k, v in fields.items() if isinstance(v, (list, tuple))}
    getattr(tflite, f"{name}Start")(b)
    for key, value in fields.items():
        getattr(tflite, f"{name}Add{key}")(b, vectors.get(key, value))
    return getattr(tflite, f"{name}End")(b)


def _buffer(b: flatbuffers.Builder, data: bytes | None) -> int:
    content = None
    if data:
        b.StartVector(1, len(data), 16)  # 16-byte aligned, as the TFLite converter writes constants
        b.head -= len(data)
        b.Bytes[b.head:b.head + len(data)] = data
        b.vectorNumElems = len(data)
        content = b.EndVector()
    tflite.BufferStart(b)
    if content is not None:
        tflite.BufferAddData(b, content)
    return tflite.BufferEnd(b)


def _quantization(b: flatbuffers.Builder, q: QuantParams) -> int:
    scale = _vector(b, q.scale, "float32")
    zero_point = _vector(b, q.zero_point, "int64")
    tflite.QuantizationParametersStart(b)
    tflite.QuantizationParametersAddScale(b, scale)
    tflite.QuantizationParametersAddZeroPoint(b, zero_point)
    tflite.QuantizationParametersAddQuantizedDimension(b, int(q.axis or 0))
    return tflite.QuantizationParametersEnd(b)


def _tensor(b: flatbuffers.Builder, t: _TensorRecord, buffer: int) -> int:
    name = b.CreateString(t.name)
    shape = _vector(b, t.shape, "int32")
    quant = _quantization(b, t.quant) if t.quant is not None else None
    tflite.TensorStart(b)
    tflite.TensorAddShape(b, shape)
    tflite.TensorAddType(b, _TYPES[t.dtype])
    tflite.TensorAddBuffer(b, buffer)
    tflite.TensorAddName(b, name)
    if quant is not None:
        tflite.TensorAddQuantization(b, quant)
    if t.variable:
        tflite.TensorAddIsVariable(b, True)
    return tflite.TensorEnd(b)


def _operator(b: flatbuffers.Builder, op: _OpRecord, opcode_index: int) -> int:
    inputs, outputs = _vector(b, op.inputs, "int32"), _vector(b, op.outputs, "int32")
    options = _table(b, op.options[0], op.options[1]) if op.options else None
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, opcode_index)
    tflite.OperatorAddInputs(b, inputs)
    tflite.OperatorAddOutputs(b, outputs)
    if options is not None:
        tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, op.options[0]))
        tflite.OperatorAddBuiltinOptions(b, options)
    return tflite.OperatorEnd(b)


def _operator_code(b: flatbuffers.Builder, kind: str, version: int) -> int:
    code = getattr(tflite.BuiltinOperator, kind)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
    tflite.OperatorCodeAddBuiltinCode(b, code)
    tflite.OperatorCodeAddVersion(b, version)
    return tflite.OperatorCodeEnd(b)


def _serialise(low: _Lowering, graph: Graph) -> bytes:
    b = flatbuffers.Builder(1024)
    buffers = [_buffer(b, None)]  # buffer 0: the empty sentinel every activation points at
    tensors = []
    for t in low.tensors:
        index = 0
        if t.data is not None:
            index = len(buffers)
            buffers.append(_buffer(b, t.data))
        tensors.append(_tensor(b, t, index))
    codes: dict[tuple[str, int], int] = {}
    operators = [_operator(b, op, codes.setdefault((op.kind, op.version), len(codes))) for op in low.ops]
    name = b.CreateString(graph.name)
    vectors = [_offsets(b, tensors), _vector(b, [low.index[n] for n in graph.inputs], "int32"),
               _vector(b, [low.index[n] for n in graph.outputs], "int32"), _offsets(b, operators)]
    tflite.SubGraphStart(b)
    for add, vec in zip((tflite.SubGraphAddTensors, tflite.SubGraphAddInputs, tflite.SubGraphAddOutputs,
                         tflite.SubGraphAddOperators), vectors):
        add(b, vec)
    tflite.SubGraphAddName(b, name)
    subgraph = tflite.SubGraphEnd(b)
    opcodes = _offsets(b, [_operator_code(b, kind, version) for kind, version in codes])
    subgraphs, buffer_vec = _offsets(b, [subgraph]), _offsets(b, buffers)
    description = b.CreateString("mcuforge")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, opcodes)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, buffer_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def write_tflite(graph: Graph) -> bytes:
    """Serialise a canonical IR graph as a TFLite flatbuffer."""
    from ..operators import install

    install()
    packed = frozenset(op.inputs[1] for op in graph.ops
                       if op.kind in INT4_KINDS and graph[op.inputs[1]].format == "int4" and graph[op.inputs[1]].is_const)
    low = _Lowering(graph, packed)
    for name in graph.inputs:
        low.tensor(name)
    for op in graph.ops:
        lower = LOWERINGS.get(op.kind)
        if lower is None:
            raise ModelError(f"{op.name}: the tflite writer has no mapping for op kind {op.kind}")
        lower(low, op)
    for name in graph.outputs:
        low.tensor(name)
    return _serialise(low, graph)
