"""The .tflite writer and the graph builder, checked against the TFLM interpreter (the oracle)."""
from __future__ import annotations

import importlib.util
import pathlib
from typing import Callable

import numpy as np
import pytest
import tflite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import INTERNAL_KINDS, SPECS, Graph, Op
from mcuforge.models import GraphBuilder, tiny_mobilenet

runtime = pytest.importorskip("tflite_micro").runtime

Case = Callable[[GraphBuilder, str], str]  # (builder, a 1x8x8x4 int8 input) -> output name


def random_inputs(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for name in graph.inputs:
        t = graph[name]
        if t.dtype == "float32":
            arrays.append(rng.uniform(-2.0, 2.0, t.shape).astype(np.float32))
        else:
            arrays.append(rng.integers(-128, 128, t.shape).astype(np.int8))
    return arrays


def run_tflm(graph: Graph, inputs: list[np.ndarray] | None = None) -> list[np.ndarray]:
    it = runtime.Interpreter.from_bytes(write_tflite(graph), arena_size=1 << 20)
    for i, x in enumerate(inputs if inputs is not None else random_inputs(graph)):
        it.set_input(x, i)
    it.invoke()
    return [it.get_output(i) for i in range(len(graph.outputs))]


def single_op(case: Case, shape: tuple[int, ...] = (1, 8, 8, 4), float_io: bool = False) -> Graph:
    b = GraphBuilder(seed=1)
    x = b.input(shape, scale=0.05, zero_point=-3, float_io=float_io)
    return b.build([case(b, x)], name="single_op")


def check_outputs(graph: Graph, outputs: list[np.ndarray]) -> None:
    for name, out in zip(graph.outputs, outputs):
        t = graph[name]
        assert out.shape == t.shape, name
        assert out.dtype == np.dtype(t.dtype), name


# one case per canonical op kind (each covers what the kind's writer mapping needs)
CASES: dict[str, Case] = {
    "CONV_2D": lambda b, x: b.conv2d(x, 6, kernel=3, padding="same", activation="RELU6"),
    "DEPTHWISE_CONV_2D": lambda b, x: b.depthwise_conv2d(x, kernel=3, stride=2, padding="same", multiplier=2),
    "FULLY_CONNECTED": lambda b, x: b.fully_connected(b.reshape(x, (1, 256)), 10, activation="RELU"),
    "AVERAGE_POOL_2D": lambda b, x: b.avg_pool(x, filter=3, stride=2, padding="same"),
    "MAX_POOL_2D": lambda b, x: b.max_pool(x, filter=2, stride=2),
    "MEAN": lambda b, x: b.mean(x, axes=(1, 2), keep_dims=True),
    "REDUCE_MAX": lambda b, x: b.reduce_max(x, axes=(1, 2), keep_dims=False),
    "PAD": lambda b, x: b.pad(x, ((0, 0), (1, 2), (2, 1), (0, 0))),
    "RESHAPE": lambda b, x: b.reshape(x, (1, 64, 4)),
    "TRANSPOSE": lambda b, x: b.transpose(x, (0, 2, 1, 3)),
    "CONCATENATION": lambda b, x: b.concat([x, b.relu(x)], axis=3),
    "STRIDED_SLICE": lambda b, x: b.strided_slice(x, ((0, 1, 1), (1, 7, 2), (None, None, -1), (0, 3, 1))),
    "RESIZE_NEAREST_NEIGHBOR": lambda b, x: b.resize_nearest(x, (16, 12)),
    "SOFTMAX": lambda b, x: b.softmax(x, beta=0.5),
    "LOG_SOFTMAX": lambda b, x: b.log_softmax(x),
    "ADD": lambda b, x: b.add(x, b.relu(x), activation="RELU"),
    "SUB": lambda b, x: b.sub(x, b.relu6(x)),
    "MUL": lambda b, x: b.mul(x, b.tanh(x)),
    "MAXIMUM": lambda b, x: b.maximum(x, b.leaky_relu(x)),
    "MINIMUM": lambda b, x: b.minimum(x, b.relu(x)),
    "RELU": lambda b, x: b.relu(x),
    "RELU6": lambda b, x: b.relu6(x),
    "LEAKY_RELU": lambda b, x: b.leaky_relu(x, alpha=0.1),
    "LOGISTIC": lambda b, x: b.logistic(x),
    "TANH": lambda b, x: b.tanh(x),
    "HARD_SWISH": lambda b, x: b.hard_swish(x),
    "QUANTIZE": lambda b, x: b.quantize(x, 0.03, 5),
    "DEQUANTIZE": lambda b, x: b.dequantize(x),
}

# variants of the writer's mappings that the plain cases do not reach
VARIANTS: dict[str, Case] = {
    "conv_valid_stride2": lambda b, x: b.conv2d(x, 3, kernel=3, stride=2, padding="valid"),
    "conv_explicit_pads": lambda b, x: b.conv2d(x, 3, kernel=3, padding=(0, 2, 1, 0)),
    "conv_dilated": lambda b, x: b.conv2d(x, 3, kernel=3, dilation=2, padding="same", activation="RELU"),
    "conv_1x1_n1_to_1": lambda b, x: b.conv2d(x, 5, kernel=1, activation="RELU_N1_TO_1"),
    "depthwise_explicit_pads": lambda b, x: b.depthwise_conv2d(x, kernel=3, padding=(1, 1, 0, 0)),
    "depthwise_dilated_valid": lambda b, x: b.depthwise_conv2d(x, kernel=3, dilation=2, padding="valid"),
    "fc_keep_num_dims": lambda b, x: b.fully_connected(x, 7, keep_num_dims=True),
    "max_pool_explicit_pads": lambda b, x: b.max_pool(x, filter=3, stride=1, padding=(2, 0, 0, 2)),
    "mean_no_keep_dims": lambda b, x: b.mean(x, axes=(1,), keep_dims=False),
    "pad_v2": lambda b, x: b.pad(x, ((0, 0), (1, 1), (0, 0), (0, 2)), value=40),
    "slice_shrink": lambda b, x: b.strided_slice(x, ((0, 1, 1), (-3, None, 1), (2, 3, 1), (3, 0, -1)),
                                                 shrink_axes=(0, 2)),
    "resize_half_pixel": lambda b, x: b.resize_nearest(x, (12, 20), half_pixel_centers=True),
    "resize_align_corners": lambda b, x: b.resize_nearest(x, (15, 15), align_corners=True),
    "concat_requantized": lambda b, x: b.concat([x, b.quantize(x, 0.11, -20), x], axis=1),
    "add_broadcast": lambda b, x: b.add(x, b.mean(x, axes=(1, 2), keep_dims=True)),
    "softmax_2d": lambda b, x: b.softmax(b.reshape(x, (16, 16))),
}


def test_every_op_kind_has_a_case() -> None:
    """Every canonical operator is written and run in TFLM: by a case here, or by its own tests/test_op_*.py."""
    from mcuforge.operators import install

    install()
    own_tests = "".join(p.read_text() for p in pathlib.Path(__file__).parent.glob("test_op_*.py"))
    uncovered = {kind for kind in set(SPECS) - INTERNAL_KINDS - set(CASES) if f'"{kind}"' not in own_tests}
    assert len(SPECS) > 30 and not uncovered, uncovered


@pytest.mark.parametrize("kind", sorted(CASES))
def test_single_op_runs_in_tflm(kind: str) -> None:
    graph = single_op(CASES[kind])
    assert graph.ops[-1].kind == kind
    check_outputs(graph, run_tflm(graph))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_runs_in_tflm(name: str) -> None:
    graph = single_op(VARIANTS[name])
    check_outputs(graph, run_tflm(graph))


def test_float_io_runs_in_tflm() -> None:
    graph = single_op(lambda b, x: b.dequantize(b.conv2d(x, 4, activation="RELU")), float_io=True)
    assert graph[graph.inputs[0]].dtype == "float32"
    check_outputs(graph, run_tflm(graph))


def test_absent_bias_runs_in_tflm() -> None:
    b = GraphBuilder(seed=2)
    x = b.input((1, 6, 6, 3))
    y = b.fully_connected(b.reshape(b.conv2d(x, 4), (1, -1)), 3)
    graph = b.build([y])
    ops = [op.with_(inputs=(*op.inputs[:2], "")) if op.kind in ("CONV_2D", "FULLY_CONNECTED") else op
           for op in graph.ops]
    graph = graph.with_ops(ops)
    assert not any(name.endswith("/bias") for name in graph.tensors)
    check_outputs(graph, run_tflm(graph))


# ---------------------------------------------------------------- exact results of data movement


MOVES: dict[str, tuple[Case, Callable[[np.ndarray], np.ndarray]]] = {
    "pad": (CASES["PAD"], lambda x: np.pad(x, ((0, 0), (1, 2), (2, 1), (0, 0)), constant_values=-3)),
    "pad_v2": (VARIANTS["pad_v2"], lambda x: np.pad(x, ((0, 0), (1, 1), (0, 0), (0, 2)), constant_values=40)),
    "transpose": (CASES["TRANSPOSE"], lambda x: x.transpose(0, 2, 1, 3)),
    "slice": (CASES["STRIDED_SLICE"], lambda x: x[0:1, 1:7:2, ::-1, 0:3]),
    "slice_shrink": (VARIANTS["slice_shrink"], lambda x: x[0, -3:, 2, 3:0:-1]),
    "reduce_max": (CASES["REDUCE_MAX"], lambda x: x.max(axis=(1, 2))),
    "max_pool_explicit_pads": (VARIANTS["max_pool_explicit_pads"],
                               lambda x: np.lib.stride_tricks.sliding_window_view(
                                   np.pad(x, ((0, 0), (2, 0), (0, 2), (0, 0)), constant_values=-128),
                                   (3, 3), axis=(1, 2)).max(axis=(-2, -1))),
    "concat_same_quant": (lambda b, x: b.concat([x, b.reshape(x, (1, 8, 8, 4))], axis=2),
                          lambda x: np.concatenate([x, x], axis=2)),
}


@pytest.mark.parametrize("name", sorted(MOVES))
def test_data_movement_is_exact(name: str) -> None:
    case, expected = MOVES[name]
    graph = single_op(case)
    x = random_inputs(graph, seed=3)
    np.testing.assert_array_equal(run_tflm(graph, x)[0], expected(x[0]))


# ---------------------------------------------------------------- the flatbuffer itself


def _model(graph: Graph) -> tflite.Model:
    return tflite.Model.GetRootAs(write_tflite(graph), 0)


def _op_names(model: tflite.Model) -> list[str]:
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    sub = model.Subgraphs(0)
    codes = [model.OperatorCodes(sub.Operators(i).OpcodeIndex()) for i in range(sub.OperatorsLength())]
    return [names[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())] for c in codes]


def test_model_header_and_sentinel_buffer() -> None:
    graph = single_op(CASES["CONV_2D"])
    data = write_tflite(graph)
    assert data[4:8] == b"TFL3"
    model = tflite.Model.GetRootAs(data, 0)
    assert model.Version() == 3
    assert model.Buffers(0).DataLength() == 0
    sub = model.Subgraphs(0)
    names = [sub.Tensors(i).Name().decode() for i in range(sub.TensorsLength())]
    assert set(graph.tensors) <= set(names)
    weights = sub.Tensors(names.index(graph.ops[-1].inputs[1]))
    q = weights.Quantization()
    assert q.ScaleLength() == 6 and q.QuantizedDimension() == 0
    bias = sub.Tensors(names.index(graph.ops[-1].inputs[2]))
    assert bias.Type() == tflite.TensorType.INT32


@pytest.mark.parametrize("padding, ops", [("same", ["CONV_2D"]), ("valid", ["CONV_2D"]),
                                          ((1, 1, 1, 1), ["CONV_2D"]), ((0, 1, 0, 1), ["PAD", "CONV_2D"])])
def test_pads_become_same_valid_or_pad(padding: object, ops: list[str]) -> None:
    # (1, 1, 1, 1) is what SAME gives a 3x3 stride-1 conv; (0, 1, 0, 1) is not SAME for that shape
    graph = single_op(lambda b, x: b.conv2d(x, 2, kernel=3, padding=padding))
    assert _op_names(_model(graph)) == ops


def test_average_pool_with_pads_tflite_cannot_express_is_refused() -> None:
    graph = single_op(lambda b, x: b.avg_pool(x, filter=3, stride=1, padding=(2, 0, 0, 0)))
    with pytest.raises(ModelError, match="AVERAGE_POOL_2D"):
        write_tflite(graph)


# ---------------------------------------------------------------- builder quantization choices


RANGE_CASES: dict[str, Case] = {
    "conv": lambda b, x: b.conv2d(x, 6, kernel=3),
    "conv_relu": lambda b, x: b.conv2d(x, 6, kernel=3, activation="RELU"),
    "conv_deep": lambda b, x: b.conv2d(b.conv2d(b.conv2d(x, 8, activation="RELU"), 8, activation="RELU"), 8),
    "depthwise": lambda b, x: b.depthwise_conv2d(x, kernel=3, multiplier=2),
    "fully_connected": lambda b, x: b.fully_connected(x, 16, keep_num_dims=True),
    "mean": lambda b, x: b.mean(x, axes=(1,), keep_dims=False),
    **{kind.lower(): CASES[kind] for kind in ("ADD", "SUB", "MUL", "LEAKY_RELU", "HARD_SWISH", "RELU")},
}


@pytest.mark.parametrize("name", sorted(RANGE_CASES))
def test_builder_outputs_use_the_int8_range(name: str) -> None:
    # an output that clamps to a fused RELU6 is right to sit at 127; these have no upper clamp
    out = run_tflm(single_op(RANGE_CASES[name]))[0].astype(np.int32)
    assert np.ptp(out) >= 48, f"{name} output uses only {np.ptp(out)} levels"
    assert np.mean((out == 127) | (out == -128) & (out.min() > -128)) < 0.05, f"{name} output saturates"


def test_tiny_mobilenet_runs_in_tflm() -> None:
    graph = tiny_mobilenet(seed=0)
    kinds = {op.kind for op in graph.ops}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} <= kinds
    out = run_tflm(graph)[0]
    check_outputs(graph, [out])
    probabilities = (out.astype(np.float64) + 128) / 256
    assert abs(probabilities.sum() - 1.0) < 0.05
    assert write_tflite(tiny_mobilenet(seed=0)) == write_tflite(graph)  # deterministic


# ---------------------------------------------------------------- random graphs


LAYERS: list[Callable[[GraphBuilder, str], str]] = [
    lambda b, x: b.conv2d(x, 4, kernel=3, padding="same", activation="RELU6"),
    lambda b, x: b.conv2d(x, 3, kernel=1, padding="valid"),
    lambda b, x: b.depthwise_conv2d(x, kernel=3, padding="same", activation="RELU"),
    lambda b, x: b.add(x, b.relu(x)),
    lambda b, x: b.mul(x, x),
    lambda b, x: b.max_pool(x, filter=2, stride=1, padding="same"),
    lambda b, x: b.avg_pool(x, filter=2, stride=1, padding="same"),
    lambda b, x: b.concat([x, b.hard_swish(x)], axis=3),
    lambda b, x: b.pad(x, ((0, 0), (1, 0), (0, 1), (0, 0))),
    lambda b, x: b.logistic(x),
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(LAYERS) - 1), min_size=1, max_size=6), st.integers(0, 2 ** 16))
def test_random_graphs_run_in_tflm(layers: list[int], seed: int) -> None:
    b = GraphBuilder(seed=seed)
    x = b.input((1, 6, 6, 3), scale=0.04, zero_point=seed % 11 - 5)
    for i in layers:
        x = LAYERS[i](b, x)
    graph = b.build([b.fully_connected(b.reshape(x, (1, -1)), 5)], name="random")
    check_outputs(graph, run_tflm(graph, random_inputs(graph, seed)))


# ---------------------------------------------------------------- round trip through the reader


def _normalise(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return tuple(_normalise(v) for v in value)
    if isinstance(value, (np.integer, bool, np.bool_)):
        return int(value) if not isinstance(value, (bool, np.bool_)) else bool(value)
    if isinstance(value, (float, np.floating)):
        return float(np.float32(value))
    return value


def _attrs(op: Op, input_shape: tuple[int, ...]) -> dict[str, object]:
    """Attrs to compare; slices as the indices they select (numpy slices have many spellings)."""
    attrs = {k: _normalise(v) for k, v in op.attrs.items()}
    if "slices" in attrs:
        attrs["slices"] = tuple(tuple(range(*slice(*s).indices(d))) for s, d in zip(attrs["slices"], input_shape))
    return attrs


def _same_quant(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is b
    return (np.allclose(a.scale, b.scale, rtol=1e-6) and np.array_equal(a.zero_point, b.zero_point)
            and (a.axis if a.per_channel else None) == (b.axis if b.per_channel else None))


# a max pool's explicit pads come back as PAD(-128) + MAX_POOL_2D: a reader may not fold it (same values, other ops)
ROUND_TRIP = {**CASES, **{k: v for k, v in VARIANTS.items() if k != "max_pool_explicit_pads"}}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP) + ["tiny_mobilenet"])
def test_reader_round_trip(name: str) -> None:
    if importlib.util.find_spec("mcuforge.frontends.tflite_reader") is None:
        pytest.skip("mcuforge.frontends.tflite_reader is not written yet")
    from mcuforge.frontends.tflite_reader import read_tflite

    graph = tiny_mobilenet() if name == "tiny_mobilenet" else single_op(ROUND_TRIP[name])
    back = read_tflite(write_tflite(graph), name=graph.name)
    assert back.inputs == graph.inputs and back.outputs == graph.outputs
    assert [op.kind for op in back.ops] == [op.kind for op in graph.ops]
    for mine, theirs in zip(graph.ops, back.ops):
        assert theirs.inputs == mine.inputs and theirs.outputs == mine.outputs
        shape = graph[mine.inputs[0]].shape
        assert _attrs(theirs, shape) == _attrs(mine, shape), mine.name
    for name_, t in graph.tensors.items():
        r = back[name_]
        assert (r.shape, r.dtype) == (t.shape, t.dtype), name_
        assert _same_quant(r.quant, t.quant), name_
        assert (r.data is None) == (t.data is None), name_
        if t.data is not None:
            np.testing.assert_array_equal(r.data, t.data)
