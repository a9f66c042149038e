"""TRANSPOSE_CONV int8 (mcuforge.operators.transpose_conv): C == reference == TFLM over strides, SAME and
VALID padding, odd sizes, per-channel weights, with and without bias."""
from __future__ import annotations

import numpy as np
import pytest

from mcuforge.frontends.tflite_reader import read_tflite
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, Op, QuantParams, Tensor
from mcuforge.verify import verify
from oracle import assert_qemu_equals_reference, assert_sanitized_equals_reference

# (input H, W, C), (output H, W, C), kernel, stride, padding
CASES = [((3, 3, 4), (6, 6, 5), (3, 3), (2, 2), "SAME"), ((4, 5, 3), (9, 11, 2), (3, 3), (2, 2), "VALID"),
         ((5, 4, 2), (5, 4, 3), (3, 2), (1, 1), "SAME"), ((2, 3, 6), (7, 10, 4), (4, 4), (3, 3), "VALID"),
         ((3, 2, 8), (6, 4, 8), (2, 2), (2, 2), "SAME"), ((2, 2, 3), (5, 6, 1), (5, 4), (2, 3), "SAME")]


def tconv_graph(seed: int, src, dst, kernel, stride, padding, bias: bool = True, per_channel: bool = True) -> Graph:
    rng = np.random.default_rng(seed)
    o, i = dst[2], src[2]
    w_scales = rng.uniform(0.002, 0.02, o) if per_channel else np.full(1, 0.01)
    wq = QuantParams(scale=w_scales.astype(np.float32), zero_point=np.zeros(w_scales.size, np.int64),
                     axis=0 if per_channel else None)
    x_scale = 0.03
    t = {"x": Tensor("x", (1, *src), "int8", QuantParams.per_tensor(x_scale, int(rng.integers(-30, 30)))),
         "w": Tensor("w", (o, *kernel, i), "int8", wq, rng.integers(-127, 128, (o, *kernel, i)).astype(np.int8)),
         "y": Tensor("y", (1, *dst), "int8", QuantParams.per_tensor(float(rng.uniform(0.05, 0.3)),
                                                                   int(rng.integers(-20, 20))))}
    if bias:
        t["b"] = Tensor("b", (o,), "int32", QuantParams(scale=(w_scales * x_scale).astype(np.float32),
                                                         zero_point=np.zeros(w_scales.size, np.int64),
                                                         axis=0 if per_channel else None),
                        rng.integers(-5000, 5000, o).astype(np.int32))
    op = Op("TRANSPOSE_CONV", ("x", "w", "b" if bias else ""), ("y",), {"stride": stride, "padding": padding})
    return Graph(t, (op,), ("x",), ("y",), name="tconv")


@pytest.mark.parametrize("case", range(len(CASES)))
def test_transpose_conv_equals_tflm(case: int) -> None:
    g = tconv_graph(case, *CASES[case], bias=case != 2, per_channel=case != 4)
    data = write_tflite(g)
    graph = read_tflite(data, "tconv")
    result = verify(graph, samples=5, tflite_bytes=data)
    assert result.tflm_checked and result.ok, result.mismatches[:3]


def test_transpose_conv_in_qemu(toolchain) -> None:
    assert_qemu_equals_reference(read_tflite(write_tflite(tconv_graph(1, *CASES[1])), "tconv"))


def test_transpose_conv_under_sanitizers() -> None:
    graph = tconv_graph(1, *CASES[1])
    assert_sanitized_equals_reference(read_tflite(write_tflite(graph), "transpose_conv"))
