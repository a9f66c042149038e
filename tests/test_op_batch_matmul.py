"""BATCH_MATMUL int8 (mcuforge.operators.batch_matmul): C == reference == TFLM over ranks 2 to 4, adjoint
operands, broadcast batches, a constant right-hand side and nonzero zero points."""
from __future__ import annotations

import numpy as np
import pytest

from mcuforge.frontends.tflite_reader import read_tflite
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, Op, QuantParams, Tensor
from mcuforge.verify import verify
from oracle import assert_qemu_equals_reference, assert_sanitized_equals_reference

# lhs shape, rhs shape, adj_x, adj_y, rhs constant
CASES = [((3, 4), (4, 5), False, False, False), ((2, 3, 4), (2, 4, 5), False, False, False),
         ((2, 4, 3), (2, 5, 4), True, True, False), ((1, 2, 3, 6), (2, 1, 6, 2), False, False, False),
         ((3, 2, 7), (7, 4), False, False, True), ((4, 1, 5, 3), (2, 3), False, True, True),
         ((2, 6, 3), (1, 6, 8), True, False, False)]


def matmul_graph(seed: int, a_shape, b_shape, adj_x: bool, adj_y: bool, constant: bool,
                 scales: tuple[float, float, float] | None = None) -> Graph:
    rng = np.random.default_rng(seed)
    sa, sb, sy = scales or (rng.uniform(0.01, 0.1), rng.uniform(0.01, 0.1), rng.uniform(0.05, 0.5))
    a = np.swapaxes(np.zeros(a_shape), -1, -2) if adj_x else np.zeros(a_shape)
    b = np.swapaxes(np.zeros(b_shape), -1, -2) if adj_y else np.zeros(b_shape)
    out = (*np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), a.shape[-2], b.shape[-1])
    t = {"a": Tensor("a", a_shape, "int8", QuantParams.per_tensor(float(sa), int(rng.integers(-20, 20)))),
         "b": Tensor("b", b_shape, "int8", QuantParams.per_tensor(float(sb), int(rng.integers(-20, 20))),
                     rng.integers(-128, 128, b_shape).astype(np.int8) if constant else None),
         "y": Tensor("y", out, "int8", QuantParams.per_tensor(float(sy), int(rng.integers(-20, 20))))}
    op = Op("BATCH_MATMUL", ("a", "b"), ("y",), {"adj_x": adj_x, "adj_y": adj_y})
    return Graph(t, (op,), ("a",) if constant else ("a", "b"), ("y",), name="matmul")


@pytest.mark.parametrize("case", range(len(CASES)))
def test_batch_matmul_equals_tflm(case: int) -> None:
    data = write_tflite(matmul_graph(case, *CASES[case]))
    graph = read_tflite(data, "matmul")
    result = verify(graph, samples=5, tflite_bytes=data)
    assert result.tflm_checked and result.ok, result.mismatches[:3]


def test_batch_matmul_in_qemu(toolchain) -> None:
    assert_qemu_equals_reference(read_tflite(write_tflite(matmul_graph(3, *CASES[3])), "matmul"))
    assert_qemu_equals_reference(read_tflite(write_tflite(matmul_graph(5, *CASES[5])), "matmul"))


def test_batch_matmul_under_sanitizers() -> None:
    graph = matmul_graph(5, *CASES[5])
    assert_sanitized_equals_reference(read_tflite(write_tflite(graph), "batch_matmul"))
