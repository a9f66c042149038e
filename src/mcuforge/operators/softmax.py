"""SOFTMAX and LOG_SOFTMAX on int8 (TFLM semantics), one module for the pair: Prepare, reference, emitters;
the C kernels are mcu_softmax_s8.h. Moved into the registry from the stages' modules.

Both are TFLM's gemmlowp fixed-point algorithms (mcuforge.quant.fixedpoint), not lookup tables of
float results: the pip tflite-micro runs its reference kernels, whose bits the tests check exhaustively.

- SOFTMAX over the last axis: diff = x - max(row); rows entries with diff < diff_min contribute nothing
  and output -128; the others are rescaled by beta * input_scale into Q5.26, exp'd, summed in Q12.19,
  and scaled by the fixed-point reciprocal of the sum. Output int8 with scale 1/256, zero point -128
  (TFLM refuses anything else), or int16 with scale 1/65536, zero point -32768.
- LOG_SOFTMAX: the same sum, then log in Q5.26; output scale 16/256, zero point 127 (TFLM requires it).

The compile-time constants come from the functions here, which the emitters below use as well.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import options_of, where
from ..ir.graph import Graph, Op, Tensor
from ..ir.ops import OpSpec
from ..ir.shapes import elementwise_shape
from ..quant import fixedpoint as fp
from ..quant import intmath
from .base import Operator

SCALED_DIFF_INTEGER_BITS = 5  # exp() input: Q5.26
ACCUMULATION_INTEGER_BITS = 12  # sum of exps: Q12.19
LOG_SOFTMAX_OUTPUT_INTEGER_BITS = 4


@dataclass(frozen=True)
class SoftmaxParams:
    multiplier: int  # Q31 multiplier of beta * input_scale * 2^26
    left_shift: int  # >= 0
    diff_min: int  # <= 0: diffs below it contribute nothing
    output_bits: int  # 8 (int8 output) or 16 (int16 output)


@dataclass(frozen=True)
class LogSoftmaxParams:
    multiplier: int
    left_shift: int
    reverse_multiplier: int
    reverse_shift: int  # <= 0 (a right shift)
    diff_min: int


# ----------------------------------------------------------------------------- checks and constants


def _edges(op: Op, graph: Graph) -> tuple[Tensor, Tensor]:
    x, y = graph[op.inputs[0]], graph[op.outputs[0]]
    if x.dtype != "int8" or x.quant is None:
        raise ModelError(f"{op.kind} {shown(op.name)}: input {shown(x.name)} must be quantized int8, got {x.dtype}"
                         + ("" if x.quant is not None else " without quantization parameters"))
    if y.quant is None:
        raise ModelError(f"{op.kind} {shown(op.name)}: output {shown(y.name)} has no quantization parameters")
    if len(x.shape) < 1 or x.shape != y.shape:
        raise ModelError(f"{op.kind} {shown(op.name)}: output shape {y.shape} must equal input shape {x.shape}")
    return x, y


def _require_output(op: Op, y: Tensor, scale: float, zero_point: int) -> None:
    assert y.quant is not None
    if y.quant.zp != zero_point or np.float32(y.quant.s) != np.float32(scale):
        raise ModelError(f"{op.kind} {shown(op.name)}: int8 output must have scale {scale:g} and zero point "
                         f"{zero_point} (as TFLite requires), got scale {y.quant.s:g} zero point {y.quant.zp}")


def softmax_params(op: Op, graph: Graph) -> SoftmaxParams:
    x, y = _edges(op, graph)
    if y.dtype == "int8":
        _require_output(op, y, 1.0 / 256, -128)
        bits = 8
    elif y.dtype == "int16":
        assert y.quant is not None
        if y.quant.zp != -32768 or abs(y.quant.s - 1.0 / 65536) > 0.001 / 65536:
            raise ModelError(f"{op.kind} {shown(op.name)}: int16 output must have scale 1/65536 and zero point "
                             f"-32768, got scale {y.quant.s:g} zero point {y.quant.zp}")
        bits = 16
    else:
        raise ModelError(f"{op.kind} {shown(op.name)}: output must be int8 or int16, got {y.dtype}")
    assert x.quant is not None
    beta = float(np.float32(op.attrs.get("beta", 1.0)))
    try:
        m, shift, diff_min = fp.softmax_scaling(beta, float(np.float32(x.quant.s)), SCALED_DIFF_INTEGER_BITS)
    except ValueError as e:
        raise ModelError(f"{op.kind} {shown(op.name)}: {e}") from None
    return SoftmaxParams(m, shift, diff_min, bits)


def log_softmax_params(op: Op, graph: Graph) -> LogSoftmaxParams:
    x, y = _edges(op, graph)
    if y.dtype != "int8":
        raise ModelError(f"{op.kind} {shown(op.name)}: output must be int8, got {y.dtype}")
    _require_output(op, y, 16.0 / 256, 127)
    assert x.quant is not None
    try:
        values = fp.log_softmax_scaling(float(np.float32(x.quant.s)), SCALED_DIFF_INTEGER_BITS)
    except ValueError as e:
        raise ModelError(f"{op.kind} {shown(op.name)}: {e}") from None
    return LogSoftmaxParams(*values)


def rows(shape: Sequence[int]) -> tuple[int, int]:
    """(outer, depth): softmax runs over the last axis."""
    depth = int(shape[-1])
    outer = 1
    for d in shape[:-1]:
        outer *= int(d)
    return outer, depth


# ----------------------------------------------------------------------------- integer kernels


def _scaled_diffs(x: np.ndarray, multiplier: int, left_shift: int, diff_min: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per row: which diffs take part (diff >= diff_min), and those diffs rescaled into Q5.26."""
    diff = x - x.max(axis=-1, keepdims=True)
    valid = diff >= diff_min
    diff = np.where(valid, diff, 0)
    return valid, fp.srdhm(diff * (np.int64(1) << left_shift), multiplier)


def _sum_of_exps(valid: np.ndarray, exps: np.ndarray) -> np.ndarray:
    terms = fp.rescale(exps, 0, ACCUMULATION_INTEGER_BITS)
    return np.where(valid, terms, 0).sum(axis=-1, keepdims=True)


def softmax_s8(x: np.ndarray, p: SoftmaxParams) -> np.ndarray:
    """int8 rows [outer, depth] -> int8 (or int16) probabilities."""
    x = np.asarray(x, np.int64)
    valid, scaled = _scaled_diffs(x, p.multiplier, p.left_shift, p.diff_min)
    exps = fp.exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
    scale, bits_over_unit = fp.reciprocal(_sum_of_exps(valid, exps), ACCUMULATION_INTEGER_BITS)
    exponent = bits_over_unit + 31 - p.output_bits
    qmin, qmax = -(1 << (p.output_bits - 1)), (1 << (p.output_bits - 1)) - 1
    out = intmath.rounding_divide_by_pot(fp.srdhm(scale, exps), exponent) + qmin
    out = np.where(valid, np.clip(out, qmin, qmax), qmin)
    return out.astype(np.int8 if p.output_bits == 8 else np.int16)


def log_softmax_s8(x: np.ndarray, p: LogSoftmaxParams) -> np.ndarray:
    """int8 rows [outer, depth] -> int8 log-probabilities (scale 16/256, zero point 127)."""
    x = np.asarray(x, np.int64)
    valid, scaled = _scaled_diffs(x, p.multiplier, p.left_shift, p.diff_min)
    exps = fp.exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
    log_sum = fp.log_x_for_x_greater_than_or_equal_to_1(
        _sum_of_exps(valid, exps), ACCUMULATION_INTEGER_BITS, SCALED_DIFF_INTEGER_BITS)
    adjusted_diff_min = np.maximum(
        p.diff_min - 1,
        intmath.multiply_by_quantized_multiplier(log_sum + intmath.INT32_MIN, p.reverse_multiplier,
                                                 p.reverse_shift))
    diff = x - x.max(axis=-1, keepdims=True)
    shift = 31 - SCALED_DIFF_INTEGER_BITS - LOG_SOFTMAX_OUTPUT_INTEGER_BITS
    out = np.clip(intmath.rounding_divide_by_pot(scaled - log_sum, shift) + 127, -128, 127)
    return np.where(diff > adjusted_diff_min, out, -128).astype(np.int8)


# ----------------------------------------------------------------------------- the facts the stages use

SOFTMAX_SPEC = OpSpec(("input",), ("beta",))
LOG_SOFTMAX_SPEC = OpSpec(("input",), ())


def read(raw, tensors: dict) -> list[Op]:
    if raw.kind == "LOG_SOFTMAX":
        return [Op("LOG_SOFTMAX", raw.inputs[:1], raw.outputs[:1])]
    beta = float(options_of(raw, "SoftmaxOptions", required=True).Beta())
    if not 0.0 < beta < 1e6:
        raise ModelError(f"{where(raw)}: softmax beta {beta:g} is not a plausible value")
    return [Op("SOFTMAX", raw.inputs[:1], raw.outputs[:1], {"beta": beta})]


def write(low, op: Op) -> None:
    options = ("SoftmaxOptions", {"Beta": op.attrs["beta"]}) if op.kind == "SOFTMAX" else ("LogSoftmaxOptions", {})
    low.emit(op.kind, [low.tensor(op.inputs[0])], [low.tensor(op.outputs[0])], options)


def softmax(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    outer, depth = rows(x.shape)
    return [softmax_s8(x.reshape(outer, depth), softmax_params(op, graph)).reshape(x.shape)]


def log_softmax(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    outer, depth = rows(x.shape)
    return [log_softmax_s8(x.reshape(outer, depth), log_softmax_params(op, graph)).reshape(x.shape)]


def _row_call(op: Op, ctx, fn: str, struct: str, fields: dict) -> str:
    """`fn(input, output, rows, depth, &quant)`, or nothing for an empty tensor."""
    from ..engine.codegen.literals import c_call, c_struct

    outer, depth = rows(ctx.tensor(op.inputs[0]).shape)
    if outer * depth == 0:
        return ""
    ctx.use("mcu_fixedpoint.h")
    ctx.use("mcu_softmax_s8.h")
    return c_call(fn, [ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0]), str(outer), str(depth),
                       c_struct(struct, fields)])


def emit_softmax(op: Op, ctx) -> str:
    p = softmax_params(op, ctx.graph)
    fields = {"multiplier": p.multiplier, "left_shift": p.left_shift, "diff_min": p.diff_min}
    return _row_call(op, ctx, "mcu_softmax_s8" if p.output_bits == 8 else "mcu_softmax_s8_s16", "mcu_softmax_quant",
                     fields)


def emit_log_softmax(op: Op, ctx) -> str:
    p = log_softmax_params(op, ctx.graph)
    fields = {"multiplier": p.multiplier, "left_shift": p.left_shift, "reverse_multiplier": p.reverse_multiplier,
              "reverse_shift": p.reverse_shift, "diff_min": p.diff_min}
    return _row_call(op, ctx, "mcu_log_softmax_s8", "mcu_log_softmax_quant", fields)


OPERATORS = (Operator("SOFTMAX", read, (1, 1, ()), write, SOFTMAX_SPEC, elementwise_shape, softmax, emit_softmax,
                      version=2),
             Operator("LOG_SOFTMAX", read, (1, 1, ()), write, LOG_SOFTMAX_SPEC, elementwise_shape, log_softmax,
                      emit_log_softmax, version=2))
