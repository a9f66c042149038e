"""UNIDIRECTIONAL_SEQUENCE_LSTM: int8 activations and weights, an int16 cell state (TFLM's integer LSTM).

Operands, in TFLite's order: 0 input int8 [batch, time, inputs] ([time, batch, inputs] when time major);
1-4 the input weights and 5-8 the recurrent weights of the input, forget, cell and output gates, int8
[cells, inputs] and [cells, cells], symmetric per tensor; 12-15 the gates' int32 biases [cells]; 18 the
hidden state int8 and 19 the cell state int16 (Tensor.variable, [batch, cells] each, kept between
invocations). Positions 9-11 (peephole), 16-17 (projection) and 20-23 (layer norm) are empty, as TFLM
requires. Output int8 [batch, time, cells] (or time major), the hidden state after every step.

Semantics (TFLM's lstm_eval, EvalLstm<int8, int8, int16, int32>), per batch and time step:
- each gate's pre-activation: two fully connected layers into int16 at scale 2^-12: W_in (x - x_zp) + bias,
  and W_rec (h - h_zp), each requantized and clamped to int16, then added with int16 saturation;
- forget, input and output gates: the int16 sigmoid (reference_integer_ops::Logistic with multiplier 3);
  the cell gate: the int16 tanh; both interpolate a 256-entry table of sigmoid values in 0.16 format,
  SIGMOID_TABLE, measured from TFLM's int16 LOGISTIC and TANH (tests/test_op_lstm.py derives it again
  from the oracle and compares);
- cell = sat16(mul(forget, cell) + mul(input, cell gate)), each product requantized to the cell's scale,
  then clipped to the quantized cell clip when the model sets one;
- hidden = mul(tanh(cell), output gate) requantized to the hidden state's scale and zero point, int8; it
  is both the step's output and the next step's recurrent input.
The gates' output scale is exactly 2^-15. (Some TFLM sources write it 0.00003051757f, 2 ulps below; the
pip tflite-micro rounds the cell update as for the exact power of two, tests/test_op_lstm.py tells them apart.)
"""
from __future__ import annotations

import math
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

GATES = ("input", "forget", "cell", "output")  # TFLite's order of the weights and biases
INPUT_WEIGHTS, RECURRENT_WEIGHTS, BIASES = (1, 2, 3, 4), (5, 6, 7, 8), (12, 13, 14, 15)
HIDDEN, CELL = 18, 19
ABSENT = (9, 10, 11, 16, 17, 20, 21, 22, 23)  # peephole, projection, layer norm: TFLM runs none
SPEC = OpSpec(("input", *(f"{g}_weights" for g in GATES), *(f"recurrent_{g}_weights" for g in GATES),
               "cell_to_input?", "cell_to_forget?", "cell_to_output?", *(f"{g}_bias" for g in GATES),
               "projection_weights?", "projection_bias?", "hidden_state", "cell_state",
               *(f"{g}_layer_norm?" for g in GATES)),
              ("time_major", "cell_clip"), states=(HIDDEN, CELL), weights=INPUT_WEIGHTS + RECURRENT_WEIGHTS + BIASES,
              typed=True)
GATE_INPUT_SCALE = np.float32(2.0 ** -12)  # the gates' FC output (Q3.12) and activation output (Q0.15) scales
GATE_OUTPUT_SCALE = np.float32(2.0 ** -15)
MAX_SUMMED = (1 << 31) // (128 * 255)
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1

# sigmoid(i / 24) in 0.16 format, i = 0..255, as TFLM's int16 LOGISTIC and TANH interpolate it (measured)
SIGMOID_TABLE = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432,
    42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475,
    49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485,
    55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519,
    59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036,
    62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405,
    64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179,
    65194, 65208, 65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337,
    65345, 65352, 65360, 65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
    65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517,
    65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525, 65525,
    65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533,
    65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535,
], np.int64)


@dataclass(frozen=True)
class Dims:
    batches: int
    steps: int
    inputs: int
    cells: int
    time_major: bool


def dims(op: Op, graph: Graph) -> Dims:
    x = graph[op.inputs[0]].shape
    major = bool(op.attrs["time_major"])
    return Dims(x[1] if major else x[0], x[0] if major else x[1], x[2], graph[op.inputs[2]].shape[0], major)


# ---------------------------------------------------------------- shapes and types


def check(op: Op, graph: Graph, where_: str) -> None:
    x, y = graph[op.inputs[0]], graph[op.outputs[0]]
    if len(x.shape) != 3 or len(y.shape) != 3:
        raise ModelError(f"{where_}: input {list(x.shape)} and output {list(y.shape)} must have rank 3")
    present = [i for i in ABSENT if op.inputs[i]]
    if present:
        raise ModelError(f"{where_}: peephole, projection and layer-norm LSTMs are not supported (operand "
                         f"{present[0]} is set)")
    d = dims(op, graph)
    for i in (*INPUT_WEIGHTS, *RECURRENT_WEIGHTS, *BIASES, HIDDEN, CELL):
        if not op.inputs[i]:
            raise ModelError(f"{where_}: operand {i} ({SPEC.operands[i].rstrip('?')}) is absent; TFLM needs it")
    for i, cols in [(i, d.inputs) for i in INPUT_WEIGHTS] + [(i, d.cells) for i in RECURRENT_WEIGHTS]:
        w = graph[op.inputs[i]]
        if w.shape != (d.cells, cols):
            raise ModelError(f"{where_}: {SPEC.operands[i]} {list(w.shape)}; {[d.cells, cols]} expected")
        if w.dtype != "int8" or w.quant is None or w.quant.per_channel or w.quant.zp != 0 or not w.is_const:
            raise ModelError(f"{where_}: {SPEC.operands[i]} must be constant int8, symmetric per tensor")
    for i in BIASES:
        b = graph[op.inputs[i]]
        if b.dtype != "int32" or b.size != d.cells or not b.is_const:
            raise ModelError(f"{where_}: {SPEC.operands[i]} must be a constant int32 vector of {d.cells}")
    h, c = graph[op.inputs[HIDDEN]], graph[op.inputs[CELL]]
    for t, dtype in ((h, "int8"), (c, "int16"), (x, "int8"), (y, "int8")):
        if t.dtype != dtype or t.quant is None or t.quant.per_channel:
            raise ModelError(f"{where_}: {shown(t.name)} is {t.dtype}; {dtype} quantized per tensor expected")
    if not (h.variable and c.variable) or h.size != d.batches * d.cells or c.size != d.batches * d.cells:
        raise ModelError(f"{where_}: the hidden and cell states must be state (variable) tensors of "
                         f"{d.batches} x {d.cells}")
    if c.quant.zp != 0 or abs(math.log2(float(c.quant.s)) - round(math.log2(float(c.quant.s)))) >= 1e-3:
        raise ModelError(f"{where_}: the cell state's scale {float(c.quant.s):g} must be a power of two, its "
                         "zero point 0")
    expect = (d.steps, d.batches, d.cells) if d.time_major else (d.batches, d.steps, d.cells)
    if y.shape != expect:
        raise ModelError(f"{where_}: output {list(y.shape)}; {list(expect)} expected")
    if max(d.inputs, d.cells) > MAX_SUMMED:
        raise ModelError(f"{where_}: sums over {max(d.inputs, d.cells)} products could overflow int32")


# ---------------------------------------------------------------- .tflite


def read(raw, tensors: dict) -> list[Op]:
    opt = options_of(raw, "UnidirectionalSequenceLSTMOptions", required=True)
    if opt.FusedActivationFunction() != 4:  # TANH: the cell gate's and the cell's nonlinearity
        raise ModelError(f"{where(raw)}: activation #{opt.FusedActivationFunction()}; the engine runs the "
                         "TANH LSTM only")
    if opt.AsymmetricQuantizeInputs() or (hasattr(opt, "DiagonalRecurrentTensors") and opt.DiagonalRecurrentTensors()):
        raise ModelError(f"{where(raw)}: hybrid or diagonal LSTMs are not supported; quantize fully to int8")
    clip = float(opt.CellClip())
    if not math.isfinite(clip) or clip < 0:
        raise ModelError(f"{where(raw)}: cell clip {clip:g} is not a valid clip")
    return [Op("UNIDIRECTIONAL_SEQUENCE_LSTM", raw.inputs, raw.outputs,
               {"time_major": bool(opt.TimeMajor()), "cell_clip": clip})]


def write(low, op: Op) -> None:
    low.emit("UNIDIRECTIONAL_SEQUENCE_LSTM", [low.tensor(n) for n in op.inputs], [low.tensor(n) for n in op.outputs],
             ("UnidirectionalSequenceLSTMOptions", {"FusedActivationFunction": 4, "CellClip": op.attrs["cell_clip"],
                                                    "TimeMajor": bool(op.attrs["time_major"])}))


# ---------------------------------------------------------------- Prepare


@dataclass(frozen=True)
class LstmQuant:
    """TFLM's PrepareGateParametersInteger and CreateLstmCellStateInfo."""

    input_zero_point: int
    hidden_zero_point: int
    input_fc: tuple[tuple[int, int], ...]  # per gate (multiplier, shift)
    recurrent_fc: tuple[tuple[int, int], ...]
    forget_mul: tuple[int, int]  # forget gate x cell -> cell
    input_mul: tuple[int, int]  # input gate x cell gate -> cell
    output_mul: tuple[int, int]  # tanh(cell) x output gate -> hidden
    cell_clip: int  # 0: none
    tanh_multiplier: int  # the cell state into tanh's input
    tanh_shift: int


def _fc(x_scale: float, w_scale: float) -> tuple[int, int]:
    return intmath.quantize_multiplier(float(np.float32(x_scale)) * float(np.float32(w_scale)) / float(GATE_INPUT_SCALE))


def _mul(a: float, b: float, out: float) -> tuple[int, int]:
    return intmath.quantize_multiplier(float(np.float32(a)) * float(np.float32(b)) / float(np.float32(out)))


def prepare(op: Op, graph: Graph) -> LstmQuant:
    x, h, c = (graph[op.inputs[i]].quant for i in (0, HIDDEN, CELL))
    input_fc = tuple(_fc(x.s, graph[op.inputs[i]].quant.s) for i in INPUT_WEIGHTS)
    recurrent_fc = tuple(_fc(h.s, graph[op.inputs[i]].quant.s) for i in RECURRENT_WEIGHTS)
    power = round(math.log(float(np.float32(c.s))) / math.log(2.0))
    left = 15 + power - 3
    tanh_multiplier, tanh_shift = (3 << left, 0) if left >= 0 else (3, -left)
    clip = float(op.attrs["cell_clip"])
    quantized_clip = int(min(max(clip / float(np.float32(c.s)), -32768.0), 32767.0)) if clip > 0 else 0
    return LstmQuant(x.zp, h.zp, input_fc, recurrent_fc, _mul(GATE_OUTPUT_SCALE, c.s, c.s),
                     _mul(GATE_OUTPUT_SCALE, GATE_OUTPUT_SCALE, c.s), _mul(GATE_OUTPUT_SCALE, GATE_OUTPUT_SCALE, h.s),
                     quantized_clip, tanh_multiplier, tanh_shift)


# ---------------------------------------------------------------- reference


def sigmoid16(x: np.ndarray) -> np.ndarray:
    """TFLM's int16 logistic, Q3.12 in, Q0.15 out (the input scaled by 3 and read in steps of 2^9)."""
    v = np.asarray(x, np.int64) * 3
    a = np.abs(v)
    k = np.minimum(a >> 9, 254)
    lo, hi = SIGMOID_TABLE[k], SIGMOID_TABLE[k + 1]
    r = np.where(a >> 9 >= 255, 0x7FFF << 10, (lo << 9) + (a & 0x1FF) * (hi - lo))
    r = np.where(v >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1)
    return (r >> 10).astype(np.int16)


def tanh16(x: np.ndarray, multiplier: int = 3, shift: int = 0) -> np.ndarray:
    """TFLM's int16 tanh: x * multiplier, rounded right by shift, then the sigmoid table in steps of 2^8."""
    v = (np.asarray(x, np.int64) * multiplier + ((1 << (shift - 1)) if shift > 0 else 0)) >> shift
    a = np.abs(v)
    k = np.minimum(a >> 8, 254)
    lo, hi = SIGMOID_TABLE[k], SIGMOID_TABLE[k + 1]
    r = np.where(a >> 8 >= 255, 0xFFFF << 8, (lo << 8) + (a & 0xFF) * (hi - lo))
    r = np.where(v >= 0, r - (1 << 23) + (1 << 7), -r + (1 << 23) + (1 << 7) - 1)
    return (r >> 8).astype(np.int16)


def _sat16(x: np.ndarray) -> np.ndarray:
    return np.clip(x, INT16_MIN, INT16_MAX)


def _fc16(x: np.ndarray, zero_point: int, w: np.ndarray, bias: np.ndarray | None, scale: tuple[int, int]) -> np.ndarray:
    acc = (x.astype(np.int64) - zero_point) @ w.astype(np.int64).T
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return _sat16(requantize(acc, *scale))


def _product(a: np.ndarray, b: np.ndarray, scale: tuple[int, int], zero_point: int, lo: int, hi: int) -> np.ndarray:
    return np.clip(requantize(a.astype(np.int64) * b.astype(np.int64), *scale) + zero_point, lo, hi)


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    d, q = dims(op, graph), prepare(op, graph)
    x = args[0] if not d.time_major else np.swapaxes(args[0], 0, 1)  # [batch, time, inputs]
    hidden = args[HIDDEN].reshape(d.batches, d.cells)  # views: the states are updated in place
    cell = args[CELL].reshape(d.batches, d.cells)
    out = np.empty((d.batches, d.steps, d.cells), np.int8)
    for t in range(d.steps):
        pre = [_sat16(_fc16(x[:, t], q.input_zero_point, args[iw], args[b], q.input_fc[g])
                      + _fc16(hidden, q.hidden_zero_point, args[rw], None, q.recurrent_fc[g]))
               for g, (iw, rw, b) in enumerate(zip(INPUT_WEIGHTS, RECURRENT_WEIGHTS, BIASES))]
        i_gate, f_gate, g_gate, o_gate = sigmoid16(pre[0]), sigmoid16(pre[1]), tanh16(pre[2]), sigmoid16(pre[3])
        kept = _product(f_gate, cell, q.forget_mul, 0, INT16_MIN, INT16_MAX)
        new = _product(i_gate, g_gate, q.input_mul, 0, INT16_MIN, INT16_MAX)
        c = _sat16(kept + new)
        if q.cell_clip:
            c = np.clip(c, -q.cell_clip, q.cell_clip)
        cell[:] = c
        hidden[:] = _product(tanh16(c, q.tanh_multiplier, q.tanh_shift), o_gate, q.output_mul, q.hidden_zero_point,
                             -128, 127)
        out[:, t] = hidden
    return [np.swapaxes(out, 0, 1).copy() if d.time_major else out]


# ---------------------------------------------------------------- C


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct

    d, q = dims(op, ctx.graph), prepare(op, ctx.graph)
    ctx.use("mcu_lstm_s8.h")
    params = {"batches": d.batches, "steps": d.steps, "inputs": d.inputs, "cells": d.cells,
              "time_major": int(d.time_major), "input_zero_point": q.input_zero_point,
              "hidden_zero_point": q.hidden_zero_point,
              "input_fc": [v for pair in q.input_fc for v in pair],
              "recurrent_fc": [v for pair in q.recurrent_fc for v in pair],
              "forget_mul": list(q.forget_mul), "input_mul": list(q.input_mul), "output_mul": list(q.output_mul),
              "cell_clip": q.cell_clip, "tanh_multiplier": q.tanh_multiplier, "tanh_shift": q.tanh_shift}
    weights = ", ".join(ctx.const(op.inputs[i]) for i in (*INPUT_WEIGHTS, *RECURRENT_WEIGHTS))
    biases = ", ".join(ctx.const(op.inputs[i]) for i in BIASES)
    table = ctx.const("sigmoid_table", SIGMOID_TABLE.astype(np.uint16), "uint16_t")
    return c_call("mcu_lstm_s8", [c_struct("mcu_lstm_params", params), ctx.ptr(op.inputs[0]),
                                  f"(const int8_t *const[8]){{{weights}}}", f"(const int32_t *const[4]){{{biases}}}",
                                  table, ctx.ptr(op.inputs[HIDDEN]), ctx.ptr(op.inputs[CELL]), ctx.ptr(op.outputs[0]),
                                  f"(int16_t *)(void *){ctx.scratch}"])


def scratch(op: Op, graph: Graph) -> int:
    return 4 * dims(op, graph).cells * 2  # four int16 gate vectors of one batch row


def macs(op: Op, graph: Graph) -> int:
    d = dims(op, graph)
    return d.batches * d.steps * 4 * d.cells * (d.inputs + d.cells)


OPERATOR = Operator("UNIDIRECTIONAL_SEQUENCE_LSTM", read, (24, 24, ABSENT), write, SPEC, check, reference, emit,
                    macs, scratch, version=2)
