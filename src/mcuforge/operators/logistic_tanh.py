"""LOGISTIC and TANH on int8 (TFLM's reference kernels, gemmlowp fixed point): (x - zp) rescaled into Q4.27,
the fixed-point logistic or tanh (mcuforge.quant.fixedpoint), rounded to 8 bits; inputs beyond
+-input_range_radius saturate. TFLM ignores the output quantization of TANH (the result is always read as
scale 1/128, zero point 0) and of LOGISTIC checks only the zero point (-128; read as scale 1/256).

Being elementwise on int8, each is a 256-entry table: for tensors of LUT_MIN_SIZE elements or more the
emitter stores the table this module computes (256 bytes of flash) and emits a lookup (mcu_lut_s8);
smaller tensors run the fixed-point kernel (mcu_logistic_s8.h, mcu_tanh_s8.h; no table). Both give the same
bits. Moved into the registry from the stages' modules, one module for the pair (they share everything
but the function).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from ..ir.shapes import elementwise_shape
from ..quant import fixedpoint as fp
from ..quant import intmath
from .base import Operator

SPEC = OpSpec(("input",), (), elementwise=True)
NONLINEARITY_INPUT_INTEGER_BITS = 4  # the input in Q4.27
LUT_MIN_SIZE = 256  # tensors this large use the table


@dataclass(frozen=True)
class NonlinearityParams:
    """LOGISTIC / TANH: input -> Q4.27."""

    input_zero_point: int
    multiplier: int
    left_shift: int
    input_range_radius: int


def prepare(op: Op, graph: Graph) -> NonlinearityParams:
    x, y = graph[op.inputs[0]], graph[op.outputs[0]]
    if x.dtype != "int8" or x.quant is None or y.dtype != "int8" or y.quant is None:
        raise ModelError(f"{op.kind} {shown(op.name)}: input and output must be quantized int8, got {x.dtype} "
                         f"and {y.dtype}")
    if op.kind == "LOGISTIC" and y.quant.zp != -128:
        raise ModelError(f"{op.kind} {shown(op.name)}: int8 output must have zero point -128 (as TFLite requires), "
                         f"got {y.quant.zp}")
    try:
        m, shift, radius = fp.nonlinearity_scaling(x.quant.s, NONLINEARITY_INPUT_INTEGER_BITS)
    except ValueError as e:
        raise ModelError(f"{op.kind} {shown(op.name)}: {e}") from None
    return NonlinearityParams(x.quant.zp, m, shift, radius)


def _table(p: NonlinearityParams, fn, output_shift: int, output_offset: int) -> np.ndarray:
    x = np.arange(-128, 128, dtype=np.int64) - p.input_zero_point
    inside = np.where(np.abs(x) < p.input_range_radius, x, 0)
    q4 = intmath.multiply_by_quantized_multiplier(inside, p.multiplier, p.left_shift)
    y = intmath.rounding_divide_by_pot(fn(q4, NONLINEARITY_INPUT_INTEGER_BITS), output_shift) + output_offset
    y = np.clip(y, -128, 127)
    y = np.where(x <= -p.input_range_radius, -128, np.where(x >= p.input_range_radius, 127, y))
    return y.astype(np.int8)


def table(op: Op, graph: Graph) -> np.ndarray:
    """int8[256]: the op's output for input value v at index v + 128."""
    p = prepare(op, graph)
    return _table(p, fp.logistic, 31 - 8, -128) if op.kind == "LOGISTIC" else _table(p, fp.tanh, 31 - 7, 0)


def read(raw, tensors: dict) -> list[Op]:
    return [Op(raw.kind, raw.inputs[:1], raw.outputs[:1])]


def write(low, op: Op) -> None:
    low.emit(op.kind, [low.tensor(op.inputs[0])], [low.tensor(op.outputs[0])])


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    return [table(op, graph)[np.asarray(args[0], np.int64) + 128]]


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct

    p = prepare(op, ctx.graph)
    size = ctx.tensor(op.inputs[0]).size
    x, y = ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])
    ctx.use("mcu_fixedpoint.h")
    if size >= LUT_MIN_SIZE:
        ident = ctx.const(f"{op.kind.lower()}_lut", table(op, ctx.graph), "int8_t")
        return c_call("mcu_lut_s8", [x, y, str(size), ident])
    name = "logistic" if op.kind == "LOGISTIC" else "tanh"
    ctx.use(f"mcu_{name}_s8.h")
    quant = c_struct(f"mcu_{name}_quant", {"input_zero_point": p.input_zero_point, "multiplier": p.multiplier,
                                           "left_shift": p.left_shift, "input_range_radius": p.input_range_radius})
    return c_call(f"mcu_{name}_s8", [x, y, str(size), quant])


OPERATORS = tuple(Operator(kind, read, (1, 1, ()), write, SPEC, elementwise_shape, reference, emit, version=2)
                  for kind in ("LOGISTIC", "TANH"))
