"""The .tflite reader: every dev model reads into valid canonical IR; bad input is refused clearly."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcuforge.errors import ModelError
from mcuforge.frontends.tflite_reader import read_tflite, read_tflite_file
from mcuforge.ir import SPECS
from mcuforge.pipeline import analyze
from oracle import PENDING, dev_models, negative_models

NEGATIVE_REASONS = {
    "mlperf_ad_toycar_hybrid_dynrange": "hybrid",
    "mlperf_kws_dscnn_float32": "float32 activation",
    "tflm_hello_world_float": "not int8-quantized",
    "tflm_person_detect_vela_ethosu": "custom operator 'ethos-u'",
}


@pytest.mark.parametrize("path", dev_models(), ids=lambda p: p.stem)
def test_dev_model_reads_into_canonical_ir(path):
    g = read_tflite_file(path)
    assert g.ops and g.inputs and g.outputs
    for op in g.ops:
        assert op.kind in SPECS
        assert set(SPECS[op.kind].attrs) <= set(op.attrs), (op.kind, dict(op.attrs))
    assert not any(op.kind == "PAD" for op in g.ops), "PAD before a conv must fold into the conv"


def test_mcunet_pads_fold_into_asymmetric_conv_padding():
    g = read_tflite_file(next(p for p in dev_models() if p.stem.startswith("tinyengine_mcunet")))
    pads = {op.attrs["pad"] for op in g.ops if op.kind == "DEPTHWISE_CONV_2D"}
    assert any(p[0] != p[1] or p[2] != p[3] or max(p) > 1 for p in pads), pads


@pytest.mark.parametrize("path", negative_models(), ids=lambda p: p.stem)
def test_negative_models_are_refused_with_the_reason(path):
    with pytest.raises(ModelError) as err:
        read_tflite_file(path)
    assert NEGATIVE_REASONS[path.stem] in str(err.value)


def test_not_a_tflite_file():
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        read_tflite(b"hello world, this is not a model", "junk")


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_truncated_model_is_refused(cut):
    data = dev_models()[0].read_bytes()
    with pytest.raises(ModelError):
        read_tflite(data[: int(len(data) * cut)], "truncated")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_model_never_crashes(data):
    """Random byte flips give either a valid graph or a ModelError, never another exception."""
    path = data.draw(st.sampled_from(dev_models()))
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, min(len(raw) - 1, 4096)))  # the tables sit near the start
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        graph = read_tflite(bytes(raw), "mutated")
        analyze(graph)  # what the reader accepts, the planner must handle
    except ModelError:
        pass


def test_per_channel_quant_kept():
    g = read_tflite_file(next(p for p in dev_models() if "vww_mobilenet" in p.stem))
    conv = next(op for op in g.ops if op.kind == "CONV_2D")
    w = g[conv.inputs[1]]
    assert w.quant.scale.size == w.shape[0] and w.quant.axis == 0
    assert np.all(w.quant.scale > 0)


# ------------------------------------------------------------------ constant folding (tflite_fold)

def _shape_subgraph_tensors() -> dict:
    from mcuforge.ir import Tensor

    i32 = lambda name, values: Tensor(name, (len(values),), "int32", None, np.array(values, np.int32))  # noqa: E731
    return {"x": Tensor("x", (1, 4, 4, 8), "int8"),
            "shape": Tensor("shape", (4,), "int32"), "batch": Tensor("batch", (), "int32"),
            "begin": i32("begin", [0]), "end": i32("end", [1]), "one": i32("one", [1]),
            "minus1": Tensor("minus1", (), "int32", None, np.array(-1, np.int32)),
            "target": Tensor("target", (2,), "int32"), "doubled": Tensor("doubled", (2,), "int32")}


def test_keras_shape_subgraph_folds_to_constants():
    """SHAPE -> STRIDED_SLICE (shrink) -> PACK -> MUL: the values are worked out by hand from the definitions."""
    from mcuforge.frontends.tflite_fold import fold_constants
    from mcuforge.frontends.tflite_ops import RawOp

    tensors = _shape_subgraph_tensors()
    raws = [RawOp("SHAPE", ("x",), ("shape",), None, 0, 0),
            RawOp("STRIDED_SLICE", ("shape", "begin", "end", "one"), ("batch",), None, 0, 1),
            RawOp("PACK", ("batch", "minus1"), ("target",), None, 0, 2),
            RawOp("MUL", ("target", "target"), ("doubled",), None, 0, 3),
            RawOp("RESHAPE", ("x", "target"), ("y",), None, 0, 4)]
    kept = fold_constants(raws, tensors)
    assert [r.kind for r in kept] == ["RESHAPE"]
    assert tensors["shape"].data.tolist() == [1, 4, 4, 8]
    assert tensors["batch"].data.shape == () and int(tensors["batch"].data) == 1
    assert tensors["target"].data.tolist() == [1, -1]
    assert tensors["doubled"].data.tolist() == [1, 1] and tensors["doubled"].data.dtype == np.int32


def test_folding_leaves_activations_and_quantized_arithmetic_alone():
    from mcuforge.frontends.tflite_fold import fold_constants
    from mcuforge.frontends.tflite_ops import RawOp
    from mcuforge.ir import QuantParams, Tensor

    q = QuantParams.per_tensor(0.1, 0)
    tensors = {"a": Tensor("a", (2,), "int8", q, np.array([1, 2], np.int8)), "y": Tensor("y", (2,), "int8", q),
               "x": Tensor("x", (2,), "int8", q), "z": Tensor("z", (2,), "int8", q)}
    raws = [RawOp("ADD", ("a", "a"), ("y",), None, 0, 0), RawOp("ADD", ("x", "a"), ("z",), None, 0, 1)]
    assert fold_constants(raws, tensors) == raws and not tensors["y"].is_const


def test_folded_value_must_match_the_declared_output():
    from mcuforge.frontends.tflite_fold import fold_constants
    from mcuforge.frontends.tflite_ops import RawOp
    from mcuforge.ir import Tensor

    tensors = _shape_subgraph_tensors()
    tensors["shape"] = Tensor("shape", (3,), "int32")  # a rank-4 tensor's shape has 4 values
    with pytest.raises(ModelError, match=r"operator #0 SHAPE .*declared \[3\]"):
        fold_constants([RawOp("SHAPE", ("x",), ("shape",), None, 0, 0)], tensors)


def test_stm32_zoo_model_reads_without_its_shape_subgraphs():
    """The pending FD-MobileNet has two SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE chains; none is left."""
    g = read_tflite_file(PENDING / "st_ic_fdmobilenet_025_128_flowers_uint8in.tflite")
    kinds = [op.kind for op in g.ops]
    assert "SHAPE" not in kinds and "PACK" not in kinds and kinds.count("RESHAPE") == 2
    assert g[g.inputs[0]].dtype == "uint8" and kinds[0] == "QUANTIZE"


def test_constant_splits_fold():
    """SPLIT and SPLIT_V of constants give the numpy pieces (np.split is the oracle)."""
    from mcuforge.frontends.tflite_fold import fold_constants
    from mcuforge.frontends.tflite_ops import RawOp
    from mcuforge.ir import Tensor

    data = np.arange(24, dtype=np.int32).reshape(2, 12)
    i32 = lambda name, v: Tensor(name, np.shape(v), "int32", None, np.array(v, np.int32))  # noqa: E731
    tensors = {"c": i32("c", data), "axis": i32("axis", 1), "sizes": i32("sizes", [2, -1, 4]),
               **{n: Tensor(n, s, "int32") for n, s in (("a", (2, 4)), ("b", (2, 4)), ("d", (2, 4)),
                                                        ("p", (2, 2)), ("q", (2, 6)), ("r", (2, 4)))}}
    raws = [RawOp("SPLIT", ("axis", "c"), ("a", "b", "d"), None, 0, 0),
            RawOp("SPLIT_V", ("c", "sizes", "axis"), ("p", "q", "r"), None, 0, 1)]
    assert fold_constants(raws, tensors) == []
    for names, parts in ((("a", "b", "d"), np.split(data, 3, axis=1)), (("p", "q", "r"), np.split(data, [2, 8], axis=1))):
        assert all(np.array_equal(tensors[n].data, part) for n, part in zip(names, parts))
