"""C emitters: elementwise ops (ADD, SUB, MUL, RELU, QUANTIZE, DEQUANTIZE).

Quantization constants come from the reference kernels' own functions and are passed as literals in
compound-literal structs. Binary ops on equal shapes get a flat loop; broadcasting ones get literal
per-dimension strides (0 where an input is broadcast) over an output shape padded to 6 dimensions, after
merging adjacent dimensions that both inputs walk the same way. The kernels are alias-safe (element i
is read before it is written), so in-place placement needs nothing from the emitter.
"""
from __future__ import annotations

from typing import Sequence

from ...errors import ModelError, shown
from ...ir import Op
from ...ir.ops import QUANTIZE_TYPES
from ..reference import ops_elementwise as ref
from .context import EmitContext, c_float, emitter
from .literals import c_call as _call, c_int as _int, c_ints as _ints, c_struct as _struct

BROADCAST_RANK = 6


def _contiguous_strides(shape: Sequence[int]) -> list[int]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return strides[::-1]


def broadcast_strides(out_shape: Sequence[int], a_shape: Sequence[int], b_shape: Sequence[int]
                      ) -> tuple[list[int], list[int], list[int]]:
    """(dims, a_strides, b_strides) of a broadcast loop: the output shape with dimensions of size 1
    dropped and mergeable neighbours merged, padded in front to 6; each input's element stride per
    dimension, 0 where it is broadcast."""
    rank = len(out_shape)
    if len(a_shape) > rank or len(b_shape) > rank:
        raise ModelError(f"inputs {tuple(a_shape)}, {tuple(b_shape)} have more dimensions than the output "
                         f"{tuple(out_shape)}")
    dims: list[int] = []
    strides: tuple[list[int], list[int]] = ([], [])
    padded = [[1] * (rank - len(s)) + list(s) for s in (a_shape, b_shape)]
    natural = [_contiguous_strides(s) for s in padded]
    for d in range(rank):
        if out_shape[d] == 1:
            continue
        for k in (0, 1):
            if padded[k][d] not in (1, out_shape[d]):
                raise ModelError(f"shapes {tuple(a_shape)} and {tuple(b_shape)} do not broadcast to "
                                 f"{tuple(out_shape)}")
            strides[k].append(natural[k][d] if padded[k][d] == out_shape[d] else 0)
        dims.append(int(out_shape[d]))
    # merge dimension i into i + 1 when both inputs continue across it (stride_i = stride_i+1 * dim_i+1)
    i = len(dims) - 2
    while i >= 0:
        if all(s[i] == s[i + 1] * dims[i + 1] for s in strides):
            dims[i + 1] *= dims[i]
            del dims[i]
            for s in strides:
                del s[i]
        i -= 1
    if len(dims) > BROADCAST_RANK:
        raise ModelError(f"broadcasting {tuple(a_shape)} with {tuple(b_shape)} needs {len(dims)} loop "
                         f"dimensions (at most {BROADCAST_RANK})")
    pad = BROADCAST_RANK - len(dims)
    return [1] * pad + dims, [0] * pad + strides[0], [0] * pad + strides[1]


def _operand(ctx: EmitContext, name: str) -> str:
    """A pointer to an input: into the arena, or to its const array (a constant operand, e.g. a scalar)."""
    return ctx.const(name) if ctx.tensor(name).is_const else ctx.ptr(name)


def binary_call(op: Op, ctx: EmitContext, fn: str, first: Sequence[str]) -> str:
    """`fn(first..., size, a, b, out)` for equal shapes, else `fn_broadcast(first..., dims, strides..., a, b, out)`."""
    a, b, out = ctx.tensor(op.inputs[0]), ctx.tensor(op.inputs[1]), ctx.tensor(op.outputs[0])
    pointers = [_operand(ctx, a.name), _operand(ctx, b.name), ctx.ptr(out.name)]
    if a.size == out.size and b.size == out.size:
        return _call(fn, [*first, str(out.size), *pointers])
    dims, a_strides, b_strides = broadcast_strides(out.shape, a.shape, b.shape)
    return _call(f"{fn}_broadcast", [*first, _ints(dims), _ints(a_strides), _ints(b_strides), *pointers])


def _unary_call(op: Op, ctx: EmitContext, fn: str, first: Sequence[str]) -> str:
    size = ctx.tensor(op.outputs[0]).size
    return _call(fn, [*first, str(size), _operand(ctx, op.inputs[0]), ctx.ptr(op.outputs[0])])


@emitter("ADD", "SUB")
def emit_add_sub(op: Op, ctx: EmitContext) -> str:
    q = ref.add_quant(op, ctx.graph)
    ctx.use("mcu_add_s8.h")
    params = {"input1_offset": q.input1_offset, "input2_offset": q.input2_offset,
              "output_offset": q.output_offset, "left_shift": q.left_shift,
              "input1_multiplier": q.input1_multiplier, "input1_shift": q.input1_shift,
              "input2_multiplier": q.input2_multiplier, "input2_shift": q.input2_shift,
              "output_multiplier": q.output_multiplier, "output_shift": q.output_shift,
              "act_min": q.act_min, "act_max": q.act_max, "subtract": int(op.kind == "SUB")}
    return binary_call(op, ctx, "mcu_add_s8", [_struct("mcu_add_params", params)])


@emitter("MUL")
def emit_mul(op: Op, ctx: EmitContext) -> str:
    q = ref.mul_quant(op, ctx.graph)
    ctx.use("mcu_mul_s8.h")
    params = {"input1_offset": q.input1_offset, "input2_offset": q.input2_offset,
              "output_offset": q.output_offset, "multiplier": q.multiplier, "shift": q.shift,
              "act_min": q.act_min, "act_max": q.act_max}
    return binary_call(op, ctx, "mcu_mul_s8", [_struct("mcu_mul_params", params)])


@emitter("RELU")
def emit_relu(op: Op, ctx: EmitContext) -> str:
    q = ref.relu_quant(op, ctx.graph)
    ctx.use("mcu_activation_s8.h")
    params = {"input_zero_point": q.input_zero_point, "output_zero_point": q.output_zero_point,
              "multiplier": q.multiplier, "shift": q.shift, "act_min": q.act_min, "act_max": q.act_max}
    return _unary_call(op, ctx, "mcu_relu_s8", [_struct("mcu_relu_params", params)])


@emitter("QUANTIZE")
def emit_quantize(op: Op, ctx: EmitContext) -> str:
    src, dst = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    if (src.dtype, dst.dtype) not in QUANTIZE_TYPES or dst.quant is None:
        raise ModelError(f"QUANTIZE {shown(op.name)}: {src.dtype} -> {dst.dtype} is not supported")
    ctx.use("mcu_quantize.h")
    if src.dtype == "float32":
        return _unary_call(op, ctx, "mcu_quantize_f32_s8", [c_float(dst.quant.s), _int(dst.quant.zp)])
    q = ref.requantize_quant(op, ctx.graph)
    params = {"input_zero_point": q.input_zero_point, "output_zero_point": q.output_zero_point,
              "multiplier": q.multiplier, "shift": q.shift}
    fn = f"mcu_requantize_{_TYPE_CODE[src.dtype]}_{_TYPE_CODE[dst.dtype]}".replace("_s8_s8", "_s8")
    return _unary_call(op, ctx, fn, [_struct("mcu_requantize_params", params)])


_TYPE_CODE = {"int8": "s8", "uint8": "u8", "int16": "s16", "int32": "s32"}


@emitter("DEQUANTIZE")
def emit_dequantize(op: Op, ctx: EmitContext) -> str:
    src, dst = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    if src.dtype != "int8" or src.quant is None or dst.dtype != "float32":
        raise ModelError(f"DEQUANTIZE {shown(op.name)}: {src.dtype} -> {dst.dtype} is not supported "
                         f"(int8 -> float32 only)")
    ctx.use("mcu_quantize.h")
    return _unary_call(op, ctx, "mcu_dequantize_s8_f32", [c_float(src.quant.s), _int(src.quant.zp)])
