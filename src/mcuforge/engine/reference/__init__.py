"""The numpy reference interpreter: our own statement of TFLite int8 semantics, bit-exact with TFLM.

Each operator's reference kernel is in its module (mcuforge.operators.<op>; Operator.reference)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ...errors import ModelError, shown
from ...ir import NUMPY_DTYPES, Graph
from ...quant.intmath import ScaleError
from .registry import KERNELS

__all__ = ["run", "run_all", "initial_state", "KERNELS"]


def initial_state(graph: Graph) -> dict[str, np.ndarray]:
    """The state tensors (Tensor.variable) as a model starts, and restarts, them: filled with the zero point."""
    state = {}
    for n in graph.states():
        t = graph[n]
        state[n] = np.full(t.shape, t.quant.zp if t.quant is not None else 0, NUMPY_DTYPES[t.dtype])
    return state


def run_all(graph: Graph, inputs: Sequence[np.ndarray],
            state: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Runs the graph on one set of inputs; returns the value of every tensor by name (constants included).

    A stateful model (SVDF, LSTM) reads and updates `state` in place (from `initial_state`): pass the same
    dict to consecutive calls to run a sequence, as the C library and TFLM do. None: a fresh state."""
    if len(inputs) != len(graph.inputs):
        raise ValueError(f"{graph.name} takes {len(graph.inputs)} input(s), got {len(inputs)}")
    values: dict[str, np.ndarray] = {n: t.data for n, t in graph.tensors.items() if t.data is not None}
    values.update(initial_state(graph) if state is None else state)
    for name, x in zip(graph.inputs, inputs):
        t = graph[name]
        x = np.asarray(x)
        if x.size != t.size:
            raise ValueError(f"input {shown(name)} needs {t.size} values {t.shape}, got shape {x.shape}")
        values[name] = x.astype(NUMPY_DTYPES[t.dtype], copy=False).reshape(t.shape)
    for op in graph.ops:
        fn = KERNELS.get(op.kind)
        if fn is None:
            raise ModelError(f"operator {op.kind} ({shown(op.name)}): no reference kernel")
        args = [values[n] if n else None for n in op.inputs]
        try:
            outs = fn(op, graph, args)
        except ScaleError as e:
            raise ModelError(f"layer {op.kind} {shown(op.name)}: {e}") from None
        for name, y in zip(op.outputs, outs):
            t = graph[name]
            y = np.asarray(y)
            assert y.dtype == NUMPY_DTYPES[t.dtype], (op.kind, op.name, y.dtype, t.dtype)
            values[name] = y.reshape(t.shape)
    return values


def run(graph: Graph, inputs: Sequence[np.ndarray], state: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """Runs the graph on one set of inputs; returns its outputs (`state`: see run_all)."""
    values = run_all(graph, inputs, state)
    return [values[n] for n in graph.outputs]
