"""RESIZE_BILINEAR int8 (mcuforge.operators.resize_bilinear): C == reference == TFLM over up- and
down-sampling, odd ratios, align_corners and half-pixel centers."""
from __future__ import annotations

import pytest

from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_reader import read_tflite
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, Op, QuantParams, Tensor
from mcuforge.verify import verify
from oracle import assert_qemu_equals_reference, assert_sanitized_equals_reference

SIZES = [((2, 3), (4, 6)), ((5, 7), (3, 4)), ((3, 3), (7, 5)), ((1, 4), (3, 9)), ((6, 6), (6, 6)), ((4, 2), (1, 1))]
MODES = [(False, False), (True, False), (False, True)]


def resize_graph(src: tuple[int, int], dst: tuple[int, int], align: bool, half: bool, channels: int = 3,
                 quant: QuantParams = QuantParams.per_tensor(0.05, -7)) -> Graph:
    t = {"x": Tensor("x", (2, *src, channels), "int8", quant), "y": Tensor("y", (2, *dst, channels), "int8", quant)}
    op = Op("RESIZE_BILINEAR", ("x",), ("y",), {"align_corners": align, "half_pixel_centers": half})
    return Graph(t, (op,), ("x",), ("y",), name="resize")


@pytest.mark.parametrize("mode", MODES, ids=lambda m: f"align{int(m[0])}-half{int(m[1])}")
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: f"{s[0][0]}x{s[0][1]}-{s[1][0]}x{s[1][1]}")
def test_resize_bilinear_equals_tflm(sizes, mode) -> None:
    data = write_tflite(resize_graph(*sizes, *mode))
    graph = read_tflite(data, "resize")
    result = verify(graph, samples=6, tflite_bytes=data)
    assert result.tflm_checked and result.ok, result.mismatches[:3]


def test_resize_bilinear_in_qemu(toolchain) -> None:
    assert_qemu_equals_reference(read_tflite(write_tflite(resize_graph((3, 5), (7, 4), False, True)), "resize"))


def test_requantizing_resize_is_refused() -> None:
    g = resize_graph((2, 2), (4, 4), False, True)
    t = dict(g.tensors)
    t["y"] = Tensor("y", t["y"].shape, "int8", QuantParams.per_tensor(0.1, 0))
    with pytest.raises(ModelError, match="quantized differently"):
        read_tflite(write_tflite(Graph(t, g.ops, g.inputs, g.outputs)), "m")


def test_resize_bilinear_under_sanitizers() -> None:
    graph = resize_graph((3, 5), (7, 4), False, True)
    assert_sanitized_equals_reference(read_tflite(write_tflite(graph), "resize_bilinear"))
