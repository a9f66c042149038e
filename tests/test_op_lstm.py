"""UNIDIRECTIONAL_SEQUENCE_LSTM (mcuforge.operators.lstm): int8 with an int16 cell, bit-exact with TFLM.

The int16 sigmoid and tanh are checked against TFLM's own int16 LOGISTIC and TANH over every int16
input (which also checks the measured sigmoid table); built LSTMs run sequences through the C library,
the reference and TFLM with the hidden and cell states carried between invocations."""
from __future__ import annotations

import numpy as np
import pytest

from mcuforge.engine.reference import initial_state, run
from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_reader import read_tflite
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, Op, QuantParams, Tensor
from mcuforge.ir.passes import validate
from mcuforge.operators import lstm
from mcuforge.pipeline import compile_model
from mcuforge.targets.host import HostModel
from mcuforge.verify import random_inputs, verify
from oracle import tflm_run

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def _q(scale: float, zero_point: int = 0) -> QuantParams:
    return QuantParams.per_tensor(float(np.float32(scale)), int(zero_point))


@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH"])
def test_int16_sigmoid_and_tanh_equal_tflm_on_every_input(kind: str) -> None:
    """Input scale 2^-12 makes TFLM take the power-of-two path the LSTM uses (multiplier 3, no shift)."""
    t = {"x": Tensor("x", ALL_INT16.shape, "int16", _q(2.0 ** -12)),
         "y": Tensor("y", ALL_INT16.shape, "int16", _q(1 / 32768))}
    oracle = tflm_run(write_tflite(Graph(t, (Op(kind, ("x",), ("y",)),), ("x",), ("y",))), [ALL_INT16])[0]
    ours = lstm.sigmoid16(ALL_INT16) if kind == "LOGISTIC" else lstm.tanh16(ALL_INT16)
    assert np.array_equal(ours, oracle.reshape(-1))


def lstm_graph(seed: int, batches: int = 1, steps: int = 5, inputs: int = 6, cells: int = 4,
               time_major: bool = False, cell_clip: float = 0.0, cell_scale: float = 2.0 ** -12,
               hidden_zp: int | None = None) -> Graph:
    rng = np.random.default_rng(seed)
    x_shape = (steps, batches, inputs) if time_major else (batches, steps, inputs)
    y_shape = (steps, batches, cells) if time_major else (batches, steps, cells)
    s_x, s_h = float(rng.uniform(0.004, 0.02)), float(rng.uniform(0.004, 0.02))
    zp_h = int(rng.integers(-20, 20)) if hidden_zp is None else hidden_zp
    t = {"x": Tensor("x", x_shape, "int8", _q(s_x, int(rng.integers(-128, 0)))),
         "h": Tensor("h", (batches, cells), "int8", _q(s_h, zp_h), variable=True),
         "c": Tensor("c", (batches, cells), "int16", _q(cell_scale), variable=True),
         "y": Tensor("y", y_shape, "int8", _q(s_h, zp_h))}
    names = ["x"]
    for g, cols in [(g, inputs) for g in lstm.GATES] + [(g, cells) for g in lstm.GATES]:
        name = f"w_{len(names)}"
        t[name] = Tensor(name, (cells, cols), "int8", _q(rng.uniform(0.004, 0.02)),
                         rng.integers(-127, 128, (cells, cols)).astype(np.int8))
        names.append(name)
    names += ["", "", ""]
    for g in lstm.GATES:
        name = f"b_{g}"
        scale = float(np.float32(s_x)) * float(t[names[1 + lstm.GATES.index(g)]].quant.s)
        t[name] = Tensor(name, (cells,), "int32", _q(scale), rng.integers(-3000, 3000, cells).astype(np.int32))
        names.append(name)
    names += ["", "", "h", "c", "", "", "", ""]
    op = Op("UNIDIRECTIONAL_SEQUENCE_LSTM", tuple(names), ("y",), {"time_major": time_major, "cell_clip": cell_clip})
    return Graph(t, (op,), ("x",), ("y",), name="lstm")


CASES = [dict(), dict(batches=2, steps=3), dict(time_major=True, batches=3, steps=4),
         dict(cell_clip=0.5, cells=7, inputs=3), dict(cell_scale=2.0 ** -11, steps=8), dict(cell_scale=2.0 ** -10),
         dict(hidden_zp=-128, cells=12, inputs=20)]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_lstm_sequence_c_equals_reference_and_tflm(case: int) -> None:
    g = lstm_graph(case, **CASES[case])
    result = verify(g, samples=8, tflite_bytes=write_tflite(g))
    assert result.tflm_checked and result.samples == 8
    assert result.ok, result.mismatches[:3]


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_lstm_states_equal_tflm_after_every_invocation(seed: int) -> None:
    """The hidden and cell states themselves, read from TFLM after each of 40 one-step invocations. With
    the gates' output scale 0.00003051757f (a literal in some TFLM sources) instead of 2^-15, the cell state
    of these sequences differs from TFLM's within 31 steps, before any output does."""
    import tflite
    from tflite_micro import runtime

    g = lstm_graph(seed, batches=2, steps=1)
    data = write_tflite(g)
    it = runtime.Interpreter.from_bytes(data, arena_size=1 << 20,
                                        intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    sub = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0)
    index = {sub.Tensors(i).Name().decode(): i for i in range(sub.TensorsLength())}
    state = initial_state(g)
    for k, xs in enumerate(random_inputs(g, 40, seed=seed)):
        run(g, xs, state)
        it.set_input(xs[0], 0)
        it.invoke()
        for name in ("h", "c"):
            oracle = np.asarray(it.GetTensor(index[name], 0)["tensor_data"]).reshape(state[name].shape)
            assert np.array_equal(oracle, state[name]), (k, name)


def test_lstm_state_is_kept_and_reset() -> None:
    g = lstm_graph(3, steps=2)
    xs = random_inputs(g, 3, seed=1)
    compiled = compile_model(g)
    assert compiled.plan.state_bytes == 4 + 8  # the int8 hidden and the int16 cell state, 4 cells each
    model = HostModel.build(compiled.lib)
    first = [model.run(x)[0].tolist() for x in xs]
    again = model.run(xs[0])[0].tolist()  # the state moved on: the same input gives another output
    getattr(model._dll, "lstm_reset")()
    assert model.run(xs[0])[0].tolist() == first[0] and again != first[0]


def test_lstm_round_trips_and_refusals() -> None:
    g = lstm_graph(4)
    back = read_tflite(write_tflite(g), "lstm")
    assert back.ops[0].kind == "UNIDIRECTIONAL_SEQUENCE_LSTM" and back[back.ops[0].inputs[19]].variable
    t = dict(g.tensors)
    t["c"] = Tensor("c", (1, 4), "int16", _q(0.0003), variable=True)
    with pytest.raises(ModelError, match="power of two"):
        validate(Graph(t, g.ops, g.inputs, g.outputs, "lstm"))
    names = list(g.ops[0].inputs)
    names[9] = "b_input"  # a peephole weight
    with pytest.raises(ModelError, match="peephole"):
        validate(Graph(g.tensors, (g.ops[0].with_(inputs=tuple(names)),), g.inputs, g.outputs, "lstm"))
