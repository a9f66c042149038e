"""SOFTMAX, LOG_SOFTMAX, LOGISTIC and TANH: reference == TFLM == generated C, bit for bit.

LOGISTIC and TANH are checked exhaustively (all 256 int8 inputs) for many input (scale, zero point)
pairs, through both C paths (lookup table and fixed-point kernel). SOFTMAX and LOG_SOFTMAX are checked on
random rows of many shapes, scales and betas (tiny to capped), plus constructed rows (all equal, one hot,
ties at the extremes). The fixed-point library's C twin is checked against numpy function by function
on random raw values, under the sanitizers.
"""
from __future__ import annotations

import math
import struct
import subprocess
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest

from mcuforge.engine import compile_graph, reference
from mcuforge.engine.codegen import with_dependencies
from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_reader import read_tflite
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, QuantParams, clone_tensor
from mcuforge.operators import logistic_tanh
from mcuforge.models.builder import GraphBuilder
from mcuforge.quant import fixedpoint as fp
from mcuforge.targets.host import SANITIZE, WARNINGS, HostModel, build_executable, compiler, run_executable

from netbuilder import merge
from oracle import dev_models, tflm_run

Case = tuple[str, Graph, np.ndarray | None]  # (description, single-op graph, fixed input or None)
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ------------------------------------------------------------------ harness

def case_inputs(cases: Sequence[Case], rng: np.random.Generator) -> list[np.ndarray]:
    xs = []
    for _, g, fixed in cases:
        shape = g[g.inputs[0]].shape
        xs.append(fixed.reshape(shape) if fixed is not None else _rows(rng, shape))
    return xs


def _rows(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random int8 values, each row drawn from a random window (narrow windows give close competitors)."""
    depth = shape[-1]
    outer = int(np.prod(shape[:-1], dtype=np.int64))
    out = np.empty((outer, depth), np.int8)
    for r in range(outer):
        width = int(rng.choice([1, 2, 4, 16, 64, 256]))
        lo = int(rng.integers(-128, 129 - min(width, 256)))
        out[r] = rng.integers(lo, min(lo + width, 128), depth)
    return out.reshape(shape)


def assert_bit_exact(cases: Sequence[Case], name: str, trials: int = 2, seed: int = 0) -> None:
    """TFLM, the reference interpreter and the compiled C agree exactly on every case's output."""
    graph = merge(cases, name)
    data = write_tflite(graph)
    model = HostModel.build(compile_graph(graph, name))
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        xs = case_inputs(cases, rng)
        expected = tflm_run(data, xs, n_outputs=len(graph.outputs))
        ours = reference.run(graph, xs)
        compiled = model.run(xs)
        for (desc, _, _), t, r, c in zip(cases, expected, ours, compiled):
            assert r.dtype == t.dtype and r.shape == tuple(t.shape), f"{desc}: {r.dtype}{r.shape} vs {t.dtype}{t.shape}"
            bad = int((t != r).sum())
            assert bad == 0, f"{desc} (trial {trial}): reference != TFLM at {bad} of {t.size} values"
            assert np.array_equal(c, r), f"{desc} (trial {trial}): generated C != reference"


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(math.log(lo), math.log(hi))))


# ------------------------------------------------------------------ LOGISTIC and TANH: all 256 inputs

ALL_INT8 = np.arange(-128, 128, dtype=np.int8)


def _nonlinearity_cases(kind: str, n: int, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    scales = [log_uniform(rng, 1e-4, 0.5) for _ in range(n - 8)]
    scales += [2.0 ** -7, 2.0 ** -4, 1.0 / 128, 1.0 / 255, 0.1, 1.0, 8.0, 100.0]  # powers of 2 and saturation
    cases = []
    for i, scale in enumerate(scales):
        zp = int(rng.integers(-128, 128)) if i % 4 else 0
        b = GraphBuilder(seed=i)
        x = b.input((1, 256), scale=scale, zero_point=zp)
        y = b.logistic(x) if kind == "LOGISTIC" else b.tanh(x)
        cases.append((f"{kind} scale={scale:.6g} zp={zp}", b.build([y]), ALL_INT8))
    return cases


@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH"])
def test_nonlinearity_all_inputs_match_tflm(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = _nonlinearity_cases(kind, 64, seed=1 if kind == "LOGISTIC" else 2)
    assert_bit_exact(cases, f"{kind.lower()}_lut", trials=1)  # 256 elements: the table lookup
    monkeypatch.setattr(logistic_tanh, "LUT_MIN_SIZE", 1 << 30)
    assert_bit_exact(cases, f"{kind.lower()}_fixed", trials=1)  # the fixed-point C kernel


def _with_output_quant(g: Graph, scale: float, zp: int) -> Graph:
    y = g[g.outputs[0]]
    return g.with_ops(g.ops, {**g.tensors, y.name: clone_tensor(y, quant=QuantParams.per_tensor(scale, zp))})


def test_tflm_ignores_output_scale_of_tanh_and_logistic() -> None:
    """TFLM reads TANH's output as 1/128 whatever it says, and LOGISTIC's as 1/256 (zero point -128)."""
    cases = []
    for kind, scale, zp in (("TANH", 0.05, 10), ("TANH", 1 / 256, -128), ("LOGISTIC", 0.01, -128)):
        (desc, g, x), = _nonlinearity_cases(kind, 9, seed=3)[:1]
        cases.append((f"{desc} out=({scale}, {zp})", _with_output_quant(g, scale, zp), x))
    assert_bit_exact(cases, "ignored_output_quant", trials=1)


def test_logistic_output_zero_point_is_checked() -> None:
    (_, g, x), = _nonlinearity_cases("LOGISTIC", 9, seed=4)[:1]
    with pytest.raises(ModelError, match="zero point -128"):
        reference.run(_with_output_quant(g, 1 / 256, 0), [x.reshape(1, 256)])


# ------------------------------------------------------------------ SOFTMAX and LOG_SOFTMAX

def _shape(rng: np.random.Generator) -> tuple[int, ...]:
    rank = int(rng.integers(1, 5))
    depth = int(rng.choice([1, 2, 3, 5, 10, 12, 37, 100, 300]))
    return tuple(int(v) for v in rng.integers(1, 4, rank - 1)) + (depth,)


def _softmax_cases(kind: str, n: int, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        scale = log_uniform(rng, 1e-3, 1.0)
        beta = 1.0 if (kind == "LOG_SOFTMAX" or i % 3 == 0) else log_uniform(rng, 0.02, 2000.0)
        if beta * scale * 2**26 <= 1.0:
            beta = 1.0
        shape = _shape(rng)
        b = GraphBuilder(seed=i)
        x = b.input(shape, scale=scale, zero_point=int(rng.integers(-128, 128)))
        y = b.softmax(x, beta=beta) if kind == "SOFTMAX" else b.log_softmax(x)
        cases.append((f"{kind} {shape} scale={scale:.6g} beta={beta:.6g}", b.build([y]), None))
    return cases


def _special_rows(kind: str) -> list[Case]:
    """Rows that stress ties, saturation and the diff_min cut-off, at extreme scales and betas."""
    rows = np.array([[0] * 8, [127] * 8, [-128] * 8, [127] + [-128] * 7, [-128] + [127] * 7,
                     [127, 127, 126, 126, -128, 0, 5, 127], [-128, -127, -128, -127, -126, -128, -128, -127],
                     [100, 99, 98, 97, 96, 95, 94, 93]], np.int8)
    settings = [(1.0, 1.0), (0.5, 64.0), (1.0, 16.0), (1.0, 1e6), (2.0 ** -20, 1.0), (2.0 ** -25, 1.0),
                (0.1, 1e-5), (1e-3, 0.02), (0.0039215689, 1.0), (0.05, 0.5)]
    cases = []
    for scale, beta in settings:
        if kind == "LOG_SOFTMAX" and beta != 1.0:
            continue
        b = GraphBuilder(seed=0)
        x = b.input(rows.shape, scale=scale, zero_point=0)
        y = b.softmax(x, beta=beta) if kind == "SOFTMAX" else b.log_softmax(x)
        cases.append((f"{kind} special rows scale={scale:g} beta={beta:g}", b.build([y]), rows))
    return cases


@pytest.mark.parametrize("kind", ["SOFTMAX", "LOG_SOFTMAX"])
def test_softmax_random_rows_match_tflm(kind: str) -> None:
    cases = _softmax_cases(kind, 60, seed=5 if kind == "SOFTMAX" else 6) + _special_rows(kind)
    assert_bit_exact(cases, kind.lower(), trials=3)


def test_softmax_int16_output_matches_tflm() -> None:
    rng = np.random.default_rng(7)
    cases = []
    for i in range(12):
        b = GraphBuilder(seed=i)
        shape = _shape(rng)
        x = b.input(shape, scale=log_uniform(rng, 1e-3, 1.0), zero_point=int(rng.integers(-128, 128)))
        y = b.softmax(x, beta=log_uniform(rng, 0.1, 10.0))
        b.tensors[y] = clone_tensor(b.tensors[y], dtype="int16", quant=QuantParams.per_tensor(1 / 65536, -32768))
        cases.append((f"SOFTMAX int16 {shape}", b.build([y]), None))
    assert_bit_exact(cases, "softmax_s16", trials=2)


def test_softmax_rows_of_512_equal_values_round_to_zero() -> None:
    """Past 511 equal maxima every int8 probability is below 2^-9; TFLM aborts there (its exponent check),
    we output -128 (probability 0) in the reference and the C."""
    b = GraphBuilder(seed=0)
    x = b.input((2, 600), scale=0.1, zero_point=0)
    g = b.build([b.softmax(x)])
    xs = [np.concatenate([np.zeros((1, 600), np.int8), np.full((1, 600), -128, np.int8)])]
    xs[0][1, :511] = 127
    ours = reference.run(g, xs)[0]
    assert (ours[0] == -128).all() and (ours[1, :511] == -127).all() and (ours[1, 511:] == -128).all()
    assert np.array_equal(HostModel.build(compile_graph(g, "softmax_512")).run(xs)[0], ours)


def test_softmax_quantization_errors_are_clear() -> None:
    b = GraphBuilder(seed=0)
    x = b.input((1, 4), scale=1e-9, zero_point=0)
    g = b.build([b.softmax(x)])
    with pytest.raises(ModelError, match="too small"):
        reference.run(g, [np.zeros((1, 4), np.int8)])
    for kind in ("SOFTMAX", "LOG_SOFTMAX"):
        b = GraphBuilder(seed=0)
        x = b.input((1, 4), scale=0.1, zero_point=0)
        g = _with_output_quant(b.build([b.softmax(x) if kind == "SOFTMAX" else b.log_softmax(x)]), 1 / 255, -128)
        assert [op.kind for op in g.ops] == [kind]
        with pytest.raises(ModelError, match=f"{kind}.*scale"):
            reference.run(g, [np.zeros((1, 4), np.int8)])


def test_dev_model_softmax_layers_match_tflm() -> None:
    """The softmax-family layers of the dev models (MLPerf Tiny and others), cut out with their own
    quantization and beta and run on many rows at once: every pair of int8 values for 2-way outputs,
    16384 random rows otherwise."""
    cases: list[Case] = []
    rng = np.random.default_rng(15)
    for path in dev_models():
        g = read_tflite(path.read_bytes(), path.stem)
        for op in g.ops:
            if op.kind not in ("SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH"):
                continue
            x, y = g[op.inputs[0]], g[op.outputs[0]]
            depth = x.shape[-1]
            if depth == 2:
                rows = np.stack(np.meshgrid(ALL_INT8, ALL_INT8), axis=-1).reshape(-1, 2)
            else:
                rows = _rows(rng, (16384, depth))
            single = Graph({x.name: clone_tensor(x, shape=rows.shape, data=None),
                            y.name: clone_tensor(y, shape=rows.shape)}, [op], [x.name], [y.name], path.stem)
            cases.append((f"{path.stem}: {op.kind} {op.name} {x.shape}", single, rows))
    if not cases:
        pytest.skip("no dev model has a softmax-family layer")
    assert_bit_exact(cases, "dev_softmax", trials=1)


# ------------------------------------------------------------------ sanitizers

def test_kernels_clean_under_sanitizers(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = (_softmax_cases("SOFTMAX", 6, 8) + _softmax_cases("LOG_SOFTMAX", 6, 9) + _special_rows("SOFTMAX")[:4]
             + _nonlinearity_cases("LOGISTIC", 9, 10)[:3] + _nonlinearity_cases("TANH", 9, 11)[:3])
    graph = merge(cases, "softmax_asan")
    rng = np.random.default_rng(12)
    xs = case_inputs(cases, rng)
    expected = reference.run(graph, xs)
    for lut in (256, 1 << 30):
        monkeypatch.setattr(logistic_tanh, "LUT_MIN_SIZE", lut)
        lib = compile_graph(graph, "softmax_asan")
        got = run_executable(lib, build_executable(lib, sanitize=True), xs)
        for (desc, _, _), e, c in zip(cases, expected, got):
            assert np.array_equal(e, c), f"{desc}: sanitizer build != reference"


# ------------------------------------------------------------------ the fixed-point library, C vs numpy

_FP_HARNESS = r"""
#include <stdio.h>
#include "mcu_fixedpoint.h"

int main(void) {
    int32_t head[4];
    while (fread(head, sizeof head, 1, stdin) == 1) {
        int32_t i, x, out[2];
        for (i = 0; i < head[3]; ++i) {
            if (fread(&x, sizeof x, 1, stdin) != 1) return 2;
            out[1] = 0;
            switch (head[0]) {
            case 0: out[0] = mcu_fp_exp_on_negative_values(x, head[1]); break;
            case 1: out[0] = mcu_fp_one_over_one_plus_x_for_x_in_0_1(x); break;
            case 2: out[0] = mcu_fp_one_minus_x_over_one_plus_x_for_x_in_0_1(x); break;
            case 3: out[0] = mcu_fp_logistic(x, head[1]); break;
            case 4: out[0] = mcu_fp_tanh(x, head[1]); break;
            case 5: out[0] = mcu_fp_log_x_for_x_greater_than_or_equal_to_1(x, head[1], head[2]); break;
            case 6: out[0] = mcu_fp_reciprocal((uint32_t)x, head[1], &out[1]); break;
            case 7: out[0] = mcu_fp_mul_pot(x, head[1]); break;
            case 8: out[0] = mcu_fp_rounding_half_sum(x, head[1]); break;
            default: return 3;
            }
            fwrite(out, sizeof out, 1, stdout);
        }
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def fp_harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fixedpoint")
    runtime = resources.files("mcuforge.engine.runtime")
    for header in with_dependencies({"mcu_fixedpoint.h"}):
        (folder / header).write_text(runtime.joinpath(header).read_text())
    (folder / "main.c").write_text(_FP_HARNESS)
    cmd = [compiler(), *WARNINGS, "-O1", *SANITIZE, "-I.", "-o", "fp", "main.c"]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return folder / "fp"


def _edge_and_random(rng: np.random.Generator, lo: int, hi: int, n: int = 3000) -> np.ndarray:
    edges = [lo, lo + 1, hi - 1, hi, (lo + hi) // 2] + [v for k in range(31) for v in (1 << k, -(1 << k))]
    edges = [v for v in edges if lo <= v <= hi]
    # log-uniform magnitudes cover every bit length, uniform ones the bulk
    mags = np.exp(rng.uniform(0, math.log(2.0**31), n)).astype(np.int64)
    signed = np.where(rng.random(n) < 0.5, mags, -mags)
    uniform = rng.integers(lo, hi, n, endpoint=True)
    return np.clip(np.concatenate([edges, signed, uniform]), lo, hi).astype(np.int64)


def _run_c(exe: Path, fn: int, params: tuple[int, int], xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    payload = struct.pack("<4i", fn, params[0], params[1], len(xs)) + xs.astype("<i4").tobytes()
    proc = subprocess.run([str(exe)], input=payload, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    out = np.frombuffer(proc.stdout, "<i4").reshape(-1, 2).astype(np.int64)
    return out[:, 0], out[:, 1]


FP_FUNCTIONS: list[tuple[str, int, tuple[int, int], tuple[int, int], Callable[[np.ndarray], np.ndarray]]] = [
    *[(f"exp_on_negative_values Q{ib}", 0, (ib, 0), (INT32_MIN, 0),
       lambda a, ib=ib: fp.exp_on_negative_values(a, ib)) for ib in (1, 2, 4, 5, 6, 8)],
    ("one_over_one_plus_x", 1, (0, 0), (0, INT32_MAX), fp.one_over_one_plus_x_for_x_in_0_1),
    ("one_minus_x_over_one_plus_x", 2, (0, 0), (0, INT32_MAX), fp.one_minus_x_over_one_plus_x_for_x_in_0_1),
    *[(f"logistic Q{ib}", 3, (ib, 0), (INT32_MIN + 1, INT32_MAX), lambda a, ib=ib: fp.logistic(a, ib))
      for ib in (0, 3, 4, 5)],
    *[(f"tanh Q{ib}", 4, (ib, 0), (INT32_MIN + 1, INT32_MAX), lambda a, ib=ib: fp.tanh(a, ib))
      for ib in (0, 3, 4, 5)],
    ("log Q12 -> Q5", 5, (12, 5), (1 << 19, INT32_MAX),
     lambda a: fp.log_x_for_x_greater_than_or_equal_to_1(a, 12, 5)),
    ("log Q6 -> Q3", 5, (6, 3), (1 << 25, INT32_MAX), lambda a: fp.log_x_for_x_greater_than_or_equal_to_1(a, 6, 3)),
    *[(f"mul_pot {e}", 7, (e, 0), (INT32_MIN, INT32_MAX), lambda a, e=e: fp.saturating_rounding_multiply_by_pot(a, e))
      for e in (-31, -12, -1, 1, 2, 25, 31)],
    ("rounding_half_sum", 8, (INT32_MAX, 0), (INT32_MIN, INT32_MAX), lambda a: fp.rounding_half_sum(a, INT32_MAX)),
]


@pytest.mark.parametrize("desc,fn,params,domain,numpy_fn", FP_FUNCTIONS, ids=[f[0] for f in FP_FUNCTIONS])
def test_fixedpoint_c_equals_numpy(fp_harness: Path, desc: str, fn: int, params: tuple[int, int],
                                   domain: tuple[int, int], numpy_fn: Callable[[np.ndarray], np.ndarray]) -> None:
    xs = _edge_and_random(np.random.default_rng(fn * 100 + params[0]), *domain)
    got, _ = _run_c(fp_harness, fn, params, xs)
    want = numpy_fn(xs)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, f"{desc}: C != numpy at x={xs[bad[:5]].tolist()}: {got[bad[:5]].tolist()} vs {want[bad[:5]].tolist()}"


def test_reciprocal_c_equals_numpy(fp_harness: Path) -> None:
    xs = _edge_and_random(np.random.default_rng(13), 1, INT32_MAX)
    got, bits = _run_c(fp_harness, 6, (12, 0), xs)
    want, want_bits = fp.reciprocal(xs, 12)
    assert np.array_equal(got, want) and np.array_equal(bits, want_bits)


# ------------------------------------------------------------------ the numpy library against real math

def test_fixedpoint_functions_approximate_their_math() -> None:
    """Not a bit-exactness check: a guard that each function computes what its name says."""
    rng = np.random.default_rng(14)
    q5 = rng.integers(-(31 << 26), 1, 2000)
    assert np.allclose(fp.exp_on_negative_values(q5, 5) / 2**31, np.exp(q5 / 2**26), atol=2e-8)
    q0 = rng.integers(0, INT32_MAX, 2000)
    assert np.allclose(fp.one_over_one_plus_x_for_x_in_0_1(q0) / 2**31, 1 / (1 + q0 / 2**31), atol=2e-9)
    assert np.allclose(fp.one_minus_x_over_one_plus_x_for_x_in_0_1(q0) / 2**31, (1 - q0 / 2**31) / (1 + q0 / 2**31),
                       atol=2e-8)
    q4 = rng.integers(-(15 << 27), 15 << 27, 2000)
    assert np.allclose(fp.logistic(q4, 4) / 2**31, 1 / (1 + np.exp(-q4 / 2**27)), atol=2e-7)
    assert np.allclose(fp.tanh(q4, 4) / 2**31, np.tanh(q4 / 2**27), atol=5e-7)  # 1 - e near e = 1
    q12 = rng.integers(1 << 19, INT32_MAX, 2000)
    assert np.allclose(fp.log_x_for_x_greater_than_or_equal_to_1(q12, 12, 5) / 2**26, np.log(q12 / 2**19), atol=1e-7)
    recip, bits = fp.reciprocal(q12, 12)
    assert np.allclose(recip / 2.0 ** (31 + bits), 2**19 / q12, rtol=1e-8)
