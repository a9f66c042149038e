"""SVDF (mcuforge.operators.svdf): int8 with its state kept between invocations, bit-exact with TFLM.

Each graph runs a sequence of inputs through the C library, the numpy reference and TFLM, the state carried
from one input to the next in all three. The C API's reset starts a sequence again."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from mcuforge.engine.reference import initial_state, run
from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_reader import read_tflite
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, Op, QuantParams, Tensor
from mcuforge.ir.passes import validate
from mcuforge.pipeline import compile_model
from mcuforge.targets.host import HostModel
from mcuforge.verify import random_inputs, verify
from oracle import assert_qemu_equals_reference, assert_sanitized_equals_reference


def _q(scale: float, zero_point: int = 0) -> QuantParams:
    return QuantParams.per_tensor(float(np.float32(scale)), int(zero_point))


def svdf_graph(seed: int, batches: int = 1, inputs: int = 12, units: int = 4, rank: int = 2, memory: int = 5,
               bias: bool = True, state_scale: float | None = None, state_zp: int | None = None,
               state_dtype: str = "int8") -> Graph:
    rng = np.random.default_rng(seed)
    filters = units * rank
    s_state = float(np.float32(state_scale or rng.uniform(0.05, 0.5)))
    s_wt = float(np.float32(rng.uniform(0.003, 0.02)))
    zp = (int(rng.integers(-60, 60)) if state_dtype == "int8" else 0) if state_zp is None else state_zp
    wt_max = 127 if state_dtype == "int8" else 2000
    t = {"x": Tensor("x", (batches, inputs), "int8", _q(rng.uniform(0.01, 0.1), rng.integers(-20, 20))),
         "wf": Tensor("wf", (filters, inputs), "int8", _q(rng.uniform(0.003, 0.02)),
                      rng.integers(-127, 128, (filters, inputs)).astype(np.int8)),
         "wt": Tensor("wt", (filters, memory), state_dtype, _q(s_wt),
                      rng.integers(-wt_max, wt_max + 1, (filters, memory)).astype(state_dtype)),
         "b": Tensor("b", (units,), "int32", _q(s_state * s_wt), rng.integers(-2000, 2000, units).astype(np.int32)),
         "state": Tensor("state", (batches, filters * memory), state_dtype, _q(s_state, zp), variable=True),
         "y": Tensor("y", (batches, units), "int8", _q(rng.uniform(0.05, 0.3), rng.integers(-30, 30)))}
    op = Op("SVDF", ("x", "wf", "wt", "b" if bias else "", "state"), ("y",), {"rank": rank})
    return Graph(t, (op,), ("x",), ("y",), name="svdf")


CASES = [dict(), dict(batches=2), dict(rank=1, memory=8, units=3), dict(inputs=40, memory=2),
         dict(rank=3, units=2, memory=16, batches=3),
         # every newest value clamps to -128 or 127 before the zero point 100 is added: half of them wrap
         dict(state_scale=1e-4, state_zp=100),
         # TFLM's other integer SVDF: int16 time weights and state
         dict(state_dtype="int16"), dict(state_dtype="int16", batches=2, rank=3, units=2, memory=7),
         dict(state_dtype="int16", state_scale=2e-6)]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_svdf_sequence_c_equals_reference_and_tflm(case: int) -> None:
    g = svdf_graph(case, **CASES[case])
    result = verify(g, samples=10, tflite_bytes=write_tflite(g))
    assert result.tflm_checked and result.samples == 10
    assert result.ok, result.mismatches[:3]


def test_svdf_without_bias_c_equals_reference() -> None:
    """The bias is optional in the schema, but TFLM's Prepare reads its scale unguarded and crashes without
    one; here the C is checked against the reference only."""
    g = svdf_graph(11, bias=False, inputs=20, memory=3)
    result = verify(g, samples=8, use_tflm=False)
    assert result.ok and result.samples == 8, result.mismatches[:3]


def test_state_carries_over_and_reset_starts_again() -> None:
    g = svdf_graph(7, memory=4)
    xs = random_inputs(g, 6, seed=3)
    state = initial_state(g)
    expected = [run(g, x, state)[0] for x in xs]
    assert not np.array_equal(expected[0], expected[3]) or not np.array_equal(xs[0][0], xs[3][0])
    fresh = run(g, xs[5])[0]  # the last input alone, from a cleared state
    compiled = compile_model(g)
    assert compiled.plan.state_bytes == 32 and compiled.report.sram_bytes == compiled.plan.arena_bytes + 32
    model = HostModel.build(compiled.lib)
    assert [model.run(x)[0].tolist() for x in xs] == [e.tolist() for e in expected]
    getattr(model._dll, "svdf_reset")()
    assert model.run(xs[5])[0].tolist() == fresh.tolist()
    header = compiled.lib.files["svdf.h"]
    assert "void svdf_reset(void);" in header and "#define SVDF_STATE_BYTES 32" in header
    assert ctypes.sizeof(ctypes.c_int) == 4  # the reset takes no arguments and returns nothing


def test_svdf_round_trips_through_tflite() -> None:
    g = svdf_graph(2)
    back = read_tflite(write_tflite(g), "svdf")
    op = back.ops[0]
    assert op.kind == "SVDF" and op.attrs["rank"] == 2 and back[op.inputs[4]].variable


def test_svdf_refusals_name_the_reason() -> None:
    g = svdf_graph(1)
    t = dict(g.tensors)
    t["b"] = Tensor("b", (4,), "int32", _q(0.5), t["b"].data)
    with pytest.raises(ModelError, match="bias scale"):
        read_tflite(write_tflite(Graph(t, g.ops, g.inputs, g.outputs, "svdf")), "svdf")
    t = dict(g.tensors)
    t["state"] = Tensor("state", t["state"].shape, "int8", t["state"].quant)  # not a state tensor
    with pytest.raises(ModelError, match="'state'"):
        validate(Graph(t, g.ops, g.inputs, g.outputs, "svdf"))


def test_int16_state_svdf_in_qemu_and_under_sanitizers(toolchain) -> None:
    g = svdf_graph(21, state_dtype="int16", batches=2)
    assert_qemu_equals_reference(g, samples=4)
    assert_sanitized_equals_reference(g, samples=4)
