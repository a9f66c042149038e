"""The reader refuses every inconsistent model with one short line, before anything is planned.

Each case starts from a small valid model, breaks one thing (in the IR before writing it, or in the bytes
of the written flatbuffer) and checks the refusal's reason. A model that passes must compile to C equal to
the reference (tests/test_fuzz.py checks that over thousands of mutants).
"""
from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

from mcuforge.engine.codegen import c_comment, c_name, check_c_name
from mcuforge.errors import ModelError, UsageError
from mcuforge.frontends.tflite_reader import MAX_FILE_BYTES, read_tflite, read_tflite_file
from mcuforge.frontends.tflite_writer import write_tflite
from mcuforge.ir import Graph, Op, QuantParams, Tensor
from mcuforge.models.builder import GraphBuilder
from mcuforge.pipeline import compile_model
from oracle import MODELS


def _small() -> Graph:
    b = GraphBuilder(seed=3)
    x = b.input((1, 8, 8, 4))
    y = b.conv2d(x, 8, 3, activation="RELU")
    z = b.hard_swish(b.depthwise_conv2d(y, 3))
    return b.build([b.softmax(b.fully_connected(b.mean(z, keep_dims=False), 5))], name="small")


def _refusal(graph_or_bytes: Graph | bytes) -> str:
    data = graph_or_bytes if isinstance(graph_or_bytes, bytes) else write_tflite(graph_or_bytes)
    with pytest.raises(ModelError) as err:
        read_tflite(data, "m")
    message = str(err.value)
    assert "\n" not in message and len(message) < 320 and message.isprintable(), message
    return message


def _replace_tensor(g: Graph, name: str, **changes) -> Graph:
    tensors = dict(g.tensors)
    tensors[name] = dataclasses.replace(tensors[name], **changes)
    return dataclasses.replace(g, tensors=tensors)


def test_small_model_is_accepted():
    g = read_tflite(write_tflite(_small()), "m")
    assert [op.kind for op in g.ops][-1] == "SOFTMAX"


def test_two_writers():
    g = _small()
    ops = list(g.ops)
    ops[1] = ops[1].with_(outputs=ops[0].outputs)
    assert "already written by operator #0" in _refusal(dataclasses.replace(g, ops=tuple(ops)))


def test_constant_output_and_written_input():
    g = _small()
    weights = g.ops[0].inputs[1]
    assert "is a constant tensor" in _refusal(dataclasses.replace(g, outputs=(weights,)))
    ops = list(g.ops)
    ops[1] = ops[1].with_(outputs=g.inputs)
    assert "writes the model input" in _refusal(dataclasses.replace(g, ops=tuple(ops)))


def test_inputs_listed_twice_and_output_equal_to_input():
    g = _small()
    assert "listed twice" in _refusal(dataclasses.replace(g, inputs=g.inputs * 2))
    assert "nothing to compile" in _refusal(dataclasses.replace(g, ops=(), outputs=g.inputs))


@pytest.mark.parametrize("kind", ["HARD_SWISH", "SOFTMAX", "CONV_2D", "MEAN"])
def test_output_shape_must_follow_from_the_operator(kind):
    g = _small()
    op = next(op for op in g.ops if op.kind == kind)
    t = g[op.outputs[0]]
    bad = (*t.shape[:-1], t.shape[-1] + 1)
    message = _refusal(_replace_tensor(g, t.name, shape=bad))
    assert kind in message or "does not" in message or "cannot" in message


@pytest.mark.parametrize("scale", [0.0, -0.5, float("nan"), float("inf"), 1e-30, 1e30])
def test_implausible_scales(scale):
    g = _small()
    name = g.ops[0].outputs[0]
    message = _refusal(_replace_tensor(g, name, quant=QuantParams.per_tensor(scale, 0)))
    assert "scale" in message


@pytest.mark.parametrize("zero_point", [-129, 128, 2**31 - 1])
def test_zero_point_outside_int8(zero_point):
    g = _small()
    name = g.ops[0].outputs[0]
    assert "zero point" in _refusal(_replace_tensor(g, name, quant=QuantParams.per_tensor(0.1, zero_point)))


def test_per_channel_scales_on_the_wrong_axis():
    g = _small()
    w = g[g.ops[0].inputs[1]]  # [8, 3, 3, 4], per-channel on axis 0
    q = QuantParams(np.full(4, 0.01, np.float32), np.zeros(4, np.int64), axis=3)
    assert "per-channel" in _refusal(_replace_tensor(g, w.name, quant=q))


def test_requantization_factor_over_2_31_names_the_layer():
    g = _small()
    y = g[g.ops[0].outputs[0]]
    g = _replace_tensor(g, y.name, quant=QuantParams.per_tensor(2.0 ** -55, y.quant.zp))
    graph = read_tflite(write_tflite(g), "m")  # every scale is plausible on its own
    with pytest.raises(ModelError, match=r"layer #\d+ CONV_2D .*requantization factor"):
        compile_model(graph)


def test_tensor_names_are_escaped_and_shortened_in_messages():
    g = _small()
    name = g.ops[0].outputs[0]
    evil = "x\n\x00*/ return 0; /*" + "y" * 300
    tensors = {(evil if k == name else k): dataclasses.replace(t, name=evil if k == name else k)
               for k, t in g.tensors.items()}
    ops = tuple(op.with_(inputs=tuple(evil if n == name else n for n in op.inputs),
                         outputs=tuple(evil if n == name else n for n in op.outputs)) for op in g.ops)
    g = dataclasses.replace(g, tensors=tensors, ops=ops)
    message = _refusal(_replace_tensor(g, evil, quant=QuantParams.per_tensor(0.0, 0)))
    assert "\\x0a" in message and "\\x00" in message and "..." in message


def test_names_in_generated_c_cannot_escape_comments():
    assert "*/" not in c_comment("a */ return 0; /* b") and "/*" not in c_comment("/* x")
    assert c_comment("line\nbreak\x00") == "line?break?"
    assert len(c_comment("n" * 500)) <= 80


@pytest.mark.parametrize("name", ["İstanbul", "1model", "has-dash", "mcu_common", "mcuforge_main", "", "a" * 65])
def test_bad_library_names_are_refused(name):
    with pytest.raises(UsageError):
        check_c_name(name)


def test_default_library_names_are_safe_c_identifiers():
    assert c_name("İstanbul kws") == "stanbul_kws"
    assert c_name("mcu_common") == "m_mcu_common" and c_name("9x") == "m_9x" and c_name("ÿ") == "model"
    assert check_c_name("KWS_v2") == "kws_v2"


# ---------------------------------------------------------------- the bytes of the file


def _field(table, slot: int) -> int:
    """Absolute position of a table field (it must be present)."""
    off = table._tab.Offset(slot)
    assert off, slot
    return table._tab.Pos + off


def _model(data: bytes):
    import tflite

    return tflite.Model.GetRootAsModel(data, 0)


def test_every_truncation_is_refused():
    data = (MODELS / "tflm_hello_world_int8.tflite").read_bytes()
    for cut in range(0, len(data), 7):
        _refusal(data[:cut])
    _refusal(data[:-1])


def test_options_of_another_type_are_refused():
    data = bytearray(write_tflite(_small()))
    op = _model(bytes(data)).Subgraphs(0).Operators(0)  # CONV_2D
    data[_field(op, 10)] = 92  # builtin_options_type
    assert "not Conv2DOptions" in _refusal(bytes(data))


def test_missing_required_operand_is_refused():
    data = bytearray(write_tflite(_small()))
    op = _model(bytes(data)).Subgraphs(0).Operators(0)
    vector = op._tab.Vector(op._tab.Offset(6))  # inputs
    struct.pack_into("<i", data, vector + 4, -1)  # the filter
    assert "input 1 is absent" in _refusal(bytes(data))


def test_schema_version_is_checked():
    data = bytearray(write_tflite(_small()))
    struct.pack_into("<I", data, _field(_model(bytes(data)), 4), 7)
    assert "schema version 7" in _refusal(bytes(data))


def test_unsupported_operators_are_listed_in_one_line():
    """Two operator codes patched to kinds the engine does not run (LSH_PROJECTION is 15, CALL 31): one line
    names both."""
    import tflite

    data = bytearray(write_tflite(_small()))
    model = _model(bytes(data))
    for i, code in ((0, 15), (1, 31)):
        oc = model.OperatorCodes(i)
        struct.pack_into("<b", data, _field(oc, 4), code)  # deprecated_builtin_code (byte)
        struct.pack_into("<i", data, _field(oc, 10), code)  # builtin_code (int32)
    assert {tflite.BuiltinOperator.LSH_PROJECTION, tflite.BuiltinOperator.CALL} == {15, 31}
    message = _refusal(bytes(data))
    assert "LSH_PROJECTION (#0)" in message and "CALL (#1)" in message and "not supported yet" in message


def test_huge_file_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.tflite"
    with open(big, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used, and reading it would take the memory
    with pytest.raises(ModelError, match="MiB"):
        read_tflite_file(big)


def test_folder_is_not_a_model(tmp_path):
    (tmp_path / "x.tflite").mkdir()
    with pytest.raises(ModelError, match="is a folder"):
        read_tflite_file(tmp_path / "x.tflite")


@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
def test_bias_that_can_overflow_the_accumulator(kind):
    g = _small()
    bias = g[next(op for op in g.ops if op.kind == kind).inputs[2]]
    data = bias.data.copy()
    data[0] = 2**31 - 100  # plausible bytes, but bias + any non-zero product leaves int32
    assert "int32 accumulator" in _refusal(_replace_tensor(g, bias.name, data=data))


def test_constant_where_an_activation_belongs():
    g = _small()
    fc = next(op for op in g.ops if op.kind == "FULLY_CONNECTED")
    ops = [op.with_(inputs=(op.inputs[1], *op.inputs[1:])) if op is fc else op for op in g.ops]
    assert "is a constant" in _refusal(dataclasses.replace(g, ops=tuple(ops)))


def test_constant_operand_of_another_type():
    b = GraphBuilder(seed=4)
    x = b.input((1, 5))
    y = b.fully_connected(x, 5)
    g = b.build([b.add(y, y)], name="add")
    add = g.ops[-1]
    ops = [op.with_(inputs=(add.inputs[0], g.ops[0].inputs[2])) if op is add else op for op in g.ops]
    assert "is int32; int8 expected" in _refusal(dataclasses.replace(g, ops=tuple(ops)))


def test_float_operator_after_dequantize_is_named():
    """The refusal names LOG_SOFTMAX, not the DEQUANTIZE before it or the auto-named tensor between."""
    q = QuantParams.per_tensor(0.1, 0)
    t = {"x": Tensor("x", (1, 4), "int8", q), "tensor_7": Tensor("tensor_7", (1, 4), "float32"),
         "y": Tensor("y", (1, 4), "float32")}
    g = Graph(t, (Op("DEQUANTIZE", ("x",), ("tensor_7",)), Op("LOG_SOFTMAX", ("tensor_7",), ("y",))), ("x",), ("y",))
    message = _refusal(g)
    assert message.startswith("operator #1 LOG_SOFTMAX") and "tensor_7" not in message
