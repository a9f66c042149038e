"""The graph IR: tensors, operators and the graph that orders them.

Everything in mcuforge speaks this IR: the `.tflite` reader and writer, the reference interpreter, the
memory planner, the C code generator and (later) the NAS cost model. It depends on numpy only.

Conventions
- Layout is TFLite's: activations NHWC (or N..C for other ranks); conv weights [O, KH, KW, I];
  depthwise weights [1, KH, KW, C*multiplier]; fully-connected weights [O, I].
- Tensors are referred to by name; names are unique in a graph.
- An op's `attrs` hold everything that is not a tensor operand (strides, padding, axes, shapes ...).
  Constant operands that only describe the operation (reshape shape, pad amounts, axes, perm) are
  moved into attrs by the frontend, so `op.inputs` lists only data that flows (activations, weights, bias).
- `ops` is the execution order.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

DTYPE_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8, "float32": 4, "bool": 1}
NUMPY_DTYPES = {name: np.dtype(name if name != "bool" else np.bool_) for name in DTYPE_BYTES}


@dataclass(frozen=True, eq=False)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point).

    Per-tensor: `scale` and `zero_point` have one element and `axis` is None.
    Per-channel: one element per index of dimension `axis`.
    """

    scale: np.ndarray  # float32, shape (n,)
    zero_point: np.ndarray  # int32 (int64 for int32 tensors is fine), shape (n,)
    axis: int | None = None

    @staticmethod
    def per_tensor(scale: float, zero_point: int) -> "QuantParams":
        return QuantParams(np.array([scale], np.float32), np.array([zero_point], np.int64), None)

    @property
    def per_channel(self) -> bool:
        return self.axis is not None and self.scale.size > 1

    @property
    def s(self) -> float:
        """The per-tensor scale (first scale for per-channel parameters)."""
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        """The per-tensor zero point (first one for per-channel parameters)."""
        return int(self.zero_point[0])


@dataclass(frozen=True, eq=False)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str  # a key of DTYPE_BYTES
    quant: QuantParams | None = None
    data: np.ndarray | None = None  # set for constants (weights, bias)
    # State kept from one invocation to the next (SVDF's memory, an LSTM's cell): no writer, not in the
    # arena; the one op that reads it updates it in place. It starts, and restarts, at its zero point.
    variable: bool = False
    # How a constant weight tensor is stored in flash (ir.formats: "int8", "int4"); its values, and so the
    # model's semantics, are `data` whatever the format.
    format: str = "int8"

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.size * DTYPE_BYTES[self.dtype]


def _frozen(attrs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(attrs or {}))


@dataclass(frozen=True)
class Rewrite:
    """Where an op a schedule made comes from (engine.schedule): the model layer it computes part of, the
    part ("window": a patch's input slice, "patch", "paste"; a fused block's "slice" or "acc") and its index."""

    layer: str
    part: str
    index: int


@dataclass(frozen=True, eq=False)
class Op:
    kind: str  # canonical operator name, e.g. "CONV_2D" (see mcuforge.ir.ops)
    inputs: tuple[str, ...]  # tensor names; "" marks an absent optional operand (e.g. no bias)
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=lambda: _frozen(None))
    name: str = ""  # layer name for reports; defaults to the first output's name
    rewrite: Rewrite | None = None  # set on the ops patch-based and fused execution make

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "attrs", _frozen(self.attrs))
        if not self.name:
            object.__setattr__(self, "name", self.outputs[0] if self.outputs else self.kind)

    def with_(self, **changes: Any) -> "Op":
        return replace(self, **changes)


@dataclass(frozen=True, eq=False)
class Graph:
    tensors: Mapping[str, Tensor]
    ops: tuple[Op, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    name: str = "model"
    # Inputs the caller keeps in a buffer of its own (e.g. a camera frame): read in place, never written,
    # and not in the arena. A deployment choice (see `with_external_inputs`), not part of the model.
    external: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensors", MappingProxyType(dict(self.tensors)))
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "external", tuple(self.external))
        stray = [n for n in self.external if n not in self.inputs]
        if stray:
            raise ValueError(f"external tensors must be graph inputs: {stray}")

    def __getitem__(self, name: str) -> Tensor:
        return self.tensors[name]

    def producer(self, tensor: str) -> int | None:
        """Index of the op that writes `tensor` (None for graph inputs and constants)."""
        for i, op in enumerate(self.ops):
            if tensor in op.outputs:
                return i
        return None

    def consumers(self, tensor: str) -> list[int]:
        return [i for i, op in enumerate(self.ops) if tensor in op.inputs]

    def activations(self) -> list[str]:
        """Names of the non-constant tensors that some op or the graph touches, in first-use order (state
        tensors are not activations: see `states`)."""
        seen: dict[str, None] = {}
        for n in self.inputs:
            seen[n] = None
        for op in self.ops:
            for n in (*op.inputs, *op.outputs):
                if n and not self.tensors[n].is_const and not self.tensors[n].variable:
                    seen[n] = None
        return list(seen)

    def states(self) -> list[str]:
        """Names of the state tensors (Tensor.variable) the ops read, in first-use order."""
        return list(dict.fromkeys(n for op in self.ops for n in op.inputs if n and self.tensors[n].variable))

    def with_external_inputs(self, external: bool = True) -> "Graph":
        """A copy whose inputs are read from the caller's buffers (external) or live in the arena."""
        return replace(self, external=self.inputs if external else ())

    def with_ops(self, ops: Iterable[Op], tensors: Mapping[str, Tensor] | None = None) -> "Graph":
        """A copy with new ops; tensors no op or graph edge refers to any more are dropped."""
        ops = tuple(ops)
        pool = dict(self.tensors if tensors is None else tensors)
        used = set(self.inputs) | set(self.outputs)
        for op in ops:
            used.update(n for n in (*op.inputs, *op.outputs) if n)
        return replace(self, ops=ops, tensors={k: v for k, v in pool.items() if k in used})


def clone_tensor(t: Tensor, **changes: Any) -> Tensor:
    return replace(t, **changes)


def per_tensor_quant(graph: Graph, name: str, op: Op) -> QuantParams:
    """Tensor `name`'s quantization, which `op` needs per tensor; a ModelError naming the op otherwise."""
    from ..errors import ModelError, shown

    q = graph[name].quant
    if q is None or q.per_channel:
        raise ModelError(f"{op.kind} {shown(op.name)}: tensor {shown(name)} needs per-tensor int8 quantization")
    return q
