"""BATCH_MATMUL int8 (TFLM's reference BatchMatMul): out[..., i, j] = sum_k (a[..., i, k] - a_zp) *
(b[..., k, j] - b_zp), requantized and clamped to int8.

Operands: lhs and rhs int8 of rank 2 to 5 (activations or constants), adj_x / adj_y transposing their last
two axes; the batch axes broadcast as numpy's do. The multiplier is float32(s_lhs * s_rhs) widened, divided
by s_out, as TFLite's GetQuantizedConvolutionMultipler without a bias forms it (the double product
differs by at most 2^-24 relatively, which no test here tells apart). The C kernel gets the two
operands' start offsets per output batch (constants), so broadcasting costs nothing at run time.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..frontends.tflite_ops import options_of, where
from ..ir.graph import Graph, Op
from ..ir.ops import OpSpec
from ..quant import intmath
from ..quant.intmath import multiply_by_quantized_multiplier_wrapping as requantize
from .base import Operator

SPEC = OpSpec(("lhs", "rhs"), ("adj_x", "adj_y"), weights=(0, 1), typed=True)
MAX_DEPTH = (1 << 31) // (255 * 255)


def _matrices(op: Op, graph: Graph) -> tuple[tuple[int, int, int], tuple[int, ...], tuple[int, ...]]:
    """(M, K, N) and the two operands' batch shapes."""
    a, b = graph[op.inputs[0]].shape, graph[op.inputs[1]].shape
    m, ka = (a[-1], a[-2]) if op.attrs["adj_x"] else (a[-2], a[-1])
    kb, n = (b[-1], b[-2]) if op.attrs["adj_y"] else (b[-2], b[-1])
    if ka != kb:
        raise ModelError(f"depths {ka} and {kb} differ")
    return (m, ka, n), a[:-2], b[:-2]


def check(op: Op, graph: Graph, where_: str) -> None:
    a, b, y = graph[op.inputs[0]], graph[op.inputs[1]], graph[op.outputs[0]]
    if not (2 <= len(a.shape) <= 5 and 2 <= len(b.shape) <= 5):
        raise ModelError(f"{where_}: operands {list(a.shape)} and {list(b.shape)} must have rank 2 to 5")
    try:
        (m, k, n), ba, bb = _matrices(op, graph)
        batch = np.broadcast_shapes(ba, bb)
    except (ModelError, ValueError) as e:
        raise ModelError(f"{where_}: {list(a.shape)} and {list(b.shape)} do not multiply ({e})") from None
    if y.shape != (*batch, m, n):
        raise ModelError(f"{where_}: output {list(y.shape)}; {[*batch, m, n]} expected")
    for t in (a, b, y):
        if t.dtype != "int8" or t.quant is None or t.quant.per_channel:
            raise ModelError(f"{where_}: {shown(t.name)} is {t.dtype}; int8 quantized per tensor expected")
    if k > MAX_DEPTH:
        raise ModelError(f"{where_}: sums over {k} products could overflow int32")


def read(raw, tensors: dict) -> list[Op]:
    opt = options_of(raw, "BatchMatMulOptions")
    if opt is not None and opt.AsymmetricQuantizeInputs():
        raise ModelError(f"{where(raw)}: hybrid BATCH_MATMUL is not supported; quantize fully to int8")
    attrs = {"adj_x": bool(opt.AdjX()) if opt else False, "adj_y": bool(opt.AdjY()) if opt else False}
    return [Op("BATCH_MATMUL", raw.inputs[:2], raw.outputs[:1], attrs)]


def write(low, op: Op) -> None:
    low.emit("BATCH_MATMUL", [low.tensor(n) for n in op.inputs], [low.tensor(op.outputs[0])],
             ("BatchMatMulOptions", {"AdjX": bool(op.attrs["adj_x"]), "AdjY": bool(op.attrs["adj_y"])}))


def prepare(op: Op, graph: Graph) -> tuple[int, int]:
    a, b, y = (graph[n].quant for n in (*op.inputs, op.outputs[0]))
    return intmath.quantize_multiplier(float(np.float32(a.s) * np.float32(b.s)) / float(np.float32(y.s)))


def _as_matrices(x: np.ndarray, adj: bool) -> np.ndarray:
    return np.swapaxes(x, -1, -2) if adj else x


def reference(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    a = _as_matrices(np.asarray(args[0], np.int64) - graph[op.inputs[0]].quant.zp, op.attrs["adj_x"])
    b = _as_matrices(np.asarray(args[1], np.int64) - graph[op.inputs[1]].quant.zp, op.attrs["adj_y"])
    out = requantize(np.matmul(a, b), *prepare(op, graph)) + graph[op.outputs[0]].quant.zp
    return [np.clip(out, -128, 127).astype(np.int8)]


def _batch_offsets(shape: tuple[int, ...], batch: tuple[int, ...], matrix: int) -> np.ndarray:
    """Start of each output batch's matrix in an operand of batch shape `shape` (broadcast to `batch`)."""
    index = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape) * matrix
    full = np.broadcast_to(index.reshape((1,) * (len(batch) - len(shape)) + shape), batch)
    return full.reshape(-1).astype(np.int32)


def emit(op: Op, ctx) -> str:
    from ..engine.codegen.literals import c_call, c_struct

    g = ctx.graph
    (m, k, n), ba, bb = _matrices(op, g)
    batch = tuple(np.broadcast_shapes(ba, bb))
    mult, shift = prepare(op, g)
    ctx.use("mcu_batch_matmul_s8.h")
    adj_x, adj_y = bool(op.attrs["adj_x"]), bool(op.attrs["adj_y"])
    params = {"batches": int(np.prod(batch, dtype=np.int64)), "rows": m, "depth": k, "cols": n,
              "lhs_row": 1 if adj_x else k, "lhs_step": m if adj_x else 1,  # lhs[i, kk] = a[i * row + kk * step]
              "rhs_col": k if adj_y else 1, "rhs_step": 1 if adj_y else n,
              "lhs_offset": -g[op.inputs[0]].quant.zp, "rhs_offset": -g[op.inputs[1]].quant.zp,
              "output_offset": g[op.outputs[0]].quant.zp, "multiplier": mult, "shift": shift}
    operand = [ctx.const(x) if g[x].is_const else ctx.ptr(x) for x in op.inputs]
    return c_call("mcu_batch_matmul_s8", [
        c_struct("mcu_batch_matmul_params", params), operand[0], operand[1],
        ctx.const("batch_matmul_lhs_batches", _batch_offsets(tuple(ba), batch, m * k), "int32_t"),
        ctx.const("batch_matmul_rhs_batches", _batch_offsets(tuple(bb), batch, k * n), "int32_t"),
        ctx.ptr(op.outputs[0])])


def macs(op: Op, graph: Graph) -> int:
    (m, k, n), ba, bb = _matrices(op, graph)
    return int(np.prod(np.broadcast_shapes(ba, bb), dtype=np.int64)) * m * k * n


OPERATOR = Operator("BATCH_MATMUL", read, (2, 2, ()), write, SPEC, check, reference, emit, macs, version=1)
