"""SVDF: a fully connected layer over time, factored (singular value decomposition filter), with memory.

Operands: input int8 [batch, inputs]; weights_feature int8 [filters, inputs]; weights_time [filters,
memory]; bias int32 [units] (optional); state [batch, filters * memory], a state tensor (Tensor.variable)
the op updates in place. The time weights and the state are both int8 or both int16 (TFLM's two integer
SVDFs). filters = units * rank. Output int8 [batch, units].

Semantics (TFLM EvalIntegerSvdfReference<T>, T the state's type): per step every filter's memory row moves
one place (the oldest value drops out); the newest value is the feature dot product sum_i wf[f,i] *
(x[i] - x_zp) (weights' zero points are taken as 0), requantized by M1 = float32(s_x * s_wf / s_state),
clamped to T's range, plus the state's zero point, stored as T (wrapping, as TFLM's store does). Each
unit's output is bias[u] + sum over its rank filters and the memory of wt[f,m] * (state[f,m] - state_zp),
requantized by M2 = float32(s_state * s_wt / s_out) plus the output zero point and clamped to int8. The
fused activation is not applied (TFLM's integer kernel ignores it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import options_of, where
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from ..quant import intmath
from ..quant.intmath import multiply_by_quantized_multiplier_wrapping as requantize
from .base import Operator

SPEC = OpSpec(("input", "weights_feature", "weights_time", "bias?", "state"), ("rank",), states=(4,),
              weights=(1, 2, 3), typed=True)
MAX_SUMMED = (1 << 31) // (128 * 255)  # int32 sums of this many products (|w| <= 128, |x - zp| <= 255) fit
STATE_TYPES = {"int8": (-128, 127), "int16": (-32768, 32767)}  # the state's type: its range


@dataclass(frozen=True)
class Dims:
    batches: int
    inputs: int
    filters: int
    rank: int
    memory: int

    @property
    def units(self) -> int:
        return self.filters // self.rank


def dims(op: Op, graph: Graph) -> Dims:
    x, wf, wt = (graph[n].shape for n in op.inputs[:3])
    return Dims(x[0], x[1], wf[0], int(op.attrs["rank"]), wt[1])


# ---------------------------------------------------------------- shapes and types


def check(op: Op, graph: Graph, where_: str) -> None:
    x, wf, wt, y = graph[op.inputs[0]], graph[op.inputs[1]], graph[op.inputs[2]], graph[op.outputs[0]]
    state = graph[op.inputs[4]]
    rank = op.attrs["rank"]
    if len(x.shape) != 2 or len(wf.shape) != 2 or len(wt.shape) != 2:
        raise ModelError(f"{where_}: input {list(x.shape)}, feature weights {list(wf.shape)} and time weights "
                         f"{list(wt.shape)} must be matrices")
    d = Dims(x.shape[0], x.shape[1], wf.shape[0], rank, wt.shape[1])
    if rank < 1 or d.filters % rank or wf.shape[1] != d.inputs or wt.shape[0] != d.filters:
        raise ModelError(f"{where_}: feature weights {list(wf.shape)}, time weights {list(wt.shape)} and rank "
                         f"{rank} do not fit input {list(x.shape)}")
    if state.size != d.batches * d.filters * d.memory or y.shape != (d.batches, d.units):
        raise ModelError(f"{where_}: state {list(state.shape)} or output {list(y.shape)} does not fit "
                         f"{d.batches} x {d.filters} filters x {d.memory} memory, {d.units} units")
    if not state.variable:
        raise ModelError(f"{where_}: the state operand {shown(state.name)} is not a state (variable) tensor")
    if op.inputs[3] and (graph[op.inputs[3]].size != d.units or graph[op.inputs[3]].dtype != "int32"):
        raise ModelError(f"{where_}: bias {list(graph[op.inputs[3]].shape)} must be int32 for {d.units} units")
    if wt.dtype != state.dtype or state.dtype not in STATE_TYPES:
        raise ModelError(f"{where_}: time weights {wt.dtype} and state {state.dtype}; both int8 or both int16")
    for t in (x, wf, y, wt, state):
        dtype = state.dtype if t in (wt, state) else "int8"
        if t.dtype != dtype or t.quant is None or t.quant.per_channel:
            raise ModelError(f"{where_}: {shown(t.name)} is {t.dtype}; {dtype} quantized per tensor expected")
    for t in (wf, wt) + ((graph[op.inputs[3]],) if op.inputs[3] else ()):
        if not t.is_const:
            raise ModelError(f"{where_}: weights and bias must be constant, {shown(t.name)} is not")
    b = graph[op.inputs[3]] if op.inputs[3] else None
    if b is not None and b.quant is not None and abs(float(b.quant.s) - float(state.quant.s) * float(wt.quant.s)) >= 1e-5:
        raise ModelError(f"{where_}: bias scale {float(b.quant.s):g} is not the state's times the time weights' "
                         f"({float(state.quant.s) * float(wt.quant.s):g}), as TFLM requires")
    if d.inputs > MAX_SUMMED:
        raise ModelError(f"{where_}: sums over {d.inputs} products could overflow int32")
    lo, hi = STATE_TYPES[state.dtype]
    reach = max(hi - state.quant.zp, state.quant.zp - lo)  # the largest |state - zero point|
    per_unit = np.abs(wt.data.astype(np.int64)).reshape(d.units, -1).sum(axis=1) * reach
    bias_max = int(np.abs(graph[op.inputs[3]].data.astype(np.int64)).max()) if op.inputs[3] else 0
    if int(per_unit.max()) + bias_max >= 1 << 31:
        raise ModelError(f"{where_}: a unit's time sum can reach {int(per_unit.max()):,}; over int32")


# ---------------------------------------------------------------- .tflite


def read(raw, tensors: dict) -> list[Op]:
    opt = options_of(raw, "SVDFOptions", required=True)
    if opt.FusedActivationFunction() not in (0, 1, 2, 3):
        raise ModelError(f"{where(raw)}: fused activation #{opt.FusedActivationFunction()} is not supported")
    if opt.AsymmetricQuantizeInputs():
        raise ModelError(f"{where(raw)}: hybrid SVDF (asymmetric_quantize_inputs) is not supported; "
                         "quantize the model fully to int8")
    return [Op("SVDF", raw.inputs, raw.outputs, {"rank": int(opt.Rank())})]


def write(low, op: Op) -> None:
    low.emit("SVDF", [low.tensor(n) for n in op.inputs], [low.tensor(n) for n in op.outputs],
             ("SVDFOptions", {"Rank": int(op.attrs["rank"])}))


# ---------------------------------------------------------------- Prepare, reference, C


@dataclass(frozen=True)
class SvdfQuant:
    """TFLM PrepareSvdf: both multipliers from float32 products and quotients, widened to double."""

    input_zero_point: int
    state_zero_point: int
    output_zero_point: int
    feature_multiplier: int
    feature_shift: int
    output_multiplier: int
    output_shift: int


def prepare(op: Op, graph: Graph) -> SvdfQuant:
    x, wf, wt, state, y = (graph[n].quant for n in (*op.inputs[:3], op.inputs[4], op.outputs[0]))
    f32 = np.float32
    m1, s1 = intmath.quantize_multiplier(float(f32(x.s) * f32(wf.s) / f32(state.s)))
    m2, s2 = intmath.quantize_multiplier(float(f32(state.s) * f32(wt.s) / f32(y.s)))
    return SvdfQuant(x.zp, state.zp, y.zp, m1, s1, m2, s2)


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    d, q = dims(op, graph), prepare(op, graph)
    x, wf, wt, bias, state = args
    rows = state.reshape(d.batches, d.filters, d.memory)  # a view: the state is updated in place
    rows[:, :, :-1] = rows[:, :, 1:].copy()
    feature = (x.astype(np.int64) - q.input_zero_point) @ wf.astype(np.int64).T  # [batches, filters]
    lo, hi = STATE_TYPES[graph[op.inputs[4]].dtype]
    newest = np.clip(requantize(feature, q.feature_multiplier, q.feature_shift), lo, hi) + q.state_zero_point
    rows[:, :, -1] = intmath.wrap(newest, 8 if hi == 127 else 16)
    timed = ((rows.astype(np.int64) - q.state_zero_point) * wt.astype(np.int64)).sum(axis=2)
    acc = timed.reshape(d.batches, d.units, d.rank).sum(axis=2)
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    out = requantize(acc, q.output_multiplier, q.output_shift) + q.output_zero_point
    return [np.clip(out, -128, 127).astype(np.int8)]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct

    d, q = dims(op, ctx.graph), prepare(op, ctx.graph)
    ctx.use("mcu_svdf_s8.h")
    variant = "mcu_svdf_s8" if ctx.graph[op.inputs[4]].dtype == "int8" else "mcu_svdf_s8_s16"
    params = {"batches": d.batches, "inputs": d.inputs, "filters": d.filters, "rank": d.rank, "memory": d.memory,
              "input_zero_point": q.input_zero_point, "state_zero_point": q.state_zero_point,
              "output_zero_point": q.output_zero_point, "feature_multiplier": q.feature_multiplier,
              "feature_shift": q.feature_shift, "output_multiplier": q.output_multiplier,
              "output_shift": q.output_shift}
    bias = ctx.const(op.inputs[3]) if op.inputs[3] else "0"
    return c_call(variant, [c_struct("mcu_svdf_params", params), ctx.ptr(op.inputs[0]),
                            ctx.const(op.inputs[1]), ctx.const(op.inputs[2]), bias, ctx.ptr(op.inputs[4]),
                            ctx.ptr(op.outputs[0])])


def macs(op: Op, graph: Graph) -> int:
    d = dims(op, graph)
    return d.batches * d.filters * (d.inputs + d.memory)


OPERATOR = Operator("SVDF", read, (5, 5, (3,)), write, SPEC, check, reference, emit, macs, version=3)
