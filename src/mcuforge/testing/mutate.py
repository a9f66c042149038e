"""A seeded mutation engine for .tflite files: byte-level, flatbuffer-aware (in place) and IR-level.

`Mutator(seeds).mutant(index, base_seed)` is a pure function of its arguments: the same index and base
seed give the same bytes, so any finding can be regenerated from (base seed, index) alone.

Families (the part before ':' is the layer):
- bytes:*  flip, set, int32, range, insert, delete, truncate; positions mostly outside the weight
           buffers (the tables, vtables, strings), where a change means something structural;
- fb:*     one field of the flatbuffer overwritten in place (struct.pack_into at the position the
           tflite accessors give): graph and operator inputs/outputs, opcode index, options type,
           options fields, shapes, tensor type, buffer index, quantization, operator codes, the
           operators vector (duplicated or swapped entries) and vector lengths;
- ir:*     the seed read into the IR, changed (see mutate_ir) and written back by our writer;
- combinations of 1-3 of these, applied IR first, then in place, then bytes (family "a+b+c").
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import flatbuf, mutate_ir
from .seeds import Seed

_I32 = (0, 1, 2, 3, -1, -2, 7, 2 ** 31 - 1, -2 ** 31, 65535, 1 << 20)
_ENUM = (0, 1, 2, 3, 4, 5, 6, 7, -1, 127, -128)
_FLOATS = (0.0, -0.0, math.nan, math.inf, -math.inf, 1e-30, 1e30, -1.0, 1.0, 1e-45, 3.4e38, 2.0 ** -32)
_ZPS = (0, -1, 1, 127, 128, -128, -129, 255, 256, 2 ** 31 - 1, -2 ** 31, 2 ** 63 - 1, -2 ** 63)
_LENGTHS = (0, 1, 2 ** 31, 2 ** 32 - 1, 1 << 20)
_LAYERS = {"bytes": 0.3, "fb": 0.42, "ir": 0.28}
_COUNTS = (1, 1, 1, 2, 2, 3)


@dataclass(frozen=True)
class Mutant:
    seed: str  # the seed model's name
    data: bytes
    family: str  # "fb:shape", "ir:evil_name+bytes:flip", ...
    desc: str
    index: int = -1

    @property
    def families(self) -> list[str]:
        return self.family.split("+")


class Mutator:
    """Mutants of a fixed list of seed models; `weights` (per seed name) bias the choice of seed."""

    def __init__(self, seeds: Sequence[Seed], weights: dict[str, float] | None = None,
                 layers: dict[str, float] | None = None, table_bias: float = 0.85) -> None:
        self.seeds = list(seeds)
        w = np.array([(weights or {}).get(s.name, 1.0) for s in self.seeds], np.float64)
        self.p = w / w.sum()
        self.layers = dict(layers or _LAYERS)
        self.table_bias = table_bias
        self._layouts: dict[str, flatbuf.Layout] = {}
        self._ranges: dict[str, list[tuple[int, int]]] = {}
        self._graphs: dict[str, object] = {}

    # ------------------------------------------------------------ entry point

    def mutant(self, index: int, base_seed: int = 0) -> Mutant:
        rng = np.random.default_rng([base_seed & 0xFFFFFFFF, index])
        seed = self.seeds[int(rng.choice(len(self.seeds), p=self.p))]
        for _ in range(20):
            names = list(self.layers)
            p = np.array([self.layers[n] for n in names])
            layers = sorted((names[int(rng.choice(len(names), p=p / p.sum()))]
                             for _ in range(int(rng.choice(_COUNTS)))), key=["ir", "fb", "bytes"].index)
            out = self._apply(seed, layers, rng)
            if out is not None and out[0] != seed.data:
                data, families, descs = out
                return Mutant(seed.name, data, "+".join(families), "; ".join(descs), index)
        data = seed.data[:-1]
        return Mutant(seed.name, data, "bytes:truncate", f"cut to {len(data)} of {len(seed.data)} bytes", index)

    def _apply(self, seed: Seed, layers: list[str], rng) -> tuple[bytes, list[str], list[str]] | None:
        data, families, descs = seed.data, [], []
        n_ir = layers.count("ir")
        if n_ir:
            out = self._ir(seed, n_ir, rng)
            if out is None:
                return None
            data, fams, ds = out
            families += fams
            descs += ds
        for layer in layers[n_ir:]:
            step = self._fb(seed, data, rng) if layer == "fb" else self._bytes(seed, data, rng)
            if step is None:
                return None
            data, fam, desc = step
            families.append(fam)
            descs.append(desc)
        return data, families, descs

    # ------------------------------------------------------------ IR level

    def _ir(self, seed: Seed, count: int, rng):
        from ..frontends.tflite_reader import read_tflite
        from ..frontends.tflite_writer import write_tflite

        if seed.name not in self._graphs:
            try:
                self._graphs[seed.name] = read_tflite(seed.data, seed.name)
            except Exception:
                self._graphs[seed.name] = None
        graph = self._graphs[seed.name]
        if graph is None:
            return None
        families, descs = [], []
        for _ in range(count):
            name = str(rng.choice(list(mutate_ir.MUTATIONS)))
            try:
                out = mutate_ir.MUTATIONS[name](graph, rng)
            except Exception:
                out = None
            if out is None:
                return None
            graph, desc = out
            families.append(f"ir:{name}")
            descs.append(desc)
        try:
            data = write_tflite(graph)
        except Exception:  # the writer refusing a graph is not a finding: skip the mutation
            return None
        return data, families, descs

    # ------------------------------------------------------------ flatbuffer fields, in place

    def _layout(self, seed: Seed, data: bytes) -> flatbuf.Layout | None:
        if data is seed.data:
            if seed.name not in self._layouts:
                self._layouts[seed.name] = flatbuf.layout(seed.data)
            return self._layouts[seed.name]
        try:
            return flatbuf.layout(data)
        except Exception:
            return None

    def _fb(self, seed: Seed, data: bytes, rng):
        lay = self._layout(seed, data)
        if lay is None:
            return None
        if lay.op_slots and rng.random() < 0.08:
            return self._op_vector(data, lay, rng)
        kinds = sorted({s.kind for s in lay.sites})
        kind = str(rng.choice(kinds))
        sites = [s for s in lay.sites if s.kind == kind]
        site = sites[int(rng.integers(len(sites)))]
        old = site.read(data)
        value = self._value(site, old, rng)
        buf = bytearray(data)
        try:
            struct.pack_into(site.fmt, buf, site.pos, value)
        except struct.error:
            return None
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        return bytes(buf), f"fb:{kind}", f"{site.label} {old} -> {shown}"

    def _value(self, site: flatbuf.Site, old, rng):
        fmt, n = site.fmt, site.limit
        if site.kind == "vec_len":
            choices = _LENGTHS + (old + 1, max(old - 1, 0), 2 * old)
        elif fmt == "<f":
            choices = _FLOATS + (-old, old * 2.0 ** 20, old * 2.0 ** -20, float(np.nextafter(np.float32(old),
                                                                                              np.float32(1e38))))
        elif fmt == "<q":
            choices = _ZPS + (old + 1, old - 1)
        elif fmt in ("<b", "<B", "<?"):
            choices = _ENUM + (old + 1, int(rng.integers(0, 128)))
        elif n:
            choices = (0, -1, n - 1, n, n + 1, 2 ** 31 - 1, -2 ** 31, old + 1, old - 1, int(rng.integers(max(n, 1))))
        else:
            choices = _I32 + (old + 1, old - 1, old * 2, int(rng.integers(0, 300)))
        value = choices[int(rng.integers(len(choices)))]
        if fmt in ("<I", "<B", "<Q", "<?"):
            bits = {"<I": 32, "<B": 8, "<Q": 64, "<?": 8}[fmt]
            value = int(value) % (1 << bits)
            return bool(value) if fmt == "<?" else value
        if fmt in ("<b", "<i", "<q"):
            bits = {"<b": 8, "<i": 32, "<q": 64}[fmt]
            value = (int(value) + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
        return value

    def _op_vector(self, data: bytes, lay: flatbuf.Layout, rng):
        slots = lay.op_slots
        buf = bytearray(data)
        i, j = (int(k) for k in rng.integers(len(slots), size=2))
        a, b = slots[i], slots[j]
        if rng.random() < 0.5 or i == j:  # entry i now points at op j's table (op j duplicated)
            if b.target <= a.entry:
                return None
            struct.pack_into("<I", buf, a.entry, b.target - a.entry)
            return bytes(buf), "fb:op_order", f"operators[{i}] -> op {j} (op {j} duplicated)"
        if b.target <= a.entry or a.target <= b.entry:
            return None
        struct.pack_into("<I", buf, a.entry, b.target - a.entry)
        struct.pack_into("<I", buf, b.entry, a.target - b.entry)
        return bytes(buf), "fb:op_order", f"operators {i} and {j} swapped"

    # ------------------------------------------------------------ bytes

    def _weight_ranges(self, seed: Seed, data: bytes) -> list[tuple[int, int]]:
        if data is not seed.data:
            return flatbuf.data_ranges(data)
        if seed.name not in self._ranges:
            self._ranges[seed.name] = flatbuf.data_ranges(seed.data)
        return self._ranges[seed.name]

    def _position(self, ranges: list[tuple[int, int]], size: int, rng) -> int:
        """A byte position below `size`; with probability table_bias outside the weight `ranges`."""
        ranges = [r for r in ranges if r[1] <= size]
        if not ranges or rng.random() >= self.table_bias:
            return int(rng.integers(size))
        gaps, prev = [], 0
        for start, end in ranges:
            if start > prev:
                gaps.append((prev, start))
            prev = max(prev, end)
        if prev < size:
            gaps.append((prev, size))
        total = sum(e - s for s, e in gaps)
        if total <= 0:
            return int(rng.integers(size))
        k = int(rng.integers(total))
        for s, e in gaps:
            if k < e - s:
                return s + k
            k -= e - s
        return int(rng.integers(size))

    def _bytes(self, seed: Seed, data: bytes, rng):
        if len(data) < 2:
            return None
        how = str(rng.choice(["flip", "set", "int32", "range", "insert", "delete", "truncate"],
                             p=[0.22, 0.14, 0.16, 0.14, 0.1, 0.1, 0.14]))
        buf = bytearray(data)
        ranges = self._weight_ranges(seed, data)
        pos = self._position(ranges, len(data), rng)
        if how == "flip":
            spots = sorted({self._position(ranges, len(data), rng) for _ in range(int(rng.integers(1, 9)))})
            bits = []
            for p in spots:
                bit = int(rng.integers(8))
                buf[p] ^= 1 << bit
                bits.append(f"{p}.{bit}")
            return bytes(buf), "bytes:flip", f"flip bits {', '.join(bits)}"
        if how == "set":
            value = int(rng.choice([0, 0xFF, 0x7F, 0x80, 1, int(rng.integers(256))]))
            buf[pos] = value
            return bytes(buf), "bytes:set", f"byte {pos} = 0x{value:02x}"
        if how == "int32":
            pos -= pos % 4
            if pos + 4 > len(buf):
                return None
            value = int(rng.choice([0, -1, 2 ** 31 - 1, -2 ** 31, 1, 4, 8, 0x10000, int(rng.integers(-600, 600))]))
            struct.pack_into("<i", buf, pos, value)
            return bytes(buf), "bytes:int32", f"int32 at {pos} = {value}"
        if how == "range":
            n = int(rng.integers(1, 65))
            fill = str(rng.choice(["random", "00", "ff"]))
            end = min(pos + n, len(buf))
            buf[pos:end] = (rng.integers(0, 256, end - pos, dtype=np.uint8).tobytes() if fill == "random"
                            else bytes([0 if fill == "00" else 0xFF]) * (end - pos))
            return bytes(buf), "bytes:range", f"range_{fill} [{pos}:{end}]"
        if how == "insert":
            n = int(rng.integers(1, 17))
            chunk = rng.integers(0, 256, n, dtype=np.uint8).tobytes() if rng.random() < 0.5 else bytes(n)
            return bytes(buf[:pos] + chunk + buf[pos:]), "bytes:insert", f"insert {n} bytes at {pos}"
        if how == "delete":
            n = int(rng.integers(1, 65))
            return bytes(buf[:pos] + buf[pos + n:]), "bytes:delete", f"delete [{pos}:{pos + n}]"
        cut = len(data) - 1 if rng.random() < 0.35 else int(rng.integers(1, len(data)))
        return bytes(data[:cut]), "bytes:truncate", f"cut to {cut} of {len(data)} bytes"
