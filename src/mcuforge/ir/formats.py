"""Weight formats: exact, compact encodings of an int8 weight tensor (Tensor.format).

A format changes how a constant weight tensor is stored in flash, never its values: `Tensor.data` keeps the
int8 values, so the model's semantics, the numpy reference and TFLM (on the int8 model) stay the oracle.
The code generator stores the tensor encoded and the kernels decode it in their inner loop; no decoded copy
is ever planned into the arena.

- int8: one byte per value (the default).
- int4: values in [-8, 7], two per byte, low nibble first: value i is the low nibble of byte i // 2 when
  i is even, the high nibble when it is odd (TFLite's INT4 layout, byte-compatible with CMSIS-NN's s4);
  an odd count leaves the last high nibble 0. The fast fully-connected and convolution kernels read the
  rows of an int4 or ternary weight matrix in a layout of their own with the same bytes per value
  (pack_wb_rows).
- ternary: values in {-1, 0, 1} (the magnitude lives in the per-channel scale), two bits each, four per
  byte, lowest bits first: value i is bits [2 * (i % 4), 2 * (i % 4) + 2) of byte i // 4, as a 2-bit two's
  complement (3 = -1).
- ternary:base3: the same values, five per byte in base 3: byte i // 5 = sum of (value + 1) * 3^j over the
  five values j = 0 .. 4 of its group (1.6 bits a value, 0.2x int8's bytes). Only the plain kernels and
  the depthwise plane read it (a division per weight), so auto leaves it out: ask for it by name.
- pow2: 0 and +-2^k for k = 0 .. 6 (power-of-two, logarithmic weights), four bits each in int4's nibble
  order: code 0 is 0, code k + 1 is 2^k, code 8 + k + 1 is -2^k (sign and exponent: a shift decodes it).
- sparse: any int8 values, the zeros skipped: per block of 32 values a bitmap word (bit j: value 32b + j is
  not 0), then per superblock of 8 blocks the count of nonzero values before it (uint32), then per block the
  count before it within its superblock (a byte, four per uint32 word, lowest first): all uint32 words;
  the nonzero values follow as int8, in order. Value i is found with one popcount (mcu_weights.h). 0.172
  bytes per value plus one per nonzero: 0.37x int8's bytes at 80 % zeros.
- sparse:int4: the same with nonzero values in -8..7, stored two per byte in int4's nibble order (0.27x
  at 80 % zeros: pruning and int4 together).
- codebook:B (B = 1 .. 7): at most 2^B distinct values per tensor (weight sharing, clustering): a table of
  2^B int8 values, then B-bit indices into it, value i at bits [i * B, i * B + B) of the little-endian
  byte stream, and one byte of padding (the kernels read two bytes at a time).

`choose_formats` marks the weights of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: "auto" takes, per
tensor, the format with the fewest bytes that holds its values exactly (a lossless flash saving); a named format must
hold every such tensor's values, else a ModelError lists those it cannot (lossy conversion into a format
is `mcuforge compress`'s job).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .graph import Graph

CODEBOOKS = tuple(f"codebook:{b}" for b in range(1, 8))
SPARSE = ("sparse", "sparse:int4")  # the zeros skipped; the nonzero values as int8, or as int4
AUTO = ("int8", "int4", "ternary", "pow2", *CODEBOOKS, *SPARSE)  # what auto takes from; on a tie, the first
FORMATS = (*AUTO, "ternary:base3")
SPARSE_BLOCK, SPARSE_SUPER = 32, 8  # values per bitmap word, blocks per superblock
POW2 = tuple(sorted({0, *(s * (1 << k) for s in (-1, 1) for k in range(7))}))  # pow2's values
ENCODED_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})  # kernels that decode formats
WEIGHTS = 1  # the weights' operand position in those operators
CHOICES = (*FORMATS, "auto")  # what a user may ask for
WB_MAX_DEPTH = 1 << 16  # the fast low-bit kernels sum 2^(8 - bits) x the (perhaps doubled) products in int32


def codebook_bits(fmt: str) -> int:
    """B of codebook:B (0 for the other formats)."""
    return int(fmt.split(":")[1]) if fmt in CODEBOOKS else 0


def holds(fmt: str, values: np.ndarray) -> bool:
    """Whether `fmt` stores `values` (int8) exactly."""
    v = np.asarray(values)
    if fmt == "int8":
        return True
    if fmt == "int4":
        return bool(v.size == 0 or (v.min() >= -8 and v.max() <= 7))
    if fmt in ("ternary", "ternary:base3"):
        return bool(np.isin(v, (-1, 0, 1)).all())
    if fmt == "pow2":
        return bool(np.isin(v, POW2).all())
    if fmt in CODEBOOKS:
        return len(np.unique(v)) <= 1 << codebook_bits(fmt)
    if fmt == "sparse":
        return True
    if fmt == "sparse:int4":
        return holds("int4", v)
    raise ValueError(f"unknown weight format {fmt!r} (known: {', '.join(FORMATS)})")


def sparse_words(count: int) -> int:
    """uint32 words of a sparse tensor's bitmaps and counts (module docstring)."""
    blocks = -(-count // SPARSE_BLOCK)
    return blocks + -(-blocks // SPARSE_SUPER) + -(-blocks // 4)


def encoded_bytes(fmt: str, count: int, nonzeros: int | None = None) -> int:
    """Bytes of flash `count` values take in `fmt` (a codebook's table and padding included; sparse needs
    the number of nonzero values)."""
    if fmt in SPARSE:
        if nonzeros is None:
            raise ValueError("the bytes of a sparse tensor depend on its nonzero values")
        return 4 * sparse_words(count) + (nonzeros if fmt == "sparse" else (nonzeros + 1) // 2)
    if fmt in CODEBOOKS:
        bits = codebook_bits(fmt)
        return (1 << bits) + (count * bits + 7) // 8 + 1
    if fmt == "ternary":
        return (count + 3) // 4
    if fmt == "ternary:base3":
        return (count + 4) // 5
    return count if fmt == "int8" else (count + 1) // 2


def tensor_bytes(fmt: str, values: np.ndarray) -> int:
    """Bytes of flash `values` take in `fmt`."""
    return encoded_bytes(fmt, int(np.size(values)), int(np.count_nonzero(values)))


def pack_sparse(values: np.ndarray, fmt: str = "sparse") -> tuple[np.ndarray, np.ndarray]:
    """(words uint32, the nonzero values: int8 for "sparse", int4 packed two per byte (uint8) for
    "sparse:int4"): see the module docstring."""
    v = np.asarray(values, np.int64).reshape(-1)
    blocks = -(-v.size // SPARSE_BLOCK)
    mask = np.zeros(blocks * SPARSE_BLOCK, np.uint64)
    mask[:v.size] = v != 0
    bitmaps = (mask.reshape(blocks, SPARSE_BLOCK) << np.arange(SPARSE_BLOCK, dtype=np.uint64)).sum(axis=1)
    counts = mask.reshape(blocks, SPARSE_BLOCK).sum(axis=1).astype(np.int64)
    before = np.cumsum(counts) - counts  # nonzeros before each block
    supers = before[::SPARSE_SUPER]
    local = before - np.repeat(supers, SPARSE_SUPER)[:blocks]
    local = np.concatenate([local, np.zeros((-blocks) % 4, np.int64)]).reshape(-1, 4)
    words = np.concatenate([bitmaps.astype(np.int64), supers, (local << np.arange(0, 32, 8)).sum(axis=1)])
    nonzero = v[v != 0]
    return words.astype(np.uint32), (pack_int4(nonzero) if fmt == "sparse:int4" else nonzero.astype(np.int8))


def unpack_sparse(words: np.ndarray, nonzero: np.ndarray, count: int, fmt: str = "sparse") -> np.ndarray:
    """The inverse of pack_sparse, value by value as mcu_weight reads it: `count` int8 values."""
    w = np.asarray(words, np.int64)
    if fmt == "sparse:int4":
        nonzero = unpack_int4(nonzero, 2 * np.size(nonzero))
    blocks = -(-count // SPARSE_BLOCK)
    supers = -(-blocks // SPARSE_SUPER)
    out = np.zeros(count, np.int8)
    for i in range(count):
        block, j = divmod(i, SPARSE_BLOCK)
        bits = int(w[block])
        if bits >> j & 1:
            local = int(w[blocks + supers + block // 4]) >> (8 * (block % 4)) & 0xFF
            rank = int(w[blocks + block // SPARSE_SUPER]) + local + bin(bits & ((1 << j) - 1)).count("1")
            out[i] = nonzero[rank]
    return out


def pack_codebook(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(table int8 [2^bits], indices uint8): see the module docstring; unused table entries are 0."""
    v = np.asarray(values, np.int64).reshape(-1)
    table = np.unique(v)
    if table.size > 1 << bits:
        raise ValueError(f"{table.size} distinct values do not fit a codebook of {1 << bits}")
    index = np.searchsorted(table, v)
    stream = ((index[:, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)  # bit i*bits+k = bit k
    stream = np.concatenate([stream, np.zeros((-stream.size) % 8 + 8, np.uint8)])  # whole bytes, one more
    packed = np.packbits(stream.reshape(-1, 8), axis=1, bitorder="little").reshape(-1)
    return np.pad(table, (0, (1 << bits) - table.size)).astype(np.int8), packed.astype(np.uint8)


def unpack_codebook(table: np.ndarray, packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The inverse of pack_codebook: `count` int8 values."""
    stream = np.unpackbits(np.asarray(packed, np.uint8), bitorder="little")[:count * bits].reshape(count, bits)
    index = (stream.astype(np.int64) << np.arange(bits)).sum(axis=1)
    return np.asarray(table, np.int8)[index]


def pack_int4(values: np.ndarray) -> np.ndarray:
    """int4 values (in [-8, 7]) -> uint8 bytes, two per byte, low nibble first."""
    v = np.asarray(values, np.int64).reshape(-1)
    if v.size and (v.min() < -8 or v.max() > 7):
        raise ValueError("int4 values must lie in [-8, 7]")
    nibbles = (v & 0xF).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: np.ndarray, count: int) -> np.ndarray:
    """The inverse of pack_int4: `count` int8 values."""
    b = np.asarray(packed, np.uint8).reshape(-1)
    nibbles = np.empty(2 * b.size, np.int16)
    nibbles[0::2], nibbles[1::2] = b & 0xF, b >> 4
    return np.where(nibbles > 7, nibbles - 16, nibbles)[:count].astype(np.int8)


def pack_ternary(values: np.ndarray) -> np.ndarray:
    """Values in {-1, 0, 1} -> uint8 bytes, four 2-bit codes per byte, lowest bits first."""
    v = np.asarray(values, np.int64).reshape(-1)
    if not holds("ternary", v):
        raise ValueError("ternary values must be -1, 0 or 1")
    codes = np.concatenate([v & 3, np.zeros((-v.size) % 4, np.int64)]).reshape(-1, 4)
    return (codes << np.arange(0, 8, 2)).sum(axis=1).astype(np.uint8)


def pack_base3(values: np.ndarray) -> np.ndarray:
    """Values in {-1, 0, 1} -> uint8 bytes, five per byte in base 3 (value + 1, the first the lowest digit)."""
    v = np.asarray(values, np.int64).reshape(-1)
    if not holds("ternary", v):
        raise ValueError("ternary values must be -1, 0 or 1")
    digits = np.concatenate([v + 1, np.ones((-v.size) % 5, np.int64)]).reshape(-1, 5)
    return (digits * 3 ** np.arange(5)).sum(axis=1).astype(np.uint8)


def pack_pow2(values: np.ndarray) -> np.ndarray:
    """Values in POW2 -> uint8 bytes of 4-bit codes (sign << 3 | exponent + 1; 0 for 0), two per byte."""
    v = np.asarray(values, np.int64).reshape(-1)
    if not holds("pow2", v):
        raise ValueError("pow2 values must be 0 or +-2^k, k = 0 .. 6")
    codes = pow2_codes(v)
    return pack_int4(np.where(codes > 7, codes - 16, codes))


def decode(fmt: str, packed: np.ndarray, count: int) -> np.ndarray:
    """The inverse of encode (int8, int4, ternary, pow2): `count` int8 values, as the C kernels decode them."""
    b = np.asarray(packed, np.uint8).reshape(-1)
    if fmt == "int8":
        return b.view(np.int8)[:count].copy()
    if fmt == "ternary":
        codes = ((b[:, None] >> np.arange(0, 8, 2)) & 3).reshape(-1)[:count].astype(np.int16)
        return (codes - ((codes & 2) << 1)).astype(np.int8)
    if fmt == "int4":
        return unpack_int4(b, count)
    if fmt == "ternary:base3":
        return ((b[:, None].astype(np.int64) // 3 ** np.arange(5)) % 3 - 1).reshape(-1)[:count].astype(np.int8)
    nibbles = unpack_int4(b, count).astype(np.int16) & 0xF
    if fmt == "pow2":
        magnitude = np.where(nibbles & 7, 1 << np.maximum((nibbles & 7) - 1, 0), 0)
        return np.where(nibbles & 8, -magnitude, magnitude).astype(np.int8)
    raise ValueError(f"unknown weight format {fmt!r} (known: {', '.join(FORMATS)})")


LOW_BITS = {"int4": 4, "ternary": 2}  # the formats of the fast low-bit kernels (mcu_gemm_s4.h) and their widths
LUT_BITS = {"pow2": 4, "codebook:4": 4, "codebook:2": 2}  # the same kernels, each field a code into a table
WB_BITS = {**LOW_BITS, **LUT_BITS}


def pack_wb_rows(rows: np.ndarray, bits: int = 4) -> np.ndarray:
    """Values [R, depth] of `bits`-bit two's complement (int4: -8..7, bits 4; ternary: bits 2) -> the wb
    layout of the fast low-bit kernels (mcu_gemm_s4.h): per row, each group of 32 / bits values k.. in one
    32-bit word, byte j holding values k + j, k + 4 + j, .. in its `bits`-bit fields from the lowest (bits 4:
    the w4 layout, value k + j in the low nibble and k + 4 + j in the high one), a partial last group padded
    with zeros. uint8 [R, 4 * ceil(depth * bits / 32)]."""
    v = np.asarray(rows, np.int64)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"{bits}-bit values must lie in [{lo}, {hi}]")
    count, depth = v.shape
    per = 32 // bits
    groups = (depth + per - 1) // per
    padded = np.zeros((count, groups * per), np.int64)
    padded[:, :depth] = v & ((1 << bits) - 1)
    fields = padded.reshape(count, groups, per // 4, 4)  # [row, word, field, byte]
    words = (fields << (bits * np.arange(per // 4))[None, None, :, None]).sum(axis=2)
    return words.astype(np.uint8).reshape(count, groups * 4)


def pow2_codes(values: np.ndarray) -> np.ndarray:
    """pow2's 4-bit codes (0 for 0, sign << 3 | exponent + 1) of values in POW2."""
    v = np.asarray(values, np.int64)
    return np.where(v == 0, 0, (v < 0) * 8 + np.log2(np.maximum(np.abs(v), 1)).astype(np.int64) + 1)


def wb_rows(fmt: str, rows: np.ndarray, values: np.ndarray) -> tuple[int, np.ndarray, np.ndarray | None]:
    """(bits, rows in the wb layout, table or None) for the fast low-bit kernels (mcu_gemm_s4.h): int4 and
    ternary rows hold their values; pow2 and codebook rows hold codes into a table of 2^bits int8 values
    (pow2's fixed one, a codebook's from the tensor's `values`). Rows may carry zero padding a codebook
    cannot encode: the kernels multiply it by zeros only (the column's padding)."""
    bits = WB_BITS[fmt]
    if fmt in LOW_BITS:
        return bits, pack_wb_rows(rows, bits), None
    if fmt == "pow2":
        table = np.array([0, *(1 << k for k in range(7)), 0, *(-(1 << k) for k in range(7))], np.int8)
        codes = pow2_codes(rows)
    else:
        table, _ = pack_codebook(values, bits)
        known = np.unique(np.asarray(values, np.int64))
        codes = np.clip(np.searchsorted(known, np.asarray(rows, np.int64)), 0, (1 << bits) - 1)
    half = 1 << (bits - 1)
    return bits, pack_wb_rows(np.where(codes >= half, codes - 2 * half, codes), bits), table


def encode(fmt: str, values: np.ndarray) -> np.ndarray:
    """The bytes the C kernels read: int8 values as they are, int4 packed (a codebook: pack_codebook)."""
    if fmt == "int8":
        return np.asarray(values, np.int8).reshape(-1)
    if fmt == "int4":
        return pack_int4(values)
    if fmt == "ternary":
        return pack_ternary(values)
    if fmt == "pow2":
        return pack_pow2(values)
    if fmt == "ternary:base3":
        return pack_base3(values)
    raise ValueError(f"unknown weight format {fmt!r} (known: {', '.join(FORMATS)})")


def weight_tensors(graph: Graph) -> list[str]:
    """The constant int8 weight tensors the decoding kernels read, in op order."""
    names: dict[str, None] = {}
    for op in graph.ops:
        if op.kind in ENCODED_KINDS and len(op.inputs) > WEIGHTS:
            t = graph[op.inputs[WEIGHTS]]
            if t.data is not None and t.dtype == "int8":
                names[t.name] = None
    return list(names)


def choose_formats(graph: Graph, requested: str) -> Graph:
    """The graph with its weight tensors' formats set (see the module docstring); "int8" resets them."""
    from ..errors import ModelError, shown

    if requested not in CHOICES:
        raise ModelError(f"unknown weight format {requested!r}: choose one of {', '.join(CHOICES)}")
    tensors = dict(graph.tensors)
    refused = []
    for name in weight_tensors(graph):
        t = tensors[name]
        if requested == "auto":  # the smallest that holds the values, int8 on a tie
            fmt = min((f for f in AUTO if holds(f, t.data)), key=lambda f: (tensor_bytes(f, t.data), f != "int8"))
        elif holds(requested, t.data):
            fmt = requested
        else:
            refused.append(name)
            continue
        tensors[name] = replace(t, format=fmt)
    if refused:
        first = graph[refused[0]].data
        what = (f"{len(np.unique(first))} distinct values" if requested in CODEBOOKS
                else f"values {int(first.min())}..{int(first.max())}")
        raise ModelError(f"{len(refused)} weight tensor(s) hold values outside {requested} (e.g. {shown(refused[0])}: "
                         f"{what}): use --weights auto to keep them as they fit, or re-quantize them with "
                         "mcuforge compress")
    return replace(graph, tensors=tensors)


def format_summary(graph: Graph) -> dict[str, dict[str, int]]:
    """Per format: {"tensors", "values", "bytes", "int8_bytes"} over the graph's weight tensors."""
    out: dict[str, dict[str, int]] = {}
    for name in weight_tensors(graph):
        t = graph[name]
        row = out.setdefault(t.format, {"tensors": 0, "values": 0, "bytes": 0, "int8_bytes": 0})
        row["tensors"] += 1
        row["values"] += t.size
        row["bytes"] += tensor_bytes(t.format, t.data)
        row["int8_bytes"] += t.size
    return out
