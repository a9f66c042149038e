"""Pooling, reductions and data-movement ops: reference == TFLM == generated C, bit for bit.

Each test builds one graph holding many randomly drawn variants of an op (one input and one output per
variant), so TFLM and the C compiler run once per test; every graph then runs on several random inputs
plus the int8 extremes. Ops TFLM runs differently from our canonical form (a requantizing concatenation,
a fused activation on a concatenation) are checked against the equivalent TFLM graph.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import pytest

from mcuforge.engine import compile_graph, reference
from mcuforge.operators.resize_nearest import nearest_source_indices
from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_reader import read_tflite
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, Op, QuantParams
from mcuforge.models.builder import GraphBuilder
from mcuforge.targets.host import HostModel, build_executable, run_executable

from oracle import dev_models

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
MY_KINDS = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "REDUCE_MAX", "PAD", "TRANSPOSE", "CONCATENATION",
            "STRIDED_SLICE", "RESIZE_NEAREST_NEIGHBOR", "RESHAPE"}


def random_inputs(graph: Graph, rng: np.random.Generator, count: int) -> list[list[np.ndarray]]:
    """`count` random input sets, then all -128, all 127 and values near each input's zero point."""
    shapes = [graph[n].shape for n in graph.inputs]
    sets = [[rng.integers(-128, 128, s).astype(np.int8) for s in shapes] for _ in range(count)]
    sets.append([np.full(s, -128, np.int8) for s in shapes])
    sets.append([np.full(s, 127, np.int8) for s in shapes])
    near = [np.clip(graph[n].quant.zp + rng.integers(-3, 4, graph[n].shape), -128, 127).astype(np.int8)
            for n in graph.inputs]
    return sets + [near]


def tflm_outputs(graph: Graph, input_sets: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
    runtime = pytest.importorskip("tflite_micro").runtime
    it = runtime.Interpreter.from_bytes(write_tflite(graph), arena_size=8 << 20)
    results = []
    for inputs in input_sets:
        for i, x in enumerate(inputs):
            it.set_input(np.ascontiguousarray(x), i)
        it.invoke()
        results.append([np.array(it.get_output(i)) for i in range(len(graph.outputs))])
    return results


def check(graph: Graph, oracle: Graph | None = None, seed: int = 0, count: int = 6,
          use_tflm: bool = True) -> None:
    """Reference == C (== TFLM running `oracle`, default the graph itself) on random inputs."""
    input_sets = random_inputs(graph, np.random.default_rng(seed), count)
    expected = tflm_outputs(oracle or graph, input_sets) if use_tflm else [None] * len(input_sets)
    model = HostModel.build(compile_graph(graph, "ops_pool_shape"))
    for k, (inputs, want) in enumerate(zip(input_sets, expected)):
        ours = reference.run(graph, inputs)
        c_out = model.run(inputs)
        for j, name in enumerate(graph.outputs):
            op = graph.ops[graph.producer(name)]
            where = f"{op.kind} {dict(op.attrs)} {[graph[n].shape for n in op.inputs]}, input set {k}"
            assert ours[j].shape == graph[name].shape, where
            np.testing.assert_array_equal(c_out[j].reshape(ours[j].shape), ours[j], err_msg="C: " + where)
            if want is not None:
                np.testing.assert_array_equal(ours[j], want[j].reshape(ours[j].shape),
                                              err_msg="TFLM: " + where)


def with_quant(graph: Graph, name: str, q: QuantParams) -> Graph:
    tensors = dict(graph.tensors)
    tensors[name] = replace(tensors[name], quant=q)
    return Graph(tensors, graph.ops, graph.inputs, graph.outputs, graph.name)


def new_input(b: GraphBuilder, rng: np.random.Generator, shape: Sequence[int]) -> str:
    return b.input(tuple(int(d) for d in shape), scale=float(rng.uniform(0.005, 0.3)),
                   zero_point=int(rng.integers(-128, 128)))


# ---------------------------------------------------------------- pooling


@pytest.mark.parametrize("kind", ["avg_pool", "max_pool"])
def test_pooling_matches_tflm(kind: str) -> None:
    rng = np.random.default_rng(1 if kind == "avg_pool" else 2)
    b = GraphBuilder(0)
    outs = []
    for i in range(24):
        h, w = (int(v) for v in rng.integers(1, 11, 2))
        f = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        padding = "same" if i % 2 else "valid"
        if padding == "valid":
            h, w = max(h, f[0]), max(w, f[1])
        x = new_input(b, rng, (1 + i % 3 // 2, h, w, int(rng.integers(1, 7))))
        outs.append(getattr(b, kind)(x, f, s, padding, ACTIVATIONS[i % 4]))
    x = new_input(b, rng, (1, 7, 5, 16))  # global pooling, as the dev models use it
    outs.append(getattr(b, kind)(x, (7, 5), (7, 5), "valid"))
    check(b.build(outs))


def test_average_pool_rounds_half_away_from_zero() -> None:
    b = GraphBuilder(0)
    x = b.input((1, 2, 2, 1), scale=0.1, zero_point=0)
    g = b.build([b.avg_pool(x, (2, 2), (2, 2))])
    for values, want in (([1, 1, 0, 0], 1), ([-1, -1, 0, 0], -1), ([1, 0, 0, 0], 0), ([3, 2, 0, 0], 1),
                         ([-3, -2, 0, 0], -1), ([127] * 4, 127), ([-128] * 4, -128)):
        assert reference.run(g, [np.array(values, np.int8)])[0].item() == want
    check(g)


def test_pool_window_in_padding_is_refused() -> None:
    b = GraphBuilder(0)
    x = b.input((1, 2, 2, 1))
    g = b.build([b.avg_pool(x, (2, 2), (1, 1), (2, 0, 2, 0))])  # first window entirely in the padding
    with pytest.raises(ModelError, match="padding"):
        reference.run(g, [np.zeros((1, 2, 2, 1), np.int8)])


# ---------------------------------------------------------------- reductions


def test_mean_matches_tflm() -> None:
    """TFLM's integer MEAN, with equal and with different input/output quantization, any <= 2 axes."""
    rng = np.random.default_rng(3)
    b = GraphBuilder(0)
    outs, requant = [], {}
    for i in range(28):
        rank = int(rng.integers(1, 6))
        shape = [int(v) for v in rng.integers(1, 7, rank)]
        axes = sorted({int(a) for a in rng.choice(rank, int(rng.integers(1, min(rank, 2) + 1)), replace=False)})
        x = new_input(b, rng, shape)
        y = b.mean(x, axes, keep_dims=bool(i % 2))
        qx = b.quant(x)
        if i % 3 == 0:
            requant[y] = qx  # the same quantization as the input
        else:
            requant[y] = QuantParams.per_tensor(float(np.float32(qx.s * 2 ** rng.uniform(-4, 3))),
                                                int(rng.integers(-128, 128)))
        outs.append(y)
    x = new_input(b, rng, (1, 3, 3, 160))  # the MCUNet tail: transpose, then mean over axis 3, then 2
    t = b.transpose(x, (0, 3, 1, 2))
    outs.append(b.mean(b.mean(t, (3,), False), (2,), False))
    for keep in (True, False):  # global average pooling written as MEAN (older TFLMs special-cased it)
        for same in (True, False):
            y = b.mean(new_input(b, rng, (2, 10, 6, 8)), (1, 2), keep)
            if same:
                requant[y] = b.quant(b.ops[-1].inputs[0])
            outs.append(y)
    g = b.build(outs)
    for name, q in requant.items():
        g = with_quant(g, name, q)
    check(g, seed=3)


def test_reduce_max_matches_tflm() -> None:
    rng = np.random.default_rng(4)
    b = GraphBuilder(0)
    outs = []
    for i in range(20):
        rank = int(rng.integers(1, 6))
        shape = [int(v) for v in rng.integers(1, 6, rank)]
        axes = rng.choice(rank, int(rng.integers(1, min(rank, 3) + 1)), replace=False)
        outs.append(b.reduce_max(new_input(b, rng, shape), [int(a) for a in axes], keep_dims=bool(i % 2)))
    outs.append(b.reduce_max(new_input(b, rng, (1, 24, 3, 12)), (1, 2), False))  # the ST HAR model's
    check(b.build(outs), seed=4)


def test_reduce_max_needs_equal_quantization() -> None:
    b = GraphBuilder(0)
    x = b.input((1, 4, 4, 2), scale=0.1, zero_point=0)
    g = b.build([b.reduce_max(x, (1, 2))])
    g = with_quant(g, g.outputs[0], QuantParams.per_tensor(0.2, 0))
    with pytest.raises(ModelError, match="same input and output quantization"):
        reference.run(g, [np.zeros((1, 4, 4, 2), np.int8)])


# ---------------------------------------------------------------- data movement


def test_pad_matches_tflm() -> None:
    rng = np.random.default_rng(5)
    b = GraphBuilder(0)
    outs = []
    for i in range(16):
        rank = 1 + i % 5
        shape = [int(v) for v in rng.integers(1, 6, rank)]
        pads = [(int(p), int(q)) for p, q in rng.integers(0, 3, (rank, 2)) * (rng.random((rank, 1)) < 0.6)]
        x = new_input(b, rng, shape)
        outs.append(b.pad(x, pads, None if i % 2 else int(rng.integers(-128, 128))))
    outs.append(b.pad(new_input(b, rng, (1, 8, 8, 3)), ((0, 0), (1, 1), (1, 1), (0, 0))))  # MCUNet's
    check(b.build(outs), seed=5)


def test_transpose_matches_tflm() -> None:
    rng = np.random.default_rng(6)
    b = GraphBuilder(0)
    outs = []
    for i in range(20):
        rank = 1 + i % 5  # TFLM transposes up to 5-D (rank 6 is in the sanitizer test)
        shape = [int(v) for v in rng.integers(1, 5, rank)]
        outs.append(b.transpose(new_input(b, rng, shape), [int(p) for p in rng.permutation(rank)]))
    check(b.build(outs), seed=6)


def _random_slice(rng: np.random.Generator, n: int) -> tuple[int | None, int | None, int]:
    while True:
        step = int(rng.choice([1, 1, 2, 3, -1, -2]))
        start = None if rng.random() < 0.3 else int(rng.integers(-n - 1, n + 2))
        stop = None if rng.random() < 0.3 else int(rng.integers(-n - 1, n + 2))
        if len(range(*slice(start, stop, step).indices(n))):
            return start, stop, step


def test_strided_slice_matches_tflm() -> None:
    rng = np.random.default_rng(7)
    b = GraphBuilder(0)
    outs = []
    for i in range(24):
        rank = 1 + i % 4  # TFLM slices up to 4-D (rank 6 is in the sanitizer test)
        shape = [int(v) for v in rng.integers(1, 7, rank)]
        slices = [_random_slice(rng, n) for n in shape]
        block = [len(range(*slice(*s).indices(n))) for s, n in zip(slices, shape)]
        shrink = [a for a, n in enumerate(block) if n == 1 and rng.random() < 0.5]
        outs.append(b.strided_slice(new_input(b, rng, shape), slices, shrink))
    check(b.build(outs), seed=7)


def test_concatenation_copies_like_tflm() -> None:
    rng = np.random.default_rng(8)
    b = GraphBuilder(0)
    outs = []
    for i in range(12):
        rank = 1 + i % 6
        shape = [int(v) for v in rng.integers(1, 5, rank)]
        axis = int(rng.integers(-rank, rank))
        first = new_input(b, rng, shape)
        xs = [first]
        for _ in range(int(rng.integers(1, 4))):
            s = list(shape)
            s[axis] = int(rng.integers(1, 4))
            q = b.quant(first)
            xs.append(b.input(tuple(s), scale=q.s, zero_point=q.zp))
        outs.append(b.concat(xs, axis))
    check(b.build(outs), seed=8)


def _drop_quantize_ops(graph: Graph) -> Graph:
    """The graph with each QUANTIZE feeding a concatenation removed: the concatenation requantizes."""
    source = {op.outputs[0]: op.inputs[0] for op in graph.ops if op.kind == "QUANTIZE"}
    ops = [op.with_(inputs=tuple(source.get(n, n) for n in op.inputs)) if op.kind == "CONCATENATION" else op
           for op in graph.ops if op.kind != "QUANTIZE"]
    return graph.with_ops(ops)


def test_concatenation_requantizes_like_quantize_then_concat() -> None:
    rng = np.random.default_rng(9)
    b = GraphBuilder(0)
    outs = []
    for i in range(8):
        rank = 2 + i % 3
        shape = [int(v) for v in rng.integers(1, 5, rank)]
        xs = [new_input(b, rng, shape) for _ in range(2 + i % 3)]
        outs.append(b.concat(xs, int(rng.integers(0, rank))))  # the builder inserts QUANTIZE ops
    oracle = b.build(outs)
    fused = _drop_quantize_ops(oracle)
    assert not any(op.kind == "QUANTIZE" for op in fused.ops)
    check(fused, oracle=oracle, seed=9)


@pytest.mark.parametrize("activation", ["RELU", "RELU6"])
def test_concatenation_activation_like_concat_then_relu(activation: str) -> None:
    b = GraphBuilder(0)
    x = b.input((1, 3, 4, 5), scale=0.05, zero_point=-20)
    y = b.input((1, 3, 4, 2), scale=0.05, zero_point=-20)
    plain = b.concat([x, y], 3)
    g = b.build([plain])
    out = replace(g[plain], name="activated")
    oracle = Graph({**g.tensors, "activated": out}, (*g.ops, Op(activation, (plain,), ("activated",))),
                   g.inputs, ("activated",))
    fused = Graph({**{k: v for k, v in g.tensors.items() if k != plain}, "activated": out},
                  (g.ops[0].with_(outputs=("activated",), attrs={"axis": 3, "activation": activation}),),
                  g.inputs, ("activated",))
    check(fused, oracle=oracle, seed=10)


def test_resize_nearest_matches_tflm() -> None:
    rng = np.random.default_rng(11)
    b = GraphBuilder(0)
    outs = []
    for i in range(24):
        h, w = (int(v) for v in rng.integers(1, 9, 2))
        size = (int(rng.integers(1, 20)), int(rng.integers(1, 20)))
        align, half = bool(i % 2), bool(i // 2 % 2)
        if align and half:  # TFLite allows at most one of them
            align = False
        outs.append(b.resize_nearest(new_input(b, rng, (1 + i % 5 // 4, h, w, int(rng.integers(1, 5)))), size,
                                     align, half))
    # sizes where float32 index arithmetic picks other pixels than exact arithmetic would
    for (in_hw, out_hw, align, half) in (((14, 26), (46, 22), False, False), ((2, 6), (41, 37), False, True),
                                         ((8, 14), (47, 23), True, False)):
        outs.append(b.resize_nearest(new_input(b, rng, (1, *in_hw, 1)), out_hw, align, half))
    check(b.build(outs), seed=11)


def test_nearest_indices_stay_in_range() -> None:
    for n_in in range(1, 40):
        for n_out in range(1, 60):
            for align in (False, True):
                for half in (False, True):
                    idx = nearest_source_indices(n_in, n_out, align, half)
                    assert idx.min() >= 0 and idx.max() < n_in and np.all(np.diff(idx) >= 0)


def test_reshape_is_an_alias_between_ops() -> None:
    rng = np.random.default_rng(12)
    b = GraphBuilder(0)
    x = new_input(b, rng, (1, 4, 6, 3))
    y = b.reshape(b.max_pool(x, (2, 2)), (1, -1))
    g = b.build([b.reshape(b.pad(b.reshape(y, (2, 9)), ((1, 0), (0, 2))), (3, 11))])
    check(g, seed=12)


# ---------------------------------------------------------------- dev models and sanitizers


def _single_op_graphs() -> list[tuple[str, Graph]]:
    graphs = []
    for path in dev_models():
        model = read_tflite(path.read_bytes(), path.stem)
        for i, op in enumerate(model.ops):
            if op.kind in MY_KINDS - {"RESHAPE"}:
                names = [n for n in (*op.inputs, *op.outputs) if n]
                graph = Graph({n: model[n] for n in names}, (op,), tuple(op.inputs), tuple(op.outputs), "op")
                graphs.append((f"{path.stem}:{i}:{op.kind}", graph))
    return graphs


def test_dev_model_ops_match_tflm() -> None:
    graphs = _single_op_graphs()
    assert {g.ops[0].kind for _, g in graphs} >= {"AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "REDUCE_MAX",
                                                  "TRANSPOSE"}
    for k, (_, graph) in enumerate(graphs):
        check(graph, seed=100 + k, count=3)


def test_kernels_clean_under_sanitizers() -> None:
    """Every kernel and variant (including ones TFLM cannot run: 3-axis MEAN, rank-6 PAD) under ASan/UBSan."""
    rng = np.random.default_rng(13)
    b = GraphBuilder(0)
    x = new_input(b, rng, (2, 7, 6, 5))
    outs = [b.avg_pool(x, (3, 2), (2, 3), "same", "RELU6"), b.max_pool(x, (4, 4), (1, 2), "same"),
            b.mean(x, (0, 1, 3), True), b.mean(x, (), False), b.reduce_max(x, (0, 2, 3), False),
            b.pad(x, ((1, 0), (0, 2), (3, 1), (0, 0)), 5), b.transpose(x, (3, 1, 0, 2)),
            b.strided_slice(x, [(None, None, -1), (6, 0, -3), (1, 5, 2), (4, 5, 1)], [3]),
            b.resize_nearest(x, (11, 3), True, False), b.resize_nearest(x, (3, 13), False, True)]
    q = b.quant(x)
    y = b.input((2, 7, 6, 3), scale=q.s * 1.7, zero_point=q.zp + 9)
    outs.append(b.concat([x, b.pad(y, ((0, 0),) * 3 + ((1, 1),)), x], 3, "RELU"))
    z = new_input(b, rng, (2, 1, 3, 1, 2, 2))
    outs += [b.pad(z, ((1, 1),) * 6, -7), b.transpose(z, (5, 4, 3, 2, 1, 0)), b.mean(z, (1, 2, 4), False),
             b.strided_slice(z, [(1, None, 1), (0, 1, 1), (None, None, -2), (0, 1, 1), (1, 0, -1), (0, 2, 1)])]
    g = _drop_quantize_ops(b.build(outs))
    lib = compile_graph(g, "sanitized")
    exe = build_executable(lib, sanitize=True)
    for inputs in random_inputs(g, rng, 3):
        for got, want in zip(run_executable(lib, exe, inputs), reference.run(g, inputs)):
            np.testing.assert_array_equal(got.reshape(want.shape), want)
