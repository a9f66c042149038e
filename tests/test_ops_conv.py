"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: reference == TFLM == generated C, bit for bit.

Many single-op cases are merged side by side into one graph (each with its own input and output), so one
.tflite, one TFLM interpreter and one C build check them all; a mismatch names its case.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np
import pytest

from mcuforge.engine import compile_graph, reference
from mcuforge.engine.plan import plan_memory
from mcuforge.engine.plan.scratch import kernel_scratch
from mcuforge.operators.convolution import effective_scale
from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_reader import read_tflite
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, Op, QuantParams, Tensor, clone_tensor
from mcuforge.models.builder import GraphBuilder
from mcuforge.quant import intmath
from mcuforge.targets.host import HostModel, build_executable, run_executable
from mcuforge.verify import verify

from netbuilder import Case, merge
from oracle import dev_models, tflm_run

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


# ------------------------------------------------------------------ harness




def with_zero_depthwise_bias(graph: Graph) -> Graph:
    """The same graph with an all-zero bias on each bias-less depthwise layer: the TFLM oracle crashes
    (segfault) on DEPTHWISE_CONV_2D without bias, and a zero bias is what the absent one means."""
    tensors, ops = dict(graph.tensors), []
    for op in graph.ops:
        if op.kind == "DEPTHWISE_CONV_2D" and (len(op.inputs) < 3 or not op.inputs[2]):
            n = graph[op.outputs[0]].shape[-1]
            bias = Tensor(f"{op.name}/zero_bias", (n,), "int32", None, np.zeros(n, np.int32))
            tensors[bias.name] = bias
            op = op.with_(inputs=(op.inputs[0], op.inputs[1], bias.name))
        ops.append(op)
    return graph.with_ops(ops, tensors)


def random_inputs(graph: Graph, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.integers(-128, 128, graph[n].shape).astype(np.int8) for n in graph.inputs]


def assert_bit_exact(cases: Sequence[Case], trials: int = 2, seed: int = 0, name: str = "cases",
                     inplace: bool = True) -> Graph:
    """TFLM, the reference interpreter and the compiled C agree exactly on every case's output."""
    graph = merge(cases, name)
    data = write_tflite(with_zero_depthwise_bias(graph))
    model = HostModel.build(compile_graph(graph, name, inplace=inplace))
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        xs = random_inputs(graph, rng)
        expected = tflm_run(data, xs, n_outputs=len(graph.outputs))
        ours = reference.run(graph, xs)
        compiled = model.run(xs)
        for (desc, _), t, r, c in zip(cases, expected, ours, compiled):
            assert r.shape == tuple(t.shape), f"{desc}: shape {r.shape} vs TFLM {t.shape}"
            diff = np.abs(t.astype(np.int32) - r.astype(np.int32))
            assert diff.max() == 0, f"{desc} (trial {trial}): reference != TFLM at {int((diff > 0).sum())} values"
            assert np.array_equal(c, r), f"{desc} (trial {trial}): generated C != reference"
    return graph


def _with_tensor(g: Graph, t: Tensor) -> Graph:
    return replace(g, tensors={**g.tensors, t.name: t})


def _drop_bias(g: Graph) -> Graph:
    op = g.ops[0]
    return g.with_ops([op.with_(inputs=(op.inputs[0], op.inputs[1], ""))])


def _per_tensor_weights(g: Graph) -> Graph:
    w = g[g.ops[0].inputs[1]]
    assert w.quant is not None
    return _with_tensor(g, replace(w, quant=QuantParams(w.quant.scale[:1].copy(), np.zeros(1, np.int64), None)))


def _random_case(rng: np.random.Generator, seed: int,
                 layer: Callable[[GraphBuilder, str, np.random.Generator], str],
                 in_shape: Callable[[np.random.Generator], tuple[int, ...]]) -> Case:
    while True:
        b = GraphBuilder(seed=seed)
        shape = in_shape(rng)
        x = b.input(shape, scale=float(rng.uniform(0.004, 0.1)), zero_point=int(rng.integers(-128, 128)))
        try:
            y = layer(b, x, rng)
        except ValueError:  # window larger than the padded input: draw again
            continue
        g = b.build([y])
        op = g.ops[0]
        return f"{op.kind} in={shape} w={g[op.inputs[1]].shape} {dict(op.attrs)}", g


def _padding(rng: np.random.Generator) -> str | tuple[int, int, int, int]:
    kind = rng.integers(0, 3)
    if kind == 2:
        return tuple(int(p) for p in rng.integers(0, 3, 4))  # explicit, usually asymmetric
    return ("same", "valid")[kind]


def _image(rng: np.random.Generator, max_c: int = 8) -> tuple[int, ...]:
    return (int(rng.choice([1, 1, 1, 2])), *(int(v) for v in rng.integers(1, 12, 2)), int(rng.integers(1, max_c + 1)))


def _conv_layer(b: GraphBuilder, x: str, rng: np.random.Generator) -> str:
    return b.conv2d(x, int(rng.integers(1, 9)), kernel=tuple(rng.integers(1, 6, 2)),
                    stride=tuple(rng.integers(1, 4, 2)), padding=_padding(rng), dilation=tuple(rng.choice([1, 1, 2], 2)),
                    activation=str(rng.choice(ACTIVATIONS)))


def _dw_layer(b: GraphBuilder, x: str, rng: np.random.Generator) -> str:
    return b.depthwise_conv2d(x, kernel=tuple(rng.integers(1, 6, 2)), stride=tuple(rng.integers(1, 3, 2)),
                              padding=_padding(rng), dilation=tuple(rng.choice([1, 1, 2], 2)),
                              multiplier=int(rng.choice([1, 1, 2, 3])), activation=str(rng.choice(ACTIVATIONS)))


def _fc_layer(b: GraphBuilder, x: str, rng: np.random.Generator) -> str:
    return b.fully_connected(x, int(rng.integers(1, 17)), activation=str(rng.choice(ACTIVATIONS)),
                             keep_num_dims=bool(rng.integers(0, 2)))


def _fc_input(rng: np.random.Generator) -> tuple[int, ...]:
    rank = int(rng.integers(1, 5))
    return tuple(int(v) for v in rng.integers(1, 5, rank - 1)) + (int(rng.integers(1, 40)),)


def _vary(g: Graph, rng: np.random.Generator, per_tensor_ok: bool = True) -> Graph:
    """Randomly drop the bias and (conv/depthwise) use one weight scale for all channels."""
    if rng.random() < 0.25:
        g = _drop_bias(g)
    if per_tensor_ok and rng.random() < 0.25:
        g = _per_tensor_weights(g)
    return g


# ------------------------------------------------------------------ random single-op graphs

def test_conv2d_random_shapes_match_tflm() -> None:
    rng = np.random.default_rng(10)
    cases = []
    for i in range(40):
        desc, g = _random_case(rng, i, _conv_layer, _image)
        cases.append((desc, _vary(g, rng)))
    assert_bit_exact(cases, name="conv_random")


def test_depthwise_random_shapes_match_tflm() -> None:
    rng = np.random.default_rng(11)
    cases = []
    for i in range(40):
        desc, g = _random_case(rng, 100 + i, _dw_layer, _image)
        cases.append((desc, _vary(g, rng)))
    assert_bit_exact(cases, name="dw_random")


def test_fully_connected_random_shapes_match_tflm() -> None:
    rng = np.random.default_rng(12)
    cases = []
    for i in range(30):
        desc, g = _random_case(rng, 200 + i, _fc_layer, _fc_input)
        g = _vary(g, rng, per_tensor_ok=False)
        if rng.random() < 0.3:  # per-output-unit weight scales
            w = g[g.ops[0].inputs[1]]
            scales = (w.quant.scale[0] * rng.uniform(0.5, 2.0, w.shape[0])).astype(np.float32)
            g = _with_tensor(g, replace(w, quant=QuantParams(scales, np.zeros(w.shape[0], np.int64), 0)))
            desc += " per-channel"
        cases.append((desc, g))
    assert_bit_exact(cases, name="fc_random")


def _fc_flattening_case() -> Case:
    """Input [2, 3, 4] read as [4, 6]: the flattening crosses the last dimension."""
    b = GraphBuilder(seed=5)
    x = b.input((2, 3, 4), scale=0.03, zero_point=-7)
    y = b.fully_connected(x, 5)
    g = b.build([y])
    op = g.ops[0]
    w = g[op.inputs[1]]
    wide = np.concatenate([w.data, w.data[:, :2]], axis=1)
    g = _with_tensor(g, replace(w, shape=(5, 6), data=wide))
    return "FULLY_CONNECTED [2,3,4] -> [4,6] x [5,6]", _with_tensor(g, replace(g[op.outputs[0]], shape=(4, 5)))


def _grouped_conv_case() -> Case:
    """CONV_2D with 3 groups: input 6 channels, filters read 2 channels each (the reader splits nothing)."""
    b = GraphBuilder(seed=6)
    x = b.input((1, 7, 6, 6), scale=0.02, zero_point=5)
    y = b.conv2d(x, 9, kernel=(3, 2), stride=(2, 1), padding="same", activation="RELU")
    g = b.build([y])
    w = g[g.ops[0].inputs[1]]
    return "CONV_2D grouped (3 groups)", _with_tensor(g, replace(w, shape=(9, 3, 2, 2),
                                                                  data=w.data[..., :2].copy()))


def test_special_layouts_match_tflm() -> None:
    assert_bit_exact([_fc_flattening_case(), _grouped_conv_case()], trials=3, name="special")


def test_grouped_conv_is_read_from_tflite() -> None:
    """The reader takes the grouped CONV_2D the writer emits (3 groups); C == reference == TFLM on it."""
    data = write_tflite(_grouped_conv_case()[1])
    graph = read_tflite(data, "grouped")
    assert graph[graph.ops[0].inputs[1]].shape == (9, 3, 2, 2)
    result = verify(graph, samples=5, tflite_bytes=data)
    assert result.tflm_checked and result.ok, result.mismatches[:3]


def test_tflite_round_trip_keeps_conv_attrs() -> None:
    """Explicit asymmetric pads survive write -> read (as PAD + VALID, folded back into the conv)."""
    b = GraphBuilder(seed=7)
    x = b.input((1, 9, 9, 3), scale=0.05, zero_point=1)
    y = b.conv2d(x, 4, kernel=3, stride=2, padding=(0, 2, 1, 0), dilation=(1, 2))
    g = b.build([y])
    back = read_tflite(write_tflite(g))
    xs = random_inputs(g, np.random.default_rng(0))
    assert np.array_equal(reference.run(back, xs)[0], reference.run(g, xs)[0])


# ------------------------------------------------------------------ in-place depthwise

def _dw_case(shape: tuple[int, ...], seed: int, **kw: object) -> Case:
    b = GraphBuilder(seed=seed)
    x = b.input(shape, scale=0.04, zero_point=-20)
    y = b.depthwise_conv2d(x, **kw)  # type: ignore[arg-type]
    return f"in-place DEPTHWISE_CONV_2D in={shape} {kw}", b.build([y])


INPLACE_CASES = [
    dict(shape=(1, 9, 7, 5), kernel=3, stride=1, padding="same", activation="RELU6"),
    dict(shape=(1, 9, 7, 5), kernel=3, stride=2, padding="same"),
    dict(shape=(1, 10, 8, 3), kernel=(3, 2), stride=(2, 1), padding=(0, 2, 1, 0)),
    dict(shape=(1, 11, 9, 4), kernel=5, stride=2, dilation=2, padding="same", activation="RELU"),
    dict(shape=(1, 4, 3, 6), kernel=1, stride=1, padding=(2, 3, 1, 4)),  # output larger than input
    dict(shape=(1, 6, 6, 7), kernel=6, stride=1, padding="valid"),  # 1x1 output
    dict(shape=(2, 5, 6, 3), kernel=3, stride=2, padding="same"),  # two batches
    dict(shape=(1, 5, 5, 1), kernel=3, stride=1, padding="same"),  # one channel
]


def _inplace_case(i: int) -> Case:
    kw = dict(INPLACE_CASES[i])
    return _dw_case(kw.pop("shape"), 40 + i, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("i", range(len(INPLACE_CASES)))
def test_inplace_depthwise_matches_tflm(i: int) -> None:
    case = _inplace_case(i)
    graph = case[1]
    plan = plan_memory(graph, inplace=True)
    assert plan.inplace_ops == frozenset({0}), "a lone depthwise layer should run in place"
    op, out = graph.ops[0], graph[graph.ops[0].outputs[0]]
    assert plan.offsets[op.inputs[0]] == plan.offsets[op.outputs[0]]
    choice = kernel_scratch(op, graph, True)  # a lone layer is the peak: the ring of rows only where smaller
    assert plan.scratch[0][1] >= choice.nbytes and choice.nbytes <= out.size // out.shape[-1]
    kernel = "mcu_dwconv_s8_fast(" if choice.variant == "rows" else "mcu_dwconv_s8_inplace("
    assert kernel in compile_graph(graph, "dw_inplace").files["dw_inplace.c"]
    assert_bit_exact([case], trials=3, name="dw_inplace")


def test_depthwise_without_inplace_matches_tflm() -> None:
    cases = [_inplace_case(i) for i in range(len(INPLACE_CASES))]
    graph = assert_bit_exact(cases, trials=1, name="dw_not_inplace", inplace=False)
    assert "mcu_dwconv_s8_inplace(" not in compile_graph(graph, "dw_plain", inplace=False).files["dw_plain.c"]


# ------------------------------------------------------------------ requantization constants

# Scales where double(in) * double(w) / double(out) and float32(in * w) / double(out) give multipliers
# 110 units apart, and biases whose outputs differ by one between the two multipliers.
_SCALES = (0.08166918, 0.0030757799, 4.329701)
_BIASES = np.array([-1663304, -1335814, -1008324, 1008324, 1335814, 1663304], np.int32)


def _bias_only_graph(kind: str) -> Graph:
    """One layer with all-zero weights: its outputs are the requantized biases."""
    si, sw, so = (float(np.float32(s)) for s in _SCALES)
    n = _BIASES.size
    if kind == "FULLY_CONNECTED":
        x_shape, w_shape, y_shape = (1, 1), (n, 1), (1, n)
        wq = QuantParams.per_tensor(sw, 0)
        attrs: dict[str, object] = {"activation": "NONE", "keep_num_dims": False}
    else:
        c = n if kind == "DEPTHWISE_CONV_2D" else 1
        x_shape, y_shape = (1, 1, 1, c), (1, 1, 1, n)
        w_shape = (1, 1, 1, n) if kind == "DEPTHWISE_CONV_2D" else (n, 1, 1, 1)
        wq = QuantParams(np.full(n, sw, np.float32), np.zeros(n, np.int64), 3 if c > 1 else 0)
        attrs = {"stride": (1, 1), "dilation": (1, 1), "pad": (0, 0, 0, 0), "activation": "NONE"}
        if kind == "DEPTHWISE_CONV_2D":
            attrs["multiplier"] = 1
    bq = QuantParams(np.full(n, np.float32(si) * np.float32(sw), np.float32), np.zeros(n, np.int64), 0)
    tensors = [Tensor("x", x_shape, "int8", QuantParams.per_tensor(si, 0)),
               Tensor("w", w_shape, "int8", wq, np.zeros(w_shape, np.int8)),
               Tensor("b", (n,), "int32", bq, _BIASES),
               Tensor("y", y_shape, "int8", QuantParams.per_tensor(so, 0))]
    return Graph({t.name: t for t in tensors}, [Op(kind, ("x", "w", "b"), ("y",), attrs)], ("x",), ("y",))


@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
def test_multiplier_is_computed_in_double_as_tflm_does(kind: str) -> None:
    si, sw, so = (np.float32(s) for s in _SCALES)
    m64, s64 = intmath.quantize_multiplier(effective_scale(si, sw, so))
    m32, s32 = intmath.quantize_multiplier(float(si * sw) / float(so))
    in_double = intmath.multiply_by_quantized_multiplier(_BIASES, m64, s64)
    in_float = intmath.multiply_by_quantized_multiplier(_BIASES, m32, s32)
    assert np.all(in_double != in_float), "the scales no longer tell the two computations apart"
    g = _bias_only_graph(kind)
    x = np.zeros(g["x"].shape, np.int8)
    expected = tflm_run(write_tflite(g), [x])[0].ravel()
    assert np.array_equal(expected, in_double)
    assert np.array_equal(reference.run(g, [x])[0].ravel(), in_double)
    assert np.array_equal(HostModel.build(compile_graph(g, f"mult_{kind.lower()}")).run([x])[0].ravel(),
                          in_double)


# ------------------------------------------------------------------ real models' layers

def _layers_of(path_bytes: bytes, name: str) -> list[Case]:
    """Each conv / depthwise / fully-connected layer of a model as a single-op graph."""
    g = read_tflite(path_bytes, name)
    cases = []
    for op in g.ops:
        if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        names = [n for n in (*op.inputs, *op.outputs) if n]
        sub = Graph({n: g[n] for n in names}, [op], (op.inputs[0],), (op.outputs[0],), op.name)
        cases.append((f"{name}: {op.kind} {op.name}", sub))
    return cases


@pytest.mark.parametrize("path", dev_models(), ids=lambda p: p.stem)
def test_dev_model_layers_match_tflm(path) -> None:
    cases = _layers_of(path.read_bytes(), path.stem)
    if not cases:
        pytest.skip("no conv, depthwise or fully-connected layers")
    assert_bit_exact(cases, trials=2, name="layers")


# ------------------------------------------------------------------ sanitizers and errors

def test_kernels_clean_under_sanitizers() -> None:
    rng = np.random.default_rng(3)
    cases = [_random_case(rng, 300 + i, layer, shape)
             for i, (layer, shape) in enumerate([(_conv_layer, _image), (_conv_layer, _image), (_dw_layer, _image),
                                                 (_dw_layer, _image), (_fc_layer, _fc_input)])]
    cases += [_grouped_conv_case(), _fc_flattening_case(), (cases[0][0] + " no bias", _drop_bias(cases[0][1])),
              _inplace_case(4), _inplace_case(6)]
    graphs = [merge(cases, "sanitized")] + [_inplace_case(i)[1] for i in (4, 6)]
    for graph in graphs:
        lib = compile_graph(graph, "sanitized")
        exe = build_executable(lib, sanitize=True)
        xs = random_inputs(graph, rng)
        for got, want in zip(run_executable(lib, exe, xs), reference.run(graph, xs)):
            assert np.array_equal(got, want), graph.name
    assert plan_memory(graphs[-1]).inplace_ops, "the in-place depthwise kernel should be among those checked"


def test_float_activations_are_refused() -> None:
    b = GraphBuilder(seed=0)
    x = b.input((1, 4, 4, 2))
    g = b.build([b.conv2d(x, 3)])
    x_t = g[g.inputs[0]]
    bad = _with_tensor(g, replace(x_t, dtype="float32", quant=None))
    with pytest.raises(ModelError, match="int8"):
        reference.run(bad, [np.zeros(x_t.shape, np.float32)])


def test_fully_connected_with_constant_channels_of_different_values_matches_tflm() -> None:
    """Per-tensor weights, a fused ReLU and biases so large that each unit's clamped output is one value
    whatever the input (some 0, some the maximum): each unit keeps its own requantization constants
    (found by the fuzz: the per-tensor form applied unit 0's constant to every unit)."""
    b = GraphBuilder(seed=11)
    x = b.input((1, 12))
    y = b.fully_connected(x, 5, activation="RELU")
    g = b.build([y], name="fc_constant_units")
    bias = g[g.ops[0].inputs[2]]
    big = np.array([-(2**31) + 300_000, -(2**31) + 300_000, 5, 2**31 - 300_000, 2**31 - 300_000], np.int32)
    assert_bit_exact([("fc constant units", _with_tensor(g, clone_tensor(bias, data=big)))], trials=3)
