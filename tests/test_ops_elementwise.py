"""Elementwise ops: reference == TFLM == generated C, bit for bit.

ADD, SUB, MUL, MAXIMUM, MINIMUM on random broadcast shapes (ranks 1-6, constant operands down to rank 0),
random quantization and fused activations; RELU, RELU6, LEAKY_RELU, HARD_SWISH, QUANTIZE (int8) and
DEQUANTIZE exhaustively over all 256 int8 inputs for many random parameter sets; QUANTIZE from float32 on
values at and around rounding ties. Plus the corners where TFLM's arithmetic is peculiar (float64 ADD/SUB
multipliers, wrapping left shifts, int16 rounding in HARD_SWISH), in-place execution, and a sanitizer build.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
import pytest

from mcuforge.engine import compile_graph, reference
from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_reader import read_tflite
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, Op, QuantParams, Tensor, clone_tensor
from mcuforge.ir.passes import validate
from mcuforge.operators import add, hard_swish
from mcuforge.operators.binary import broadcast_strides
from mcuforge.operators.quantize import round_half_away_f32
from mcuforge.models.builder import GraphBuilder
from mcuforge.quant import intmath
from mcuforge.targets.host import HostModel, build_executable, run_executable

from oracle import dev_models, tflm_run

Spec = tuple[tuple[int, ...], str, float | None, int]  # shape, dtype, scale (None: float), zero point
Case = tuple[str, Graph, list[np.ndarray] | None]  # description, single-op graph, fixed inputs or None
ALL_INT8 = np.arange(-128, 128, dtype=np.int8)
BINARY = ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM")
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


# ------------------------------------------------------------------ harness

def single(kind: str, ins: Sequence[Spec], out: Spec, attrs: dict | None = None,
           consts: dict[int, np.ndarray] | None = None) -> Graph:
    """A one-op graph; `consts` maps an input position to constant data (not a graph input)."""
    def tensor(name: str, spec: Spec, data: np.ndarray | None = None) -> Tensor:
        shape, dtype, scale, zp = spec
        q = None if scale is None else QuantParams.per_tensor(float(np.float32(scale)), zp)
        return Tensor(name, tuple(shape), dtype, q, data)
    consts = consts or {}
    tensors = {f"x{i}": tensor(f"x{i}", s, consts.get(i)) for i, s in enumerate(ins)}
    tensors["y"] = tensor("y", out)
    inputs = [n for i, n in enumerate(tensors) if n != "y" and i not in consts]
    return Graph(tensors, [Op(kind, tuple(f"x{i}" for i in range(len(ins))), ("y",), attrs or {})], inputs, ["y"])


def merge(cases: Sequence[Case], name: str) -> Graph:
    """The cases' graphs side by side: tensors prefixed c<i>_, inputs and outputs in case order."""
    tensors: dict[str, Tensor] = {}
    ops: list[Op] = []
    inputs: list[str] = []
    outputs: list[str] = []
    for i, (_, g, _) in enumerate(cases):
        def rn(n: str, p: str = f"c{i}_") -> str:
            return p + n if n else ""
        tensors.update({rn(t.name): clone_tensor(t, name=rn(t.name)) for t in g.tensors.values()})
        ops += [Op(op.kind, tuple(map(rn, op.inputs)), tuple(map(rn, op.outputs)), op.attrs, rn(op.name))
                for op in g.ops]
        inputs += map(rn, g.inputs)
        outputs += map(rn, g.outputs)
    return Graph(tensors, ops, inputs, outputs, name)


def random_inputs(g: Graph, rng: np.random.Generator) -> list[np.ndarray]:
    xs = []
    for n in g.inputs:
        t = g[n]
        if t.dtype == "float32":
            xs.append((rng.normal(0, 60, t.shape) * 0.05).astype(np.float32))
        else:
            xs.append(rng.integers(-128, 128, t.shape).astype(np.int8))
    return xs


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.size != b.size:
        return False
    return bool(np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8)))


def assert_bit_exact(cases: Sequence[Case], name: str, trials: int = 2, seed: int = 0) -> str:
    """TFLM, the reference interpreter and the compiled C agree exactly on every case; returns the C."""
    graph = merge(cases, name)
    data = write_tflite(graph)
    lib = compile_graph(graph, name)
    model = HostModel.build(lib)
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        xs: list[np.ndarray] = []
        for _, g, fixed in cases:
            xs += fixed if fixed is not None else random_inputs(g, rng)
        expected = tflm_run(data, xs, n_outputs=len(graph.outputs))
        ours = reference.run(graph, xs)
        compiled = model.run(xs)
        for (desc, _, _), t, r, c in zip(cases, expected, ours, compiled):
            bad = int((t.reshape(-1).view(np.uint8) != r.reshape(-1).view(np.uint8)).sum()) \
                if t.dtype == r.dtype and t.size == r.size else -1
            assert bad == 0, f"{desc} (trial {trial}): reference != TFLM ({bad} bytes differ)"
            assert same_bits(c, r), f"{desc} (trial {trial}): generated C != reference"
    return lib.files[f"{name}.c"]


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.float32(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def zp(rng: np.random.Generator) -> int:
    return int(rng.integers(-128, 128))


# ------------------------------------------------------------------ binary ops with broadcasting

def broadcast_pair(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Two shapes (ranks up to 6, leading 1s dropped at random) and the shape they broadcast to."""
    rank = int(rng.integers(1, 7))
    out = [int(rng.integers(1, 5)) for _ in range(rank)]
    a, b = list(out), list(out)
    for d in range(rank):
        pattern = rng.integers(0, 4)  # 0, 1: both full; 2: a broadcast; 3: b broadcast
        if pattern == 2:
            a[d] = 1
        elif pattern == 3:
            b[d] = 1
    for s in (a, b):
        while len(s) > 1 and s[0] == 1 and rng.random() < 0.5:
            s.pop(0)
    return tuple(a), tuple(b), tuple(np.broadcast_shapes(tuple(a), tuple(b)))


def binary_cases(kind: str, n: int, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        a, b, out = broadcast_pair(rng) if i % 5 else ((2, 3, 4), (2, 3, 4), (2, 3, 4))
        consts = {}
        if i % 7 == 3:  # a constant operand: a scalar, or a per-channel vector
            b = () if i % 2 else (out[-1],)
            out = tuple(np.broadcast_shapes(a, b))
            consts = {1: rng.integers(-128, 128, b).astype(np.int8)}
        s1, s2 = log_uniform(rng, 1e-3, 4.0), log_uniform(rng, 1e-3, 4.0)
        z1, z2 = zp(rng), zp(rng)
        if kind in ("MAXIMUM", "MINIMUM"):  # both inputs share one quantization (TFLite's converter's rule)
            s2, z2 = s1, z1
            attrs = {}
        else:
            attrs = {"activation": ACTIVATIONS[i % 4]}
        so = log_uniform(rng, 1e-3, 4.0)
        if kind == "MUL" and i % 3:  # an output scale that keeps products in range
            so = float(np.float32(s1 * s2 * rng.uniform(2, 300)))
        g = single(kind, [(a, "int8", s1, z1), (b, "int8", s2, z2)], (out, "int8", so, zp(rng)), attrs, consts)
        cases.append((f"{kind} {a}x{b}->{out} s=({s1:.4g},{s2:.4g},{so:.4g}) {attrs}", g, None))
    return cases


@pytest.mark.parametrize("kind", BINARY)
def test_binary_ops_broadcast_match_tflm(kind: str) -> None:
    assert_bit_exact(binary_cases(kind, 30, seed=BINARY.index(kind)), f"bin_{kind.lower()}")


def test_add_sub_multipliers_are_float64() -> None:
    """Scales where float32 and float64 Prepare arithmetic give different outputs: TFLM uses float64."""
    pairs = [np.repeat(ALL_INT8, 256), np.tile(ALL_INT8, 256)]
    triples = [(2.3216683864593506, 0.3441634774208069, 2.767958164215088),
               (0.0011733282590284944, 0.0019342071609571576, 0.0029721518512815237),
               (1.7531465291976929, 0.15069428086280823, 1.3726004362106323)]
    cases: list[Case] = []
    for kind in ("ADD", "SUB"):
        for s1, s2, so in triples:
            g = single(kind, [((65536,), "int8", s1, 3), ((65536,), "int8", s2, -7)], ((65536,), "int8", so, 5),
                       {"activation": "NONE"})
            cases.append((f"{kind} {s1} {s2} {so}", g, pairs))
            # the float32 variant would be wrong somewhere: the case has teeth
            f32, q = np.float32, add.prepare(g.ops[0], g)
            twice = f32(2) * max(f32(s1), f32(s2))
            alt = [intmath.quantize_multiplier(float(r)) for r in
                   (f32(s1) / twice, f32(s2) / twice, twice / (f32(1 << 20) * f32(so)))]
            q32 = add.AddQuant(q.input1_offset, q.input2_offset, q.output_offset, q.left_shift, *alt[0], *alt[1],
                              *alt[2], q.act_min, q.act_max)
            assert not np.array_equal(add.add_values(q32, *pairs, kind == "SUB"),
                                      add.add_values(q, *pairs, kind == "SUB"))
    assert_bit_exact(cases, "add_sub_f64", trials=1)


# ------------------------------------------------------------------ unary ops: all 256 inputs

def unary_cases(kind: str, n: int, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    shapes = [(256,), (1, 16, 16), (4, 8, 8), (2, 2, 4, 4, 2)]
    for i in range(n):
        shape = shapes[i % len(shapes)]
        si, zi = log_uniform(rng, 1e-3, 8.0), zp(rng)
        so, zo = log_uniform(rng, 1e-3, 8.0), zp(rng)
        attrs: dict = {}
        if kind == "LEAKY_RELU":
            attrs["alpha"] = float(np.float32(rng.choice([0.01, 0.1, 0.2, 0.3, 0.5, 1.0, 1.7, -0.25, -2.0])))
        if kind == "HARD_SWISH":  # TFLite needs input_scale / 128 < output_scale
            so = float(np.float32(si * rng.uniform(0.01, 3.0)))
        out: Spec = ((shape, "float32", None, 0) if kind == "DEQUANTIZE" else (shape, "int8", so, zo))
        g = single(kind, [(shape, "int8", si, zi)], out, attrs)
        x = np.resize(rng.permutation(ALL_INT8), shape).astype(np.int8)
        cases.append((f"{kind} in=({si:.4g},{zi}) out=({so:.4g},{zo}) {attrs}", g, [x]))
    return cases


UNARY = ("RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "QUANTIZE", "DEQUANTIZE")


@pytest.mark.parametrize("kind", UNARY)
def test_unary_ops_all_inputs_match_tflm(kind: str) -> None:
    assert_bit_exact(unary_cases(kind, 40, seed=10 + UNARY.index(kind)), f"un_{kind.lower()}", trials=1)


def test_relu6_ignores_output_quantization() -> None:
    """TFLM's RELU6 clamps raw input values to [zp_in, q(6)] and copies them, whatever the output says."""
    g = single("RELU6", [((256,), "int8", 0.05, -10)], ((256,), "int8", 0.5, 40))
    assert reference.run(g, [ALL_INT8])[0].tolist() == np.clip(ALL_INT8, -10, 110).tolist()
    assert_bit_exact([("RELU6 requantized output", g, [ALL_INT8])], "relu6_out", trials=1)


def test_extreme_parameters_match_tflm() -> None:
    """Wrapping left shifts (scale ratios >= 2^15 for MUL, 2^23 for unary ops) and HARD_SWISH's int16
    rounding with exponents beyond 15, where a saturating or 32-bit implementation would differ."""
    pairs = [np.repeat(ALL_INT8, 256), np.tile(ALL_INT8, 256)]
    full = ((65536,), "int8")
    cases: list[Case] = [
        ("MUL ratio 2^16", single("MUL", [(*full, 1.0, 3), (*full, 1.0, -2)], (*full, 2.0 ** -16, -1),
                                  {"activation": "NONE"}), pairs),
        ("MUL ratio 2^19", single("MUL", [(*full, 0.5, 0), (*full, 2.0, 5)], (*full, 1 / 300000, 0),
                                  {"activation": "RELU"}), pairs)]
    for kind, attrs in (("RELU", {}), ("LEAKY_RELU", {"alpha": 0.5}), ("QUANTIZE", {})):
        cases.append((f"{kind} ratio 2^25", single(kind, [((256,), "int8", 1.0, 3)], ((256,), "int8", 2.0 ** -25, -1),
                                                    attrs), [ALL_INT8]))
    for si, zi, so, zo in ((1e-8, 0, 1e-8, 0), (3e-8, 7, 1e-7, -3), (1e-3, 0, 1.0, 0), (1e-3, 0, 4.0, 0),
                           (0.02, 5, 0.02 / 128 * 1.01, 100), (50.0, 0, 20.0, 0), (500.0, 10, 300.0, -3)):
        g = single("HARD_SWISH", [((256,), "int8", si, zi)], ((256,), "int8", so, zo))
        cases.append((f"HARD_SWISH {si} {so} {hard_swish.prepare(g.ops[0], g)}", g, [ALL_INT8]))
    assert_bit_exact(cases, "extremes", trials=1)


# ------------------------------------------------------------------ QUANTIZE from float32

def tie_values(rng: np.random.Generator, scale: float, n: int) -> np.ndarray:
    """Floats at and next to the rounding ties (k + 1/2) * scale, where float32 vs float64 division and
    the rounding rule matter, plus ordinary values and exact halves of the scale."""
    s = np.float32(scale)
    k = rng.integers(-140, 140, n)
    ties = ((k + 0.5) * np.float64(s)).astype(np.float32)
    up, down = np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))
    plain = (rng.normal(0, 80, n) * np.float64(s)).astype(np.float32)
    return np.concatenate([ties, up, down, plain, np.float32([0.5, -0.5, 1.5, -2.5, 0.0, -0.0]) * s])


def test_quantize_float_rounding_matches_tflm() -> None:
    rng = np.random.default_rng(7)
    cases: list[Case] = []
    disagree = 0
    for i in range(12):
        scale, z = log_uniform(rng, 1e-3, 2.0), zp(rng)
        x = tie_values(rng, scale, 400)
        v64 = x.astype(np.float64) / np.float64(np.float32(scale))
        disagree += int((np.sign(v64) * np.floor(np.abs(v64) + 0.5) != round_half_away_f32(x / np.float32(scale))).sum())
        g = single("QUANTIZE", [((x.size,), "float32", None, 0)], ((x.size,), "int8", scale, z))
        cases.append((f"QUANTIZE f32 scale={scale} zp={z}", g, [x]))
    assert disagree > 100  # float64 division would round these differently: the cases have teeth
    assert_bit_exact(cases, "quant_f32", trials=1)


def test_quantize_uint8_edges_all_inputs_match_tflm() -> None:
    """uint8 -> int8 (a model's uint8 input) and int8 -> uint8 (its uint8 output) over all 256 values; every
    fourth case has equal scales and zero points 128 apart, where TFLM takes its xor-0x80 fast path."""
    rng = np.random.default_rng(23)
    all_u8 = np.arange(256, dtype=np.uint8)
    cases: list[Case] = []
    for i in range(24):
        su, s8 = log_uniform(rng, 1e-3, 8.0), log_uniform(rng, 1e-3, 8.0)
        zu, z8 = int(rng.integers(0, 256)), zp(rng)
        if i % 4 == 0:
            s8, zu = su, z8 + 128
        to_s8 = single("QUANTIZE", [((256,), "uint8", su, zu)], ((256,), "int8", s8, z8))
        to_u8 = single("QUANTIZE", [((256,), "int8", s8, z8)], ((256,), "uint8", su, zu))
        if i % 4 == 0:  # the identity on real values: a flip of the top bit
            assert reference.run(to_s8, [all_u8])[0].tolist() == (all_u8 ^ 0x80).astype(np.int8).tolist()
            assert reference.run(to_u8, [ALL_INT8])[0].tolist() == (ALL_INT8.view(np.uint8) ^ 0x80).tolist()
        cases.append((f"QUANTIZE u8 ({su:.4g},{zu}) -> s8 ({s8:.4g},{z8})", to_s8, [rng.permutation(all_u8)]))
        cases.append((f"QUANTIZE s8 ({s8:.4g},{z8}) -> u8 ({su:.4g},{zu})", to_u8, [rng.permutation(ALL_INT8)]))
    assert_bit_exact(cases, "quant_u8", trials=1)


def test_quantize_int16_and_int32_edges_match_tflm() -> None:
    """int16 model inputs (TFLM's audio models) into int8, and int8 or int16 into int16 or int32 outputs,
    over the int16 extremes and random values; int16 and int32 tensors are symmetric (zero point 0)."""
    rng = np.random.default_rng(29)
    x16 = np.concatenate([np.int16([-32768, -32767, -1, 0, 1, 32766, 32767]),
                          rng.integers(-32768, 32768, 505).astype(np.int16)])
    cases: list[Case] = []
    for i, (src, dst) in enumerate([("int16", "int8"), ("int8", "int16"), ("int16", "int16"), ("int16", "int32"),
                                    ("int8", "int32")] * 4):
        si, so = log_uniform(rng, 1e-5, 1.0), log_uniform(rng, 1e-5, 1.0)
        zi, zo = (zp(rng) if src == "int8" else 0), (zp(rng) if dst == "int8" else 0)
        x = rng.permutation(ALL_INT8) if src == "int8" else x16
        g = single("QUANTIZE", [((x.size,), src, si, zi)], ((x.size,), dst, so, zo))
        cases.append((f"QUANTIZE {src} ({si:.4g},{zi}) -> {dst} ({so:.4g},{zo})", g, [x]))
    assert_bit_exact(cases, "quant_16_32", trials=1)


def test_uint8_inside_a_model_is_refused() -> None:
    g = single("RELU", [((4,), "uint8", 0.1, 128)], ((4,), "uint8", 0.1, 128))
    with pytest.raises(ModelError, match="legacy asymmetric quantization"):
        validate(g)


def test_round_half_away_from_zero() -> None:
    x = np.float32([0.49999997, -0.49999997, 0.5, -0.5, 1.5, 2.5, -2.5, 8388607.5, 8388608.0, -0.0, 3.4e38])
    expected = [0, 0, 1, -1, 2, 3, -3, 8388608, 8388608, 0, 3.4e38]
    assert round_half_away_f32(x).tolist() == np.float32(expected).tolist()


def test_quantize_float_out_of_range_is_defined() -> None:
    """Beyond int32 TFLM's C++ is undefined (x86 gives -128 for +inf); ours saturates, NaN gives -128."""
    x = np.float32([np.inf, -np.inf, np.nan, 3e9, -3e9, 1e30, 127.49, 127.5, -128.5, 1e-45])
    g = single("QUANTIZE", [((x.size,), "float32", None, 0)], ((x.size,), "int8", 1.0, 0))
    expected = [127, -128, -128, 127, -128, 127, 127, 127, -128, 0]
    assert reference.run(g, [x])[0].tolist() == expected
    lib = compile_graph(g, "quant_range")
    assert HostModel.build(lib).run([x])[0].tolist() == expected
    assert run_executable(lib, build_executable(lib, sanitize=True), [x])[0].tolist() == expected


# ------------------------------------------------------------------ GraphBuilder graphs, in place

def builder_chain(seed: int) -> Graph:
    """float input -> QUANTIZE -> RELU -> ADD (broadcast) -> HARD_SWISH -> LEAKY_RELU -> MUL -> RELU -> SUB ->
    MAXIMUM -> RELU6 -> QUANTIZE (int8) -> DEQUANTIZE: most ops can run in place over their input."""
    b = GraphBuilder(seed=seed)
    x = b.input((1, 6, 5, 8), scale=0.04, zero_point=-3, float_io=True)
    y = b.input((8,), scale=0.02, zero_point=10)
    h = b.relu(x)
    h = b.add(h, y, activation="RELU6")
    h = b.hard_swish(h)
    h = b.leaky_relu(h, alpha=0.15)
    h = b.mul(h, b.minimum(y, y))
    h = b.sub(b.relu(h), y)
    h = b.maximum(h, b.quantize(y, 0.03, -4))
    h = b.relu6(h)
    h = b.quantize(h, 0.05, 7)
    return b.build([b.dequantize(h)], name=f"chain{seed}")


def inplace_kinds(source: str) -> set[str]:
    return set(re.findall(r"/\* \d+: (\w+) .*in place \*/", source))


def test_builder_chain_in_place_matches_tflm() -> None:
    inplace: set[str] = set()
    for seed in range(3):  # one graph each: the planner runs ops in place when that packs no worse
        inplace |= inplace_kinds(assert_bit_exact([(f"chain {seed}", builder_chain(seed), None)], f"chain{seed}",
                                                  trials=3, seed=seed))
    assert {"QUANTIZE", "RELU", "ADD", "HARD_SWISH", "LEAKY_RELU", "MUL", "SUB", "RELU6"} <= inplace, inplace


@pytest.mark.parametrize("seed", range(2))
def test_builder_single_ops_match_tflm(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    cases: list[Case] = []
    for kind in (*BINARY, *UNARY):
        b = GraphBuilder(seed=seed)
        a_shape, b_shape, _ = broadcast_pair(rng)
        x = b.input(a_shape, scale=log_uniform(rng, 0.005, 0.5), zero_point=zp(rng))
        if kind in BINARY:
            y = b.input(b_shape, scale=log_uniform(rng, 0.005, 0.5), zero_point=zp(rng))
            out = {"ADD": b.add, "SUB": b.sub, "MUL": b.mul}[kind](x, y, activation=ACTIVATIONS[seed]) \
                if kind in ("ADD", "SUB", "MUL") else (b.maximum if kind == "MAXIMUM" else b.minimum)(x, y)
        else:
            out = {"RELU": b.relu, "RELU6": b.relu6, "HARD_SWISH": b.hard_swish, "DEQUANTIZE": b.dequantize,
                   "LEAKY_RELU": lambda t: b.leaky_relu(t, alpha=0.3),
                   "QUANTIZE": lambda t: b.quantize(t, 0.07, -20)}[kind](x)
        cases.append((f"builder {kind} {a_shape} {b_shape}", b.build([out]), None))
    assert_bit_exact(cases, f"builder{seed}", trials=2, seed=seed)


def test_dev_model_layers_match_tflm() -> None:
    """Every elementwise layer of the reference models, cut out with its real shapes and quantization."""
    cases: list[Case] = []
    for path in dev_models():
        g = read_tflite(path.read_bytes())
        for op in g.ops:
            if op.kind in (*BINARY, *UNARY):
                names = [*op.inputs, *op.outputs]
                part = Graph({n: g[n] for n in names}, [op], [n for n in op.inputs if not g[n].is_const],
                             list(op.outputs))
                cases.append((f"{path.name}: {op.kind} {op.name}", part, None))
    assert len(cases) >= 10
    assert_bit_exact(cases, "dev_layers", trials=2)


# ------------------------------------------------------------------ C specifics

def test_broadcast_strides_merge_dimensions() -> None:
    assert broadcast_strides((1, 5, 4, 3), (1, 5, 4, 3), (3,)) == (
        [1, 1, 1, 1, 20, 3], [0, 0, 0, 0, 3, 1], [0, 0, 0, 0, 0, 1])
    assert broadcast_strides((2, 3, 4), (2, 3, 4), ()) == ([1, 1, 1, 1, 1, 24], [0] * 5 + [1], [0] * 6)
    assert broadcast_strides((2, 3, 4), (2, 1, 4), (3, 1)) == (
        [1, 1, 1, 2, 3, 4], [0, 0, 0, 4, 0, 1], [0, 0, 0, 0, 1, 0])
    assert broadcast_strides((2, 1, 3, 2, 2, 3, 2), (2, 1, 3, 1, 2, 1, 2), (3, 2, 1, 3, 1)) == (
        [2, 3, 2, 2, 3, 2], [12, 4, 0, 2, 0, 1], [0, 6, 3, 0, 1, 0])  # rank 7, one dimension of size 1
    with pytest.raises(ModelError):
        broadcast_strides((2, 3), (2, 3), (2, 2))


def test_sanitized_build_of_every_kernel() -> None:
    """ASan + UBSan over broadcast and flat binary kernels and every unary kernel, in place and not."""
    cases = binary_cases("ADD", 4, 1) + binary_cases("MUL", 4, 2) + binary_cases("MINIMUM", 3, 3)
    cases += [c for k in UNARY for c in unary_cases(k, 2, 4)]
    rng = np.random.default_rng(3)
    for graph in (merge(cases, "sanitized"), builder_chain(5)):
        lib = compile_graph(graph, "sanitized")
        exe = build_executable(lib, sanitize=True)
        parts = cases if graph.name == "sanitized" else [("chain", graph, None)]
        if graph.name != "sanitized":
            assert "in place" in lib.files["sanitized.c"]
        for _ in range(2):
            xs: list[np.ndarray] = []
            for _, g, fixed in parts:
                xs += fixed if fixed is not None else random_inputs(g, rng)
            for i, (c, r) in enumerate(zip(run_executable(lib, exe, xs), reference.run(graph, xs))):
                assert same_bits(c, r), f"{graph.name} output {i}: sanitized C != reference"


def test_unsupported_parameters_raise_model_error() -> None:
    g = single("HARD_SWISH", [((4,), "int8", 0.02, 0)], ((4,), "int8", 0.02 / 256, 0))
    with pytest.raises(ModelError, match="too small"):
        reference.run(g, [np.zeros(4, np.int8)])
    g = single("QUANTIZE", [((4,), "uint8", 0.02, 0)], ((4,), "int16", 0.02, 0))
    with pytest.raises(ModelError, match="uint8 -> int16 is not supported"):
        reference.run(g, [np.zeros(4, np.int8)])
    g = single("ADD", [((4,), "int8", 1.0, 0), ((4,), "int8", 1.0, 0)], ((4,), "int8", 1e-9, 0))
    with pytest.raises(ModelError, match="outside"):
        compile_graph(g, "bad_add")
