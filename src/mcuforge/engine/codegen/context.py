"""What an operator's emitter sees: pointers into the arena, const arrays, scratch, literals."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Callable

import numpy as np

from ...ir import Graph, Op, Tensor

if TYPE_CHECKING:
    from ..plan import MemoryPlan
    from ..plan.lifetimes import Lifetime

CTYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t",
          "int64": "int64_t", "float32": "float", "bool": "uint8_t"}


def c_float(x: float) -> str:
    """A C float literal that reads back as exactly the float32 value x."""
    v = float(np.float32(x))
    text = repr(v)
    if "e" not in text and "." not in text and "inf" not in text:
        text += ".0"
    return text + "f"


def c_double(x: float) -> str:
    text = repr(float(x))
    if "e" not in text and "." not in text:
        text += ".0"
    return text


@dataclass
class ConstPool:
    """The model's `const` arrays (weights, biases, multipliers), written to <name>_weights.c."""

    prefix: str
    arrays: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)  # ident -> (ctype, values)
    _by_content: dict[tuple[str, bytes], str] = field(default_factory=dict)

    def add(self, tag: str, values: np.ndarray, ctype: str) -> str:
        values = np.ascontiguousarray(values).ravel()
        key = (ctype, values.tobytes())
        if key in self._by_content:
            return self._by_content[key]
        ident = f"{self.prefix}_{_c_ident(tag)}_{len(self.arrays)}"
        self.arrays[ident] = (ctype, values)
        self._by_content[key] = ident
        return ident

    def flash_bytes(self) -> int:
        return sum(v.size * _ctype_size(ct) for ct, v in self.arrays.values())


def _ctype_size(ctype: str) -> int:
    return {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4, "float": 4,
            "int64_t": 8}[ctype]


def _c_ident(text: str) -> str:
    out = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in text)
    return out[:24].strip("_") or "t"


@dataclass
class EmitContext:
    graph: Graph
    plan: "MemoryPlan"
    consts: ConstPool
    arena: str  # C expression of the arena's byte array, e.g. "model_arena.bytes"
    headers: set[str] = field(default_factory=set)
    index: int = 0  # the op being emitted
    op: Op | None = None
    external: dict[str, str] = field(default_factory=dict)  # tensor outside the arena -> C pointer (void *)

    def use(self, header: str) -> None:
        """Declare that the layer calls a kernel from runtime/<header>."""
        self.headers.add(header)

    def tensor(self, name: str) -> Tensor:
        return self.graph[name]

    def ptr(self, name: str) -> str:
        """C expression: a typed pointer to an activation tensor in the arena."""
        t = self.graph[name]
        ctype = CTYPES[t.dtype]
        if name in self.external:
            return f"(({ctype} *){self.external[name]})"
        off = self.plan.offsets[name]
        if ctype == "int8_t":
            return f"&{self.arena}[{off}]"
        return f"(({ctype} *)(void *)&{self.arena}[{off}])"

    def const(self, name_or_tag: str, values: np.ndarray | None = None, ctype: str | None = None) -> str:
        """C identifier of a const array: a constant tensor by name, or any array with a tag."""
        if values is None:
            t = self.graph[name_or_tag]
            assert t.data is not None, name_or_tag
            values, ctype = t.data, CTYPES[t.dtype]
        assert ctype is not None
        return self.consts.add(name_or_tag, values, ctype)

    def weights(self, name: str) -> str:
        """C expression of a `const mcu_weights *` (mcu_weights.h): a weight tensor stored in its format."""
        from ...ir.formats import SPARSE, codebook_bits, encode, pack_codebook

        t = self.graph[name]
        assert t.data is not None, name
        self.use("mcu_weights.h")
        if t.format in SPARSE:
            return self.sparse_weights(name, t.data, t.format)
        bits = codebook_bits(t.format)
        if bits:
            table, indices = pack_codebook(t.data, bits)
            return (f"&(const mcu_weights){{.data = {self.consts.add(name, indices, 'uint8_t')}, .format = MCU_W_CODEBOOK, "
                    f".bits = {bits}, .table = {self.consts.add(f'table_{name}', table, 'int8_t')}}}")
        data = self.consts.add(name, encode(t.format, t.data), "int8_t" if t.format == "int8" else "uint8_t")
        return f"&(const mcu_weights){{.data = {data}, .format = MCU_W_{t.format.upper().replace(':', '_')}}}"

    def sparse_weights(self, tag: str, values: np.ndarray, fmt: str = "sparse") -> str:
        """C expression of a `const mcu_weights *` holding `values` in a sparse format (ir/formats.SPARSE)."""
        from ...ir.formats import SPARSE_BLOCK, pack_sparse

        self.use("mcu_weights.h")
        words, nonzero = pack_sparse(values, fmt)
        code = "MCU_W_SPARSE_INT4" if fmt == "sparse:int4" else "MCU_W_SPARSE"
        table = self.consts.add(f"nonzero_{tag}", nonzero, "int8_t" if fmt == "sparse" else "uint8_t")
        return (f"&(const mcu_weights){{.data = {self.consts.add(tag, words, 'uint32_t')}, .format = {code}, "
                f".bits = {-(-np.size(values) // SPARSE_BLOCK)}, .table = (const int8_t *){table}}}")

    @cached_property
    def lifetimes(self) -> "dict[str, Lifetime]":
        """Every arena tensor's lifetime (computed once per model, for emitters that ask)."""
        from ..plan.lifetimes import activation_lifetimes

        return activation_lifetimes(self.graph)

    @property
    def inplace(self) -> bool:
        """True when the planner placed this op's output over its input (in-place kernel needed)."""
        return self.index in self.plan.inplace_ops

    @property
    def scratch(self) -> str | None:
        """C expression of this op's scratch buffer (int8_t *), or None when it has none."""
        s = self.plan.scratch.get(self.index)
        if not s or s[1] == 0:
            return None
        return f"&{self.arena}[{s[0]}]"


Emitter = Callable[[Op, EmitContext], str]
EMITTERS: dict[str, Emitter] = {}  # kind -> Operator.emit, entered by mcuforge.operators.install()
