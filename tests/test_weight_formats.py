"""Weight formats (ir/formats.py) and `mcuforge compress`: int4 weights stored two per byte and decoded inside
the kernels give the same bits as the int8 model in TFLM and the reference, with half the weight bytes and
no more SRAM; the compress command's re-quantization and its one-line refusals."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuforge.cli import main
from mcuforge.compress.weights import compress_weights, weight_bytes
from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_reader import read_tflite
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir.formats import (POW2, choose_formats, decode, encode, encoded_bytes, format_summary, holds,
                                 pack_codebook, pack_int4, pack_sparse, pack_wb_rows, tensor_bytes, unpack_codebook,
                                 unpack_int4, unpack_sparse, weight_tensors)
from mcuforge.pipeline import compile_model, load_model
from mcuforge.verify import verify
from mcuforge.models.builder import GraphBuilder
from netbuilder import merge
from oracle import assert_qemu_equals_reference, dev_models

WEIGHTED = [p for p in dev_models() if p.stem.startswith(("mlperf_kws", "mlperf_ic_resnet8", "mlperf_ad",
                                                           "tflm_hello", "ambiq_har", "st_har"))]
KWS = next(p for p in dev_models() if p.stem.startswith("mlperf_kws"))


def test_int4_layout_is_tflites_low_nibble_first() -> None:
    assert pack_int4(np.array([1, -1, -8, 7, 3])).tolist() == [0xF1, 0x78, 0x03]
    assert unpack_int4(np.array([0xF1, 0x78, 0x03], np.uint8), 5).tolist() == [1, -1, -8, 7, 3]
    with pytest.raises(ValueError):
        pack_int4(np.array([8]))
    # the fast kernels' w4 rows: per group of eight, byte j = value j | value j + 4 << 4, padded to the group
    assert pack_wb_rows(np.array([[1, 2, 3, 4, 5, 6, 7, -8, -1]])).tolist() == [[0x51, 0x62, 0x73, 0x84, 15, 0, 0, 0]]
    # ternary rows: per group of sixteen, byte j = values j, j + 4, j + 8, j + 12 in 2-bit fields from the lowest
    row = [1, -1, 0, 1, 0, 0, 1, -1, -1, 0, 0, 0, 1, 1, 1, 1, -1]
    assert pack_wb_rows(np.array([row]), 2).tolist() == [[0b01110001, 0b01000011, 0b01000100, 0b01001101, 3, 0, 0, 0]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-8, 7), max_size=41))
def test_int4_round_trip(values: list[int]) -> None:
    packed = pack_int4(np.array(values, np.int8))
    assert packed.size == (len(values) + 1) // 2
    assert unpack_int4(packed, len(values)).tolist() == values


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 7), st.data())
def test_codebook_round_trip(bits: int, data) -> None:
    table = data.draw(st.lists(st.integers(-128, 127), min_size=1, max_size=1 << bits, unique=True))
    values = np.array(data.draw(st.lists(st.sampled_from(table), max_size=50)), np.int8)
    packed_table, indices = pack_codebook(values, bits)
    assert packed_table.size + indices.size == encoded_bytes(f"codebook:{bits}", values.size)
    assert unpack_codebook(packed_table, indices, bits, values.size).tolist() == values.tolist()


def test_ternary_and_pow2_layouts() -> None:
    # ternary: 2-bit two's complement codes, lowest bits first; pow2: sign << 3 | (k + 1) in int4's nibble order
    assert encode("ternary", np.array([1, -1, 0, 1, -1])).tolist() == [0b01001101, 0b11]
    assert encode("pow2", np.array([1, -64, 0, 8, -1])).tolist() == [0xF1, 0x40, 0x09]
    # base 3, five per byte: (value + 1) as digits from the lowest; a partial last group padded with zeros (digit 1)
    assert encode("ternary:base3", np.array([1, -1, 0, 0, 1, -1])).tolist() == [2 + 0 + 9 + 27 + 2 * 81,
                                                                             0 + 3 + 9 + 27 + 81]
    assert POW2 == (-64, -32, -16, -8, -4, -2, -1, 0, 1, 2, 4, 8, 16, 32, 64)
    with pytest.raises(ValueError):
        encode("ternary", np.array([2]))
    with pytest.raises(ValueError):
        encode("pow2", np.array([3]))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["ternary", "ternary:base3", "pow2"]), st.data())
def test_ternary_and_pow2_round_trip(fmt: str, data) -> None:
    domain = POW2 if fmt == "pow2" else (-1, 0, 1)
    values = np.array(data.draw(st.lists(st.sampled_from(domain), max_size=45)), np.int8)
    packed = encode(fmt, values)
    assert packed.size == encoded_bytes(fmt, values.size) and holds(fmt, values)
    assert decode(fmt, packed, values.size).tolist() == values.tolist()


@pytest.mark.parametrize("path", WEIGHTED, ids=lambda p: p.stem)
def test_dev_models_in_every_format_are_bit_exact(path) -> None:
    """Each dev model re-encoded into every format (mcuforge compress): C = reference = TFLM on the host."""
    original = load_model(path)
    for fmt in ("ternary", "ternary:base3", "pow2", "codebook:4", "sparse", "sparse:int4"):
        graph, _ = compress_weights(original, fmt, sparsity=0.8)
        result = verify(graph, samples=1, tflite_bytes=write_tflite(graph))
        assert result.ok and result.tflm_checked, (fmt, result.lines())


def test_sparse_layout() -> None:
    """Per block of 32 values a bitmap word, per superblock of 8 blocks the nonzeros before it, per block the
    nonzeros before it in its superblock (bytes, lowest first); then the nonzero values."""
    values = np.zeros(300, np.int8)
    values[[1, 4, 33, 299]] = [5, -3, 7, 9]
    words, nonzero = pack_sparse(values)
    bitmaps = [18, 2, 0, 0, 0, 0, 0, 0, 0, 1 << 11]  # 10 blocks; value 299 is bit 11 of block 9
    local = [bytes([0, 2, 3, 3]), bytes([3, 3, 3, 3]), bytes([0, 0, 0, 0])]  # blocks 0..7, then 8, 9 (+ padding)
    assert words.tolist() == bitmaps + [0, 3] + [int.from_bytes(w, "little") for w in local]
    assert nonzero.tolist() == [5, -3, 7, 9]
    assert tensor_bytes("sparse", values) == 4 * 15 + 4


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["sparse", "sparse:int4"]), st.data())
def test_sparse_round_trip(fmt: str, data) -> None:
    domain = [0, 0, 0, 0, -128, -1, 1, 127, 42] if fmt == "sparse" else [0, 0, 0, 0, -8, -1, 1, 7]
    values = data.draw(st.lists(st.sampled_from(domain), max_size=600))
    v = np.array(values, np.int8)
    words, nonzero = pack_sparse(v, fmt)
    assert 4 * words.size + nonzero.size == tensor_bytes(fmt, v) and holds(fmt, v)
    assert unpack_sparse(words, nonzero, v.size, fmt).tolist() == values


@pytest.mark.parametrize("fmt, ratio", [("ternary", 0.25), ("ternary:base3", 0.2), ("pow2", 0.5), ("sparse", 0.40),
                                        ("sparse:int4", 0.28)])
def test_ternary_pow2_and_sparse_weights_are_bit_exact(fmt: str, ratio: float) -> None:
    """Per-channel ternary (the magnitude in the scale) and power-of-two weights, and weights pruned to 80 %
    zeros (mcuforge compress), stored in 2, 4 bits and as a bitmap with the nonzero values, decoded in the
    kernels: C = reference = TFLM, host and Cortex-M4/M7."""
    graph, rows = compress_weights(load_model(KWS), fmt, sparsity=0.8)
    assert rows and all(holds(fmt, graph[n].data) and graph[n].format == fmt for n in weight_tensors(graph))
    auto = choose_formats(choose_formats(graph, "int8"), "auto")[weight_tensors(graph)[0]].format
    assert auto == ("ternary" if fmt == "ternary:base3" else fmt)  # base 3 only when asked for
    result = verify(graph, samples=2, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.lines()
    packed, plain = weight_bytes(graph)
    assert packed == sum(tensor_bytes(fmt, graph[n].data) for n in weight_tensors(graph))
    assert packed <= ratio * plain + len(rows)
    assert f"MCU_W_{fmt.upper().replace(':', '_')}" in compile_model(graph).lib.files[f"{graph.name}.c"]
    assert_qemu_equals_reference(graph, samples=1)


@pytest.mark.parametrize("fmt", ["codebook:2", "codebook:4", "codebook:7"])
def test_codebook_weights_are_bit_exact(fmt: str) -> None:
    """Clustered weights (mcuforge compress --weights codebook:B), stored as B-bit indices and a table that the
    plain kernels look up as they read: C = reference = TFLM, and B/8 of the int8 bytes plus the tables."""
    graph, rows = compress_weights(load_model(KWS), fmt)
    bits = int(fmt.split(":")[1])
    assert all(len(np.unique(graph[n].data)) <= 1 << bits and graph[n].format == fmt for n in weight_tensors(graph))
    result = verify(graph, samples=2, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.lines()
    packed, plain = weight_bytes(graph)
    assert packed <= bits / 8 * plain + len(rows) * ((1 << bits) + 2)
    assert "MCU_W_CODEBOOK" in compile_model(graph).lib.files[f"{graph.name}.c"]


def test_codebook_weights_in_qemu_equal_the_reference() -> None:
    graph, _ = compress_weights(load_model(KWS), "codebook:3")
    assert_qemu_equals_reference(graph, samples=2)


def test_auto_takes_int4_only_where_the_values_fit() -> None:
    graph, _ = compress_weights(load_model(KWS))
    first = weight_tensors(graph)[0]
    wide = replace(graph, tensors={**graph.tensors, first: replace(graph[first], data=graph[first].data * 9)})
    auto = choose_formats(wide, "auto")
    assert auto[first].format == "codebook:4" and not holds("int4", auto[first].data)  # 16 values, x9
    assert all(auto[n].format == "int4" for n in weight_tensors(auto)[1:])  # int4 beats codebook:4's table
    spread = replace(wide, tensors={**wide.tensors, first: replace(wide[first], data=np.arange(
        wide[first].size).reshape(wide[first].shape).astype(np.int8))})
    assert choose_formats(spread, "auto")[first].format == "int8"  # 256 values: nothing smaller holds them
    assert choose_formats(auto, "int8")[first].format == "int8"
    with pytest.raises(ModelError, match="1 weight tensor.*outside int4.*values -.*--weights auto"):
        choose_formats(wide, "int4")


@pytest.mark.parametrize("path", WEIGHTED, ids=lambda p: p.stem)
def test_int4_weights_are_bit_exact_with_half_the_bytes(path) -> None:
    """C (int4 weights decoded in the kernels) = reference = TFLM (the same model as int8 .tflite)."""
    graph, rows = compress_weights(load_model(path))
    assert rows and all(holds("int4", graph[n].data) for n in weight_tensors(graph))
    as_int8 = choose_formats(graph, "int8")
    int8, int4 = compile_model(as_int8), compile_model(graph)
    result = verify(graph, samples=3, tflite_bytes=write_tflite(graph), compiled=int4)
    assert result.ok and result.tflm_checked, result.lines()
    packed, plain = weight_bytes(graph)
    assert packed <= 0.52 * plain and format_summary(graph)["int4"]["tensors"] == len(rows)
    # the flash saved is the weights' bytes, less the int4 im2col rows' padding to a whole weight word
    assert int8.lib.flash_weights_bytes - int4.lib.flash_weights_bytes >= plain - packed - _int4_row_padding(graph)
    assert int4.plan.arena_bytes <= int8.plan.arena_bytes


def _int4_row_padding(graph) -> int:
    """Bytes of padding in the int4 filter rows of the im2col convolutions (rows padded to 8 values)."""
    from mcuforge.operators.conv_2d import pointwise, wb_stride
    from mcuforge.operators.convolution import conv_geometry

    total = 0
    for op in graph.ops:
        if op.kind == "CONV_2D" and graph[op.inputs[1]].format == "int4":
            g = conv_geometry(op, graph)
            if g.groups == 1 and not pointwise(g):
                total += g.out_c * (wb_stride(g, 4) - g.k_h * g.k_w * g.in_c) // 2
    return total


def test_int4_tflite_round_trip() -> None:
    """Convolution weights in int4 are written as TFLite INT4 tensors (half the bytes), which TFLM runs and the
    reader takes back as int4; fully-connected ones stay INT8 in the file (the pip TFLM refuses INT4 there)."""
    graph, _ = compress_weights(load_model(KWS))
    data, plain = write_tflite(graph), write_tflite(choose_formats(graph, "int8"))
    assert len(plain) - len(data) > 0.45 * sum(graph[op.inputs[1]].size for op in graph.ops
                                              if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    back = read_tflite(data)
    for op in back.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = back[op.inputs[1]]
            assert w.format == ("int8" if op.kind == "FULLY_CONNECTED" else "int4")
            assert np.array_equal(w.data, graph[op.inputs[1]].data)
    result = verify(back, samples=2, tflite_bytes=data)
    assert result.ok and result.tflm_checked, result.lines()


# (input shape, layer): pointwise convolutions (out_c, stride) and fully-connected layers (units) that take the
# fast int4 kernels (mcu_gemm_s4.h): odd channel and pixel counts, strides, batches, depths of 8 and 16 ...
FAST_CASES = [((1, 5, 3, 16), ("conv", 7, 1, 1)), ((1, 6, 5, 8), ("conv", 12, 1, 2)),
              ((2, 3, 3, 24), ("conv", 5, 1, 1)), ((1, 4, 4, 40), ("conv", 64, 1, 1)), ((3, 8), ("fc", 5)),
              ((1, 48), ("fc", 16)), ((2, 136), ("fc", 9)),
              ((1, 9, 7, 3), ("conv", 8, 3, 2)), ((1, 6, 6, 8), ("conv", 5, 3, 1)), ((2, 5, 4, 4), ("conv", 6, 2, 1)),
              # depthwise layers (the plane kernel, in place or not; the plain one with a multiplier or dilation),
              # and depths that are not multiples of 8
              ((1, 7, 6, 8), ("dw", 3, 1, 1)), ((2, 6, 5, 12), ("dw", 5, 2, 1)), ((1, 5, 6, 6), ("dw", 3, 1, 1)),
              ((1, 5, 5, 3), ("dw", 3, 1, 2)), ((1, 9, 8, 8), ("dw", 3, 1, 1, 2)),
              ((1, 4, 4, 13), ("conv", 8, 1, 1)), ((1, 12), ("fc", 3))]
FAST = len(FAST_CASES) - 2
FAST_CALLS = ("mcu_conv_s8_1x1_w4(", "mcu_fc_s8_gemm_w4(", "mcu_conv_s8_im2col_w4(")


def _fast_case(i: int):
    shape, layer = FAST_CASES[i]
    b = GraphBuilder(seed=900 + i)
    x = b.input(shape, zero_point=(-37 * i) % 256 - 128)
    if layer[0] == "conv":
        y = b.conv2d(x, layer[1], kernel=layer[2], stride=layer[3], padding="valid" if layer[2] == 1 else "same",
                     activation="RELU" if i % 2 else "NONE")
    elif layer[0] == "dw":
        y = b.depthwise_conv2d(x, kernel=layer[1], stride=layer[2], multiplier=layer[3],
                               dilation=layer[4] if len(layer) > 4 else 1, activation="RELU6" if i % 2 else "NONE")
    else:
        y = b.fully_connected(x, layer[1])
    graph, _ = compress_weights(b.build([y], f"w4_{i}"))
    return f"{shape} {layer}", graph


@pytest.mark.parametrize("i", range(len(FAST_CASES)))
def test_fast_int4_kernels_are_bit_exact(i: int) -> None:
    _, graph = _fast_case(i)
    code = compile_model(graph).lib.files[f"w4_{i}.c"]
    assert any(call in code for call in FAST_CALLS) == (FAST_CASES[i][1][0] != "dw" and i < FAST)
    result = verify(graph, samples=3, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.lines()


def test_fast_int4_kernels_in_qemu() -> None:
    """The DSP paths (SXTB16 on masked nibbles; the column where the merged graph leaves room) on Cortex-M4 and M7."""
    graph = merge([_fast_case(i) for i in range(len(FAST_CASES))], "w4")
    code = compile_model(graph).lib.files["w4.c"]
    calls = re.findall(r"mcu_conv_s8_1x1_w4\((.*?)\);", code, re.S)
    columns = [call.rsplit(",", 1)[1].strip() != "(int8_t *)0" for call in calls]
    assert len(calls) == 4 and any(columns)  # (the FC layers take the int8 rows path)
    calls = re.findall(r"mcu_conv_s8_im2col_w4\((.*?)\);", code, re.S)
    columns = [call.rsplit(",", 1)[1].strip() != "(int8_t *)0" for call in calls]
    assert len(calls) == 3 and any(columns) and code.count("mcu_fc_s8_gemm_w4(") == 3
    assert code.count("mcu_dwconv_s8_w(") + code.count("mcu_dwconv_s8_inplace_w(") == 2
    calls = re.findall(r"mcu_dwconv_s8_plane_w\((.*?)\);", code, re.S)
    assert len(calls) == 3  # (where the plane does not raise the peak: not in the one-layer graphs alone)
    assert_qemu_equals_reference(graph, samples=2)
    assert_qemu_equals_reference(_fast_case(7)[1], samples=2)  # im2col without scratch: the output's tail


@pytest.mark.parametrize("fmt", ["int4", "codebook:3"])
def test_depthwise_plane_in_place_with_weights_in_a_format(fmt: str) -> None:
    """A depthwise layer over its own input, whose plane fits under the peak the pointwise layer before it
    sets, decodes its taps once per channel (mcu_dwconv_s8_plane_w): host and TFLM, Cortex-M4 and M7."""
    b = GraphBuilder(seed=77)
    x = b.input((1, 7, 9, 8), zero_point=-21)
    y = b.conv2d(x, 32, kernel=1, activation="RELU")
    y = b.depthwise_conv2d(y, kernel=3, stride=1, activation="RELU6")
    y = b.depthwise_conv2d(y, kernel=5, stride=2)
    graph, _ = compress_weights(b.build([b.conv2d(y, 8, kernel=1)], "dwplane"), fmt)
    compiled = compile_model(graph)
    calls = re.findall(r"mcu_dwconv_s8_plane_w\((.*?)\);", compiled.lib.files["dwplane.c"], re.S)
    pointers = [re.findall(r"&dwplane_arena\.bytes\[\d+\]", call) for call in calls]
    assert len(calls) == 2 and all(p[0] == p[1] for p in pointers)  # input and output: in place
    assert compiled.plan.arena_bytes == compile_model(choose_formats(graph, "int8")).plan.arena_bytes
    result = verify(graph, samples=3, tflite_bytes=write_tflite(choose_formats(graph, "int8")))
    assert result.ok and result.tflm_checked, result.lines()
    assert_qemu_equals_reference(graph, samples=2)


@pytest.mark.parametrize("fmt, bits", [("ternary", 2), ("pow2", 4), ("codebook:4", 4), ("codebook:2", 2)])
def test_low_bit_kernels_on_odd_shapes(fmt: str, bits: int) -> None:
    """The fast kernels with 2-bit ternary rows (mcu_gemm_s4.h with bits 2: sixteen weights per load), and with
    pow2 and codebook codes looked up in their table, on the shapes above: host against TFLM, then Cortex-M4
    and M7."""
    graph, _ = compress_weights(merge([_fast_case(i) for i in range(len(FAST_CASES))], "wb"), fmt)
    code = compile_model(graph).lib.files["wb.c"]
    kind = "w2" if fmt == "ternary" else "lut"
    # pointwise and fully-connected depths that are multiples of a word (16 or 8 values); every im2col layer
    pointwise, fc = (1, 1) if bits == 2 else (4, 3)
    assert code.count(f"mcu_conv_s8_1x1_{kind}(") == pointwise and code.count(f"mcu_conv_s8_im2col_{kind}(") == 3
    assert code.count("mcu_fc_s8_gemm_lut(" if kind == "lut" else "mcu_fc_s8_gemm_w2(") == fc
    result = verify(graph, samples=2, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.lines()
    assert_qemu_equals_reference(graph, samples=2)


@pytest.mark.parametrize("fmt", ["sparse", "sparse:int4"])
def test_sparse_kernels_on_odd_shapes(fmt: str) -> None:
    """The zero-skipping kernels (mcu_sparse_s8.h: pointwise, im2col and fully-connected, four pixels at a
    time and one) on the shapes above, 70 % zeros: host against TFLM, then Cortex-M4 and M7."""
    graph, _ = compress_weights(merge([_fast_case(i) for i in range(len(FAST_CASES))], "sp"), fmt, 0.7)
    code = compile_model(graph).lib.files["sp.c"]
    assert code.count("mcu_conv_s8_1x1_sparse(") == 5 and code.count("mcu_fc_s8_sparse(") == 4
    assert code.count("mcu_conv_s8_im2col_sparse(") >= 2
    result = verify(graph, samples=2, tflite_bytes=write_tflite(graph))
    assert result.ok and result.tflm_checked, result.lines()
    assert_qemu_equals_reference(graph, samples=2)


# random layers for the hypothesis test below: (builder, x) -> y
RANDOM_LAYERS = [
    lambda b, x, r: b.conv2d(x, r.choice([8, 16, 5]), kernel=3, stride=r.choice([1, 2]), activation="RELU"),
    lambda b, x, r: b.conv2d(x, r.choice([8, 16, 32, 7]), kernel=1, padding="valid",
                             activation=r.choice(["NONE", "RELU6"])),
    lambda b, x, r: b.depthwise_conv2d(x, kernel=r.choice([3, 5]), stride=r.choice([1, 2]), activation="RELU"),
    lambda b, x, r: b.add(x, b.conv2d(x, b.shape(x)[-1], kernel=1, padding="valid")),
]


@settings(max_examples=16, deadline=None)
@given(st.lists(st.integers(0, len(RANDOM_LAYERS) - 1), min_size=1, max_size=5), st.integers(0, 2**16),
       st.sampled_from(["int4", "ternary", "ternary:base3", "pow2", "codebook:3", "sparse", "sparse:int4"]))
def test_random_graphs_in_every_format_are_bit_exact(layers: list[int], seed: int, fmt: str) -> None:
    """Random chains of convolutions, depthwise layers and residual adds ending in a fully-connected layer,
    their weights compressed into a format: C = reference = TFLM on the host (the expanded int8 model)."""
    import random

    r = random.Random(seed)
    b = GraphBuilder(seed=seed)
    x = b.input((1, r.choice([6, 9]), r.choice([5, 8]), r.choice([3, 4, 8])), zero_point=seed % 9 - 4)
    for i in layers:
        x = RANDOM_LAYERS[i](b, x, r)
    graph = b.build([b.fully_connected(b.reshape(x, (1, -1)), r.choice([4, 16]))], name="rnd")
    graph, _ = compress_weights(graph, fmt, sparsity=0.6)
    assert all(graph[n].format == fmt for n in weight_tensors(graph))
    result = verify(graph, samples=2, tflite_bytes=write_tflite(graph), seed=seed)
    assert result.ok and result.tflm_checked, result.lines()


def test_int4_weights_under_patch_and_fused_schedules() -> None:
    vww = next(p for p in dev_models() if p.stem.startswith("mlperf_vww"))
    graph, _ = compress_weights(load_model(vww))
    for strategy in ("patch", "fused"):
        result = verify(graph, samples=2, tflite_bytes=write_tflite(graph), strategy=strategy)
        assert result.ok and result.tflm_checked, (strategy, result.lines())


def test_int4_weights_in_qemu_equal_the_reference() -> None:
    graph, _ = compress_weights(load_model(KWS))
    assert format_summary(graph)["int4"]["tensors"] > 0
    assert_qemu_equals_reference(graph, samples=2)


def test_cli_compress_then_compile(tmp_path, capsys) -> None:
    out = tmp_path / "kws4.tflite"
    assert main(["compress", str(KWS), "--weights", "int4", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "22,016 B as int8 -> 11,008 B as int4 (0.50x)" in text and "top-1 unchanged on" in text
    assert main(["compile", str(out), "--weights", "auto", "-o", str(tmp_path / "c"), "--json"]) == 0
    assert "MCU_W_INT4" in (tmp_path / "c" / "kws4.c").read_text()
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["weight_formats"]["int4"] == {"tensors": 10, "values": 22016, "bytes": 11008, "int8_bytes": 22016}


def test_bench_per_format(tmp_path, capsys) -> None:
    """`mcuforge bench --weights`: the same model's instructions per layer with int8 and with int4 weights."""
    graph, _ = compress_weights(load_model(KWS))
    path = tmp_path / "kws4.tflite"
    path.write_bytes(write_tflite(graph))
    totals = {}
    for fmt in ("int8", "int4"):
        assert main(["bench", str(path), "--weights", fmt, "--layers", "--json"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
        assert len(rows) == len(graph.ops)
        totals[fmt] = sum(r["instructions"] for r in rows)
    assert totals["int4"] > totals["int8"] > 0


@pytest.mark.parametrize("argv, message", [
    (["compile", str(KWS), "--weights", "int4", "-o", "{tmp}/c"], "outside int4"),
    (["compile", str(KWS), "--weights", "codebook:3", "-o", "{tmp}/c"], "outside codebook:3"),
    (["compile", str(KWS), "--weights", "ternary", "-o", "{tmp}/c"], "outside ternary"),
    (["compress", str(KWS), "--weights", "sparse", "--sparsity", "100%", "-o", "{tmp}/c.tflite"],
     "share of zeros in [0, 1)"),
    (["compress", str(KWS), "--weights", "int4", "-o", "{tmp}/model.bin"], "must be a file ending in .tflite"),
    (["compress", str(KWS), "--weights", "int4", "-o", "{tmp}/none/m.tflite"], "does not exist"),
])
def test_refusals_are_one_line_exit_2(tmp_path, capsys, argv, message) -> None:
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "c").exists() and not (tmp_path / "model.bin").exists()
