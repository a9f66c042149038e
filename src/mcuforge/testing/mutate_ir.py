"""Structure-aware mutations on the graph IR: the seed is read into the IR, changed with full freedom
(shapes, operators, graph edges, quantization, names, attributes, constants) and written back with our
.tflite writer. Each mutation returns (graph, description), or None where it does not apply.

The changes are what a buggy converter or a hand-edited file could contain: the engine must refuse them
with a one-line ModelError, or compile them into C that equals the reference interpreter.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from ..ir import SPECS, Graph, Op, QuantParams, Tensor

Mutation = Callable[[Graph, np.random.Generator], "tuple[Graph, str] | None"]

EVIL_NAMES = ("a*/b", "*/ int x; /*", "line\nbreak", "nul\x00byte", "#error boom", "\u00e9t\u00e9\u2603", "tab\there",
              "\x1b[31mred\x1b[0m", "[bold red]markup[/]", "[/]", "quote\"s\\", "??/", "%s%n%x", "", " ",
              "\u202eevil", "return 0; //", "\r\ncr", "x" * 1000, "\ufffd", "a\\\nb",
              "0starts_with_digit", "model", "fz", "fz_arena", "__builtin_trap", "main")
_ODD_SCALES = (0.0, 1e-30, 1e30, 1e-12, 1e12, 2.0 ** -40, 2.0 ** 40, 3.4e38, 1.4e-45, -1.0, float("nan"),
               float("inf"), 1.0, 255.0)
_ODD_ZPS = (-129, 128, 255, 256, -1000, 2 ** 31 - 1, -2 ** 31, 127, -128, 1, -1)
_APPEND_KINDS = ("HARD_SWISH", "LEAKY_RELU", "ADD", "SUB", "MUL", "CONCATENATION", "LOGISTIC", "TANH",
                 "MAXIMUM", "MINIMUM", "RELU", "RELU6", "SOFTMAX", "QUANTIZE", "RESHAPE", "TRANSPOSE", "MEAN",
                 "LOG_SOFTMAX", "DEQUANTIZE", "REDUCE_MAX")


def _pick(rng: np.random.Generator, items):
    items = list(items)
    return items[int(rng.integers(len(items)))] if items else None


def _activations(g: Graph) -> list[str]:
    return [n for n in g.activations() if n in g.tensors]


def _consts(g: Graph) -> list[str]:
    return [n for n, t in g.tensors.items() if t.is_const]


def _set_tensor(g: Graph, name: str, **changes) -> Graph:
    return replace(g, tensors={**g.tensors, name: replace(g.tensors[name], **changes)})


def _odd_shape(shape: tuple[int, ...], rng: np.random.Generator) -> tuple[tuple[int, ...], str]:
    shape = list(shape)
    how = int(rng.integers(6))
    if how == 0 and shape:
        i = int(rng.integers(len(shape)))
        shape[i] += 1
        return tuple(shape), f"dim {i} +1"
    if how == 1 and shape and max(shape) > 1:
        i = int(np.argmax(shape))
        shape[i] -= 1
        return tuple(shape), f"dim {i} -1"
    if how == 2 and len(shape) >= 2:
        i, j = rng.choice(len(shape), 2, replace=False)
        shape[i], shape[j] = shape[j], shape[i]
        return tuple(shape), f"dims {i},{j} swapped"
    if how == 3:
        return tuple(shape) + (1,), "trailing 1 added"
    if how == 4 and shape:
        return tuple(shape[1:]), "first dim dropped"
    if shape:
        i = int(rng.integers(len(shape)))
        shape[i] = int(_pick(rng, (0, 2 ** 16, 3)))
        return tuple(shape), f"dim {i} = {shape[i]}"
    return (2,), "scalar -> (2,)"


def wrong_output_shape(g: Graph, rng):
    ops = [i for i, op in enumerate(g.ops) if op.outputs and (SPECS.get(op.kind) and SPECS[op.kind].elementwise
                                                              or rng.random() < 0.4)]
    i = _pick(rng, ops)
    if i is None:
        return None
    out = g.ops[i].outputs[0]
    shape, how = _odd_shape(g[out].shape, rng)
    return _set_tensor(g, out, shape=shape), f"op {i} {g.ops[i].kind} output {g[out].shape} -> {shape} ({how})"


def _random_quant(rng) -> QuantParams:
    return QuantParams.per_tensor(float(np.float32(rng.choice([1 / 256, 0.02, 0.5, 3.0, 1e-5]))),
                                  int(rng.integers(-128, 128)))


def append_op(g: Graph, rng):
    acts = [n for n in _activations(g) if g[n].dtype == "int8"]
    x = g.outputs[0] if g.outputs[0] in acts and rng.random() < 0.5 else _pick(rng, acts)
    if x is None:
        return None
    kind = _pick(rng, _APPEND_KINDS)
    t = g[x]
    shape, note = (t.shape, "same shape") if rng.random() < 0.5 else _odd_shape(t.shape, rng)
    inputs, attrs, tensors = [x], {}, dict(g.tensors)
    if kind in ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "CONCATENATION"):
        other = _pick(rng, acts) if rng.random() < 0.6 else None
        if other is None:
            cshape = _odd_shape(t.shape, rng)[0] if rng.random() < 0.5 else t.shape
            if not cshape or min(cshape) <= 0 or int(np.prod(cshape)) > 1 << 16:
                cshape = t.shape
            other = "fz_const_operand"
            tensors[other] = Tensor(other, cshape, "int8", _random_quant(rng),
                                    rng.integers(-128, 128, cshape, dtype=np.int8))
        inputs.append(other)
    if kind in ("ADD", "SUB", "MUL", "CONCATENATION"):
        attrs["activation"] = _pick(rng, ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"))
    if kind == "CONCATENATION":
        attrs["axis"] = int(rng.integers(-2, max(len(t.shape), 1) + 1))
    if kind == "LEAKY_RELU":
        attrs["alpha"] = float(_pick(rng, (0.2, -1.0, 0.0, 1e30, float("nan"), 1.0, 2.0 ** -20)))
    if kind == "SOFTMAX":
        attrs["beta"] = float(_pick(rng, (1.0, 0.0, -1.0, 1e30, float("nan"), 1e-30)))
    if kind in ("MEAN", "REDUCE_MAX"):
        attrs.update(axes=tuple(sorted({int(a) for a in rng.integers(-1, len(t.shape) + 1, 2)})),
                     keep_dims=bool(rng.random() < 0.5))
    if kind == "TRANSPOSE":
        attrs["perm"] = tuple(int(p) for p in rng.permutation(len(t.shape))) if rng.random() < 0.7 else (0, 0)
    dtype = "float32" if kind == "DEQUANTIZE" else "int8"
    quant = None if dtype == "float32" else _random_quant(rng)
    out = "fz_appended"
    tensors[out] = Tensor(out, shape, dtype, quant)
    ops = list(g.ops) + [Op(kind, tuple(inputs), (out,), attrs)]
    outputs = (out,) if rng.random() < 0.5 else g.outputs + (out,)
    desc = f"appended {kind}({', '.join(inputs)}) -> {shape} ({note}) {dict(attrs)}"
    return replace(g, tensors=tensors, ops=tuple(ops), outputs=outputs), desc


def two_writers(g: Graph, rng):
    if len(g.ops) < 2:
        return None
    i, j = sorted(int(k) for k in rng.choice(len(g.ops), 2, replace=False))
    if rng.random() < 0.5:
        i, j = j, i
    op = g.ops[j]
    victim = g.ops[i].outputs[0]
    ops = list(g.ops)
    ops[j] = op.with_(outputs=(victim,) + op.outputs[1:], name="")
    return replace(g, ops=tuple(ops)), f"op {j} {op.kind} now writes op {i}'s output '{victim[:40]}'"


def const_output(g: Graph, rng):
    c = _pick(rng, _consts(g))
    if c is None:
        return None
    outputs = (c,) if rng.random() < 0.4 else g.outputs + (c,)
    return replace(g, outputs=outputs), f"constant '{c[:40]}' is a graph output"


def input_written(g: Graph, rng):
    i = int(rng.integers(len(g.ops)))
    op = g.ops[i]
    return (replace(g, ops=tuple(o if k != i else op.with_(outputs=(g.inputs[0],), name="") for k, o in
                                 enumerate(g.ops))), f"op {i} {op.kind} writes graph input '{g.inputs[0][:40]}'")


def graph_edges(g: Graph, rng):
    acts = _activations(g)
    how = int(rng.integers(5))
    if how == 0:
        return replace(g, outputs=g.outputs + (g.outputs[0],)), "graph output listed twice"
    if how == 1:
        x = _pick(rng, acts)
        return replace(g, outputs=g.outputs + (x,)), f"intermediate '{x[:40]}' also a graph output"
    if how == 2:
        return replace(g, outputs=g.outputs + (g.inputs[0],)), "graph input also a graph output"
    if how == 3:
        x = _pick(rng, acts)
        return replace(g, inputs=g.inputs + (x,)), f"'{x[:40]}' also a graph input"
    extra = "fz_unused_input"
    tensors = {**g.tensors, extra: Tensor(extra, (1, 3), "int8", _random_quant(rng))}
    return replace(g, tensors=tensors, inputs=(extra,) + g.inputs), "unused graph input added first"


def op_order(g: Graph, rng):
    n = len(g.ops)
    ops = list(g.ops)
    how = int(rng.integers(3))
    i = int(rng.integers(n))
    if how == 0:
        k = int(rng.integers(n + 1))
        ops.insert(k, ops[i])
        return replace(g, ops=tuple(ops)), f"op {i} {g.ops[i].kind} duplicated at {k}"
    if how == 1 and n > 1:
        del ops[i]
        return replace(g, ops=tuple(ops)), f"op {i} {g.ops[i].kind} removed"
    if n < 2:
        return None
    j = int(rng.integers(n))
    ops[i], ops[j] = ops[j], ops[i]
    return replace(g, ops=tuple(ops)), f"ops {i} and {j} swapped"


def quant_scale(g: Graph, rng):
    name = _pick(rng, [n for n, t in g.tensors.items() if t.quant is not None])
    if name is None:
        return None
    q = g[name].quant
    value = float(_pick(rng, _ODD_SCALES + (q.s * (1 + 2 ** -20), q.s * 2 ** 20, q.s * 2 ** -20)))
    scale = q.scale.copy()
    k = int(rng.integers(scale.size))
    scale[k] = np.float32(value)
    return _set_tensor(g, name, quant=replace(q, scale=scale)), f"'{name[:40]}' scale[{k}] = {value:g}"


def zero_point(g: Graph, rng):
    name = _pick(rng, [n for n, t in g.tensors.items() if t.quant is not None])
    if name is None:
        return None
    q = g[name].quant
    value = int(_pick(rng, _ODD_ZPS))
    zp = q.zero_point.astype(np.int64).copy()
    k = int(rng.integers(zp.size))
    zp[k] = value
    return _set_tensor(g, name, quant=replace(q, zero_point=zp)), f"'{name[:40]}' zero_point[{k}] = {value}"


def per_channel(g: Graph, rng):
    name = _pick(rng, [n for n, t in g.tensors.items() if t.quant is not None and t.shape])
    if name is None:
        return None
    t = g[name]
    axis = int(rng.integers(-1, len(t.shape) + 1))
    count = t.shape[axis] if 0 <= axis < len(t.shape) else 3
    count = max(int(count + _pick(rng, (0, 0, 1, -1, 5))), 1)
    scale = np.full(count, np.float32(t.quant.s), np.float32) * rng.uniform(0.5, 2.0, count).astype(np.float32)
    q = QuantParams(scale.astype(np.float32), np.zeros(count, np.int64), axis)
    return _set_tensor(g, name, quant=q), f"'{name[:40]}' {list(t.shape)}: {count} scales on axis {axis}"


def evil_name(g: Graph, rng):
    old = _pick(rng, g.tensors)
    new = _pick(rng, EVIL_NAMES)
    if new in g.tensors:
        return None

    def ren(names):
        return tuple(new if n == old else n for n in names)

    tensors = {(new if n == old else n): (replace(t, name=new) if n == old else t) for n, t in g.tensors.items()}
    ops = tuple(op.with_(inputs=ren(op.inputs), outputs=ren(op.outputs), name="") for op in g.ops)
    return (replace(g, tensors=tensors, ops=ops, inputs=ren(g.inputs), outputs=ren(g.outputs)),
            f"tensor '{old[:30]}' renamed {new[:40]!r}")


_ATTR_VALUES: dict[str, tuple] = {
    "stride": ((0, 1), (1, 0), (-1, 1), (2 ** 31 - 1, 1), (100, 100), (3, 1)),
    "dilation": ((0, 1), (-2, 1), (9, 9), (1, 2 ** 20), (2, 1)),
    "pad": ((-1, 0, 0, 0), (100, 0, 0, 0), (0, 0, 0, 7), (1, 1, 1, 1), (2 ** 20, 0, 0, 0)),
    "filter": ((0, 1), (1, 0), (100, 100), (-1, 2), (3, 3)),
    "multiplier": (0, 2, -1, 3),
    "axis": (-1, -5, 7, 2 ** 31 - 1),
    "axes": ((), (5,), (0, 1, 2, 3), (-1,), (3,)),
    "keep_dims": (True, False),
    "keep_num_dims": (True, False),
    "beta": (0.0, -1.0, float("nan"), float("inf"), 1e30, 1e-30),
    "alpha": (float("nan"), float("-inf"), 1e30, -1.0, 0.0, 2.0),
    "perm": ((0, 0, 1, 2), (3, 2, 1, 0), (0, 1), (0, 1, 2, 9)),
    "activation": ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"),
    "align_corners": (True,), "half_pixel_centers": (True,),
    "value": (300, -129, 127, -128),
}


def attribute(g: Graph, rng):
    candidates = [(i, a) for i, op in enumerate(g.ops) for a in op.attrs if a in _ATTR_VALUES]
    if not candidates:
        return None
    i, attr = candidates[int(rng.integers(len(candidates)))]
    op = g.ops[i]
    value = _pick(rng, _ATTR_VALUES[attr])
    ops = list(g.ops)
    ops[i] = op.with_(attrs={**op.attrs, attr: value})
    return replace(g, ops=tuple(ops)), f"op {i} {op.kind} {attr} {op.attrs[attr]!r} -> {value!r}"


def dtype(g: Graph, rng):
    name = _pick(rng, g.tensors)
    new = _pick(rng, ("int16", "uint8", "int32", "float32", "int64", "bool", "int8"))
    t = g[name]
    data = None if t.data is None else t.data.astype(new)
    return _set_tensor(g, name, dtype=new, data=data), f"'{name[:40]}' {t.dtype} -> {new}"


def drop_quant(g: Graph, rng):
    name = _pick(rng, [n for n, t in g.tensors.items() if t.quant is not None])
    return None if name is None else (_set_tensor(g, name, quant=None), f"'{name[:40]}' loses its quantization")


def extreme_values(g: Graph, rng):
    """Legal but extreme constants: int32 bias limits, int8 -128 weights, all-equal weights."""
    name = _pick(rng, _consts(g))
    if name is None:
        return None
    t = g[name]
    info = np.iinfo(t.data.dtype) if np.issubdtype(t.data.dtype, np.integer) else None
    if info is None:
        return None
    how = _pick(rng, ("max", "min", "alternate", "zero"))
    fill = {"max": info.max, "min": info.min, "zero": 0}.get(how)
    data = np.full(t.shape, fill, t.data.dtype) if fill is not None else \
        np.where(np.arange(t.size).reshape(t.shape) % 2 == 0, info.max, info.min).astype(t.data.dtype)
    return _set_tensor(g, name, data=data), f"constant '{name[:40]}' {t.data.dtype} all {how}"


def bias_edge(g: Graph, rng):
    """Biases just inside (or at) the int32 headroom the weights leave: |bias| = 2^31 - 1 - sum|w| * 255 - d."""
    ops = [i for i, op in enumerate(g.ops) if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
           and len(op.inputs) > 2 and op.inputs[2] and g[op.inputs[2]].is_const and g[op.inputs[1]].is_const]
    i = _pick(rng, ops)
    if i is None:
        return None
    op = g.ops[i]
    w, b = g[op.inputs[1]].data.astype(np.int64), g[op.inputs[2]]
    axis = 3 if op.kind == "DEPTHWISE_CONV_2D" else 0
    bound = np.abs(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1).sum(axis=1) * 255
    if bound.size != b.size:
        return None
    delta = int(_pick(rng, (0, 1, 255, 1 << 16, -1)))
    sign = rng.choice([-1, 1], size=bound.size) if rng.random() < 0.5 else np.full(bound.size, _pick(rng, (-1, 1)))
    data = np.clip(sign * (2 ** 31 - 1 - bound - delta), -2 ** 31, 2 ** 31 - 1).astype(np.int32).reshape(b.shape)
    return _set_tensor(g, b.name, data=data), f"op {i} {op.kind} bias at the int32 headroom minus {delta}"


def const_shape(g: Graph, rng):
    """A constant replaced by consistent random data of another shape (conv kernel size, channels...)."""
    name = _pick(rng, [n for n in _consts(g) if g[n].shape and g[n].size < 1 << 16])
    if name is None:
        return None
    t = g[name]
    shape, how = _odd_shape(t.shape, rng)
    if not shape or min(shape) <= 0 or int(np.prod(shape)) > 1 << 17:
        return None
    data = rng.integers(-127, 128, shape).astype(t.data.dtype)
    return _set_tensor(g, name, shape=shape, data=data), f"constant '{name[:40]}' {t.shape} -> {shape} ({how})"


MUTATIONS: dict[str, Mutation] = {
    "out_shape": wrong_output_shape, "append_op": append_op, "two_writers": two_writers,
    "const_output": const_output, "input_written": input_written, "graph_edges": graph_edges,
    "op_order": op_order, "quant_scale": quant_scale, "zero_point": zero_point, "per_channel": per_channel,
    "evil_name": evil_name, "attribute": attribute, "dtype": dtype, "drop_quant": drop_quant,
    "extreme_values": extreme_values, "bias_edge": bias_edge, "const_shape": const_shape,
}
