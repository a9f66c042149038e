"""Bounds-check a `.tflite` flatbuffer before any accessor reads it.

The generated `tflite` accessors trust every offset: a truncated or corrupted file makes them read past the
end (Python's struct errors), or read a shorter slice than the vector claims without noticing. This pass
walks every table, vector and string the TFLite schema reaches from the root, as the FlatBuffers
verifier does, and refuses the file with one line naming the first thing that lies outside it. After it
passes, every accessor the reader calls stays inside the file.

The schema below lists, per table, the vtable slot of each field (4 + 2 * field index) and its kind:
a scalar's byte size, "string", ("vector", element bytes), ("tables", table) for a vector of tables,
("table", table), or "union" (a table of a type the schema does not list here: checked as a table).
"""
from __future__ import annotations

import struct

from ..errors import ModelError

Field = int | str | tuple[str, object]

SCHEMA: dict[str, dict[int, Field]] = {
    "Model": {4: 4, 6: ("tables", "OperatorCode"), 8: ("tables", "SubGraph"), 10: "string",
              12: ("tables", "Buffer"), 14: ("vector", 4), 16: ("tables", "Metadata"),
              18: ("tables", "SignatureDef")},
    "OperatorCode": {4: 1, 6: "string", 8: 4, 10: 4},
    "SubGraph": {4: ("tables", "Tensor"), 6: ("vector", 4), 8: ("vector", 4), 10: ("tables", "Operator"),
                 12: "string", 14: 4},
    "Tensor": {4: ("vector", 4), 6: 1, 8: 4, 10: "string", 12: ("table", "QuantizationParameters"), 14: 1,
               16: ("table", "SparsityParameters"), 18: ("vector", 4), 20: 1, 22: ("tables", "VariantSubType")},
    "QuantizationParameters": {4: ("vector", 4), 6: ("vector", 4), 8: ("vector", 4), 10: ("vector", 8), 12: 1,
                               14: "union", 16: 4},
    "SparsityParameters": {4: ("vector", 4), 6: ("vector", 4), 8: ("tables", "DimensionMetadata")},
    "DimensionMetadata": {4: 1, 6: 4, 8: 1, 10: "union", 12: 1, 14: "union"},
    "VariantSubType": {4: ("vector", 4), 6: 1, 8: 1},
    "Operator": {4: 4, 6: ("vector", 4), 8: ("vector", 4), 10: 1, 12: "union", 14: ("vector", 1), 16: 1,
                 18: ("vector", 1), 20: ("vector", 4), 22: 8, 24: 8, 26: 1, 28: "union", 30: 4},
    "Buffer": {4: ("vector", 1), 6: 8, 8: 8},
    "Metadata": {4: "string", 6: 4},
    "SignatureDef": {4: ("tables", "TensorMap"), 6: ("tables", "TensorMap"), 8: "string", 10: "string", 12: 4},
    "TensorMap": {4: "string", 6: 4},
}

MAX_TABLES = 1_000_000  # as the FlatBuffers verifier's default: bounds the work a crafted file can cause


class _Reader:
    def __init__(self, data: bytes, where: str):
        self.data = data
        self.size = len(data)
        self.where = where
        self.tables = 0

    def fail(self, what: str) -> ModelError:
        return ModelError(f"{self.where}: corrupt or truncated .tflite file ({what} lies outside its "
                          f"{self.size} bytes); re-export the model")

    def u32(self, pos: int, what: str) -> int:
        if not 0 <= pos <= self.size - 4:
            raise self.fail(what)
        return struct.unpack_from("<I", self.data, pos)[0]

    def target(self, pos: int, what: str) -> int:
        """Where the uoffset stored at `pos` points."""
        return pos + self.u32(pos, what)

    def vector(self, pos: int, elem: int, what: str) -> tuple[int, int]:
        """(first element, count) of the vector whose uoffset is at `pos`."""
        start = self.target(pos, what)
        count = self.u32(start, what)
        if start + 4 + count * elem > self.size:
            raise self.fail(f"{what} ({count} elements)")
        return start + 4, count

    def table(self, pos: int, name: str, what: str) -> None:
        self.tables += 1
        if self.tables > MAX_TABLES:
            raise ModelError(f"{self.where}: more than {MAX_TABLES:,} tables; not a plausible model file")
        if not 0 <= pos <= self.size - 4:
            raise self.fail(what)
        vtable = pos - struct.unpack_from("<i", self.data, pos)[0]
        if not 0 <= vtable <= self.size - 4:
            raise self.fail(f"the layout of {what}")
        vsize, osize = struct.unpack_from("<HH", self.data, vtable)
        if vsize < 4 or vsize % 2 or vtable + vsize > self.size or osize < 4 or pos + osize > self.size:
            raise self.fail(f"the layout of {what}")
        fields = SCHEMA.get(name, {})
        for slot in range(4, vsize, 2):
            off = struct.unpack_from("<H", self.data, vtable + slot)[0]
            if not off:
                continue
            kind = fields.get(slot, 1)
            width = kind if isinstance(kind, int) else 4
            if off + width > osize:
                raise self.fail(f"field {slot // 2 - 2} of {what}")
            if not isinstance(kind, int):
                self.field(pos + off, kind, f"field {slot // 2 - 2} of {what}")

    def field(self, pos: int, kind: Field, what: str) -> None:
        if kind == "string":
            start, count = self.vector(pos, 1, what)
            if start + count >= self.size:  # the terminating NUL
                raise self.fail(what)
        elif kind == "union":
            self.table(self.target(pos, what), "", what)
        elif kind[0] == "vector":
            self.vector(pos, int(kind[1]), what)
        elif kind[0] == "table":
            self.table(self.target(pos, what), str(kind[1]), f"a {kind[1]} table")
        else:  # a vector of tables
            start, count = self.vector(pos, 4, what)
            for i in range(count):
                self.table(self.target(start + 4 * i, what), str(kind[1]), f"{kind[1]} #{i}")


def check_flatbuffer(data: bytes, where: str) -> None:
    """Raises ModelError unless every table, vector and string of the TFLite schema lies inside `data`."""
    reader = _Reader(data, where)
    reader.table(reader.target(0, "the root table"), "Model", "the root table")
