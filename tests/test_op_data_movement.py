"""PACK, UNPACK, SPLIT, SPLIT_V, GATHER and TILE on int8 activations (mcuforge.operators.pack, .split,
.gather, .tile).

The reader lowers them into RESHAPE, STRIDED_SLICE and CONCATENATION; each graph here is written as a
.tflite holding the TFLite operators themselves, so TFLM runs those while mcuforge runs its lowering."""
from __future__ import annotations

import numpy as np
import pytest

from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_reader import read_tflite
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, Op, QuantParams, Tensor
from mcuforge.verify import verify
from oracle import assert_qemu_equals_reference

Q = QuantParams.per_tensor(0.05, 3)


def _graph(ops: list[Op], shapes: dict[str, tuple[int, ...]], outputs: tuple[str, ...],
           consts: dict[str, np.ndarray] | None = None) -> Graph:
    tensors = {n: Tensor(n, s, "int8", Q) for n, s in shapes.items()}
    for n, v in (consts or {}).items():
        tensors[n] = Tensor(n, v.shape, "int32", None, v.astype(np.int32))
    return Graph(tensors, tuple(ops), ("x",), outputs, name="moves")


CASES = {
    "unpack_pack": _graph(
        [Op("UNPACK", ("x",), ("u0", "u1", "u2"), {"axis": 1}),
         Op("PACK", ("u2", "u0"), ("p",), {"axis": 0}),
         Op("PACK", ("u1", "u2", "u0"), ("q",), {"axis": -1})],
        {"x": (1, 3, 4, 6), "u0": (1, 4, 6), "u1": (1, 4, 6), "u2": (1, 4, 6), "p": (2, 1, 4, 6), "q": (1, 4, 6, 3)},
        ("p", "q")),
    "split": _graph(
        [Op("SPLIT", ("x",), ("s0", "s1"), {"axis": 3}),
         Op("SPLIT_V", ("s1",), ("v0", "v1", "v2"), {"axis": 2})],
        {"x": (1, 3, 4, 6), "s0": (1, 3, 4, 3), "s1": (1, 3, 4, 3), "v0": (1, 3, 1, 3), "v1": (1, 3, 2, 3),
         "v2": (1, 3, 1, 3)},
        ("s0", "v0", "v1", "v2")),
    "gather": _graph(
        [Op("GATHER", ("x", "i4"), ("g0",), {"axis": 3}), Op("GATHER", ("x", "i1"), ("g1",), {"axis": 1}),
         Op("GATHER", ("x", "i22"), ("g2",), {"axis": 2})],
        {"x": (1, 3, 4, 6), "g0": (1, 3, 4, 4), "g1": (1, 4, 6), "g2": (1, 3, 2, 2, 6)},
        ("g0", "g1", "g2"),
        {"i4": np.array([5, 0, 0, 2]), "i1": np.array(1), "i22": np.array([[3, 0], [1, 1]])}),
}
TILE = _graph([Op("TILE", ("x",), ("t0",), {"multiples": (1, 2, 1, 3)}),
               Op("TILE", ("x",), ("t1",), {"multiples": (1, 1, 1, 1)})],
              {"x": (1, 3, 4, 6), "t0": (1, 6, 4, 18), "t1": (1, 3, 4, 6)}, ("t0", "t1"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_lowered_data_movement_equals_tflm(case: str) -> None:
    data = write_tflite(CASES[case])
    graph = read_tflite(data, case)
    kinds = {op.kind for op in graph.ops}
    assert kinds <= {"RESHAPE", "STRIDED_SLICE", "CONCATENATION"}, kinds
    assert all(op.name in CASES[case].tensors for op in graph.ops)  # every lowered op names its origin
    result = verify(graph, samples=6, tflite_bytes=data)
    assert result.tflm_checked and result.ok, result.mismatches[:3]


def test_tile_equals_numpy() -> None:
    """The pip tflite-micro registers no TILE, so numpy's np.tile is the oracle; C == reference."""
    from mcuforge.engine.reference import run
    from mcuforge.verify import random_inputs

    graph = read_tflite(write_tflite(TILE), "tile")
    assert {op.kind for op in graph.ops} <= {"RESHAPE", "CONCATENATION"}
    for xs in random_inputs(graph, 3, seed=2):
        t0, t1 = run(graph, xs)
        assert np.array_equal(t0, np.tile(xs[0], (1, 2, 1, 3))) and np.array_equal(t1, xs[0])
    result = verify(graph, samples=4, use_tflm=False)
    assert result.ok, result.mismatches[:3]


def test_differently_quantized_pieces_are_refused() -> None:
    g = CASES["unpack_pack"]
    tensors = dict(g.tensors)
    tensors["u1"] = Tensor("u1", (1, 4, 6), "int8", QuantParams.per_tensor(0.1, 3))
    with pytest.raises(ModelError, match="quantized unlike"):
        read_tflite(write_tflite(Graph(tensors, g.ops, g.inputs, g.outputs)), "m")


def test_gather_at_computed_indices_is_refused() -> None:
    g = _graph([Op("GATHER", ("x", "i"), ("y",), {"axis": 0})], {"x": (4, 2), "y": (1, 2)}, ("y",))
    tensors = dict(g.tensors)
    tensors["i"] = Tensor("i", (1,), "int32")
    g = Graph(tensors, g.ops, ("x", "i"), g.outputs)
    with pytest.raises(ModelError, match="constant integer indices"):
        read_tflite(write_tflite(g), "m")


def test_lowered_data_movement_in_qemu(toolchain) -> None:
    for case in ("unpack_pack", "gather"):
        assert_qemu_equals_reference(read_tflite(write_tflite(CASES[case]), case))
    assert_qemu_equals_reference(read_tflite(write_tflite(TILE), "tile"))
