"""Where the fields of a .tflite flatbuffer lie: absolute byte positions for in-place mutation.

The positions come from the `tflite` package's own accessors (a table's `_tab.Pos` plus
`_tab.Offset(slot)`, a vector's `_tab.Vector(o)`), so a mutation can overwrite exactly one field with
struct.pack_into and leave the rest of the file intact. Only fields present in the file have a
position (flatbuffers leave out fields that hold their default value).
"""
from __future__ import annotations

import inspect
import re
import struct
from dataclasses import dataclass
from functools import lru_cache

import tflite

# flatbuffers number type -> struct format (little endian)
_FORMATS = {"Bool": "<?", "Int8": "<b", "Uint8": "<B", "Int16": "<h", "Uint16": "<H", "Int32": "<i",
            "Uint32": "<I", "Int64": "<q", "Uint64": "<Q", "Float32": "<f", "Float64": "<d"}
_SCALAR = re.compile(r"def (\w+)\(self\):\s+o = flatbuffers\.number_types\.UOffsetTFlags\.py_type\("
                     r"self\._tab\.Offset\((\d+)\)\)\s+if o != 0:\s+return (?:bool\()?self\._tab\.Get\("
                     r"flatbuffers\.number_types\.(\w+)Flags, o \+ self\._tab\.Pos\)")
_VECTOR = re.compile(r"def (\w+)\(self, j\):\s+o = flatbuffers\.number_types\.UOffsetTFlags\.py_type\("
                     r"self\._tab\.Offset\((\d+)\)\)\s+if o != 0:\s+a = self\._tab\.Vector\(o\)\s+"
                     r"return self\._tab\.Get\(flatbuffers\.number_types\.(\w+)Flags")

# vtable slots of the tables the mutations touch (schema.fbs field index i -> slot 4 + 2 i)
_SUB_TENSORS, _SUB_INPUTS, _SUB_OUTPUTS, _SUB_OPERATORS = 4, 6, 8, 10
_OP_OPCODE, _OP_INPUTS, _OP_OUTPUTS, _OP_OPTIONS_TYPE = 4, 6, 8, 10
_T_SHAPE, _T_TYPE, _T_BUFFER = 4, 6, 8
_Q_SCALE, _Q_ZERO_POINT, _Q_DIM = 8, 10, 16
_CODE_DEPRECATED, _CODE_BUILTIN = 4, 10
_MODEL_CODES, _MODEL_BUFFERS = 6, 12


@dataclass(frozen=True)
class Site:
    """One field of the file: where it is, how it is stored, what it means."""

    pos: int
    fmt: str  # struct format, e.g. "<i"
    kind: str  # graph_io, op_io, opcode_index, options_type, option, shape, type, buffer, scale,
    #           zero_point, quant_dim, builtin_code, deprecated_code, vec_len (a vector's length)
    label: str  # e.g. "op 3 inputs[1]"
    limit: int = 0  # a count the value indexes into (tensors, buffers, codes), for off-by-one values

    def read(self, data: bytes | bytearray) -> int | float | bool:
        return struct.unpack_from(self.fmt, data, self.pos)[0]


@dataclass(frozen=True)
class OpSlot:
    """An entry of the subgraph's operators vector: the entry's position and the table it points at."""

    entry: int
    target: int


@dataclass(frozen=True)
class Layout:
    sites: tuple[Site, ...]
    op_slots: tuple[OpSlot, ...]
    n_tensors: int
    n_ops: int


@lru_cache(maxsize=None)
def option_fields(table: str) -> tuple[tuple[str, int, str, bool], ...]:
    """(field name, vtable slot, struct format, is a vector) of every numeric field of an options table,
    read from the generated accessor's source."""
    cls = getattr(tflite, table, None)
    if cls is None:
        return ()
    src = inspect.getsource(cls)
    fields = [(m[0], int(m[1]), _FORMATS[m[2]], False) for m in _SCALAR.findall(src) if m[2] in _FORMATS]
    fields += [(m[0], int(m[1]), _FORMATS[m[2]], True) for m in _VECTOR.findall(src) if m[2] in _FORMATS]
    return tuple(fields)


@lru_cache(maxsize=None)
def _options_names() -> dict[int, str]:
    return {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and isinstance(v, int)}


def _field(tab, slot: int) -> int | None:
    o = tab.Offset(slot)
    return tab.Pos + o if o else None


def _vector(tab, slot: int, size: int = 4) -> tuple[int, int] | None:
    """(start, length) of a vector field; ValueError if it runs past the end of the buffer."""
    o = tab.Offset(slot)
    if not o:
        return None
    start, n = tab.Vector(o), tab.VectorLen(o)
    if start < 0 or start + n * size > len(tab.Bytes):
        raise ValueError(f"vector at {start} of {n} x {size} bytes runs past the end of the file")
    return start, n


def _entries(tab, slot: int, fmt: str, kind: str, label: str, limit: int = 0) -> list[Site]:
    size = struct.calcsize(fmt)
    vec = _vector(tab, slot, size)
    if vec is None:
        return []
    start, n = vec
    length = Site(start - 4, "<I", "vec_len", f"{label} length")
    return [length] + [Site(start + j * size, fmt, kind, f"{label}[{j}]", limit) for j in range(n)]


def _scalar(tab, slot: int, fmt: str, kind: str, label: str, limit: int = 0) -> list[Site]:
    pos = _field(tab, slot)
    return [] if pos is None else [Site(pos, fmt, kind, label, limit)]


def _tensor_sites(t, i: int, n_buffers: int) -> list[Site]:
    tab = t._tab
    sites = _entries(tab, _T_SHAPE, "<i", "shape", f"tensor {i} shape")
    sites += _scalar(tab, _T_TYPE, "<b", "type", f"tensor {i} type")
    sites += _scalar(tab, _T_BUFFER, "<I", "buffer", f"tensor {i} buffer", n_buffers)
    q = t.Quantization()
    if q is not None:
        sites += _entries(q._tab, _Q_SCALE, "<f", "scale", f"tensor {i} scale")
        sites += _entries(q._tab, _Q_ZERO_POINT, "<q", "zero_point", f"tensor {i} zero_point")
        sites += _scalar(q._tab, _Q_DIM, "<i", "quant_dim", f"tensor {i} quantized_dimension")
    return sites


def _operator_sites(op, i: int, n_tensors: int, n_codes: int) -> list[Site]:
    tab = op._tab
    sites = _scalar(tab, _OP_OPCODE, "<I", "opcode_index", f"op {i} opcode_index", n_codes)
    sites += _entries(tab, _OP_INPUTS, "<i", "op_io", f"op {i} inputs", n_tensors)
    sites += _entries(tab, _OP_OUTPUTS, "<i", "op_io", f"op {i} outputs", n_tensors)
    sites += _scalar(tab, _OP_OPTIONS_TYPE, "<B", "options_type", f"op {i} builtin_options_type")
    table = _options_names().get(op.BuiltinOptionsType())
    opts = op.BuiltinOptions()
    if table and opts is not None:
        otab = opts  # a flatbuffers.table.Table
        for name, slot, fmt, is_vector in option_fields(table):
            label = f"op {i} {table}.{name}"
            sites += (_entries(otab, slot, fmt, "option", label) if is_vector
                      else _scalar(otab, slot, fmt, "option", label))
    return sites


def layout(data: bytes) -> Layout:
    """The mutable fields of the first subgraph (and the operator codes) of a .tflite file.

    Raises whatever the accessors raise on a file too broken to walk."""
    model = tflite.Model.GetRootAs(data, 0)
    sub = model.Subgraphs(0)
    for tab, slot in ((sub._tab, _SUB_TENSORS), (sub._tab, _SUB_OPERATORS), (model._tab, _MODEL_CODES),
                      (model._tab, _MODEL_BUFFERS)):
        _vector(tab, slot)  # raises on a vector longer than the file
    n_tensors, n_ops, n_codes, n_buffers = (sub.TensorsLength(), sub.OperatorsLength(),
                                            model.OperatorCodesLength(), model.BuffersLength())
    sites = _entries(sub._tab, _SUB_INPUTS, "<i", "graph_io", "graph inputs", n_tensors)
    sites += _entries(sub._tab, _SUB_OUTPUTS, "<i", "graph_io", "graph outputs", n_tensors)
    for i in range(n_tensors):
        sites += _tensor_sites(sub.Tensors(i), i, n_buffers)
    for i in range(n_ops):
        sites += _operator_sites(sub.Operators(i), i, n_tensors, n_codes)
    for i in range(n_codes):
        tab = model.OperatorCodes(i)._tab
        sites += _scalar(tab, _CODE_DEPRECATED, "<b", "deprecated_code", f"opcode {i} deprecated_builtin_code")
        sites += _scalar(tab, _CODE_BUILTIN, "<i", "builtin_code", f"opcode {i} builtin_code")
    slots = ()
    vec = _vector(sub._tab, _SUB_OPERATORS)
    if vec is not None:
        start, n = vec
        slots = tuple(OpSlot(start + 4 * j, start + 4 * j + struct.unpack_from("<I", data, start + 4 * j)[0])
                      for j in range(n))
    return Layout(tuple(sites), slots, n_tensors, n_ops)


def data_ranges(data: bytes, min_len: int = 64) -> list[tuple[int, int]]:
    """(start, end) of the constant buffers of at least `min_len` bytes (weights), sorted."""
    try:
        model = tflite.Model.GetRootAs(data, 0)
        out = []
        for i in range(model.BuffersLength()):
            buf = model.Buffers(i)
            o = buf._tab.Offset(4)
            if o and buf._tab.VectorLen(o) >= min_len:
                start = buf._tab.Vector(o)
                out.append((start, start + buf._tab.VectorLen(o)))
        return sorted(out)
    except Exception:
        return []
