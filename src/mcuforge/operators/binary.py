"""What the binary elementwise operators share (ADD, SUB, MUL, MAXIMUM, MINIMUM): their two operands broadcast
numpy's way, checked in the reference, and the C call that walks them (flat for equal shapes, else a
loop over the output shape with literal per-dimension strides).

The C loop: the output shape with dimensions of size 1 dropped and mergeable neighbours merged, padded in
front to 6 dimensions, and each input's element stride per dimension, 0 where it is broadcast. The
kernels are alias-safe (element i is read before it is written), so in-place placement needs nothing from
the emitter. A constant operand (a scalar, say) is read from its const array.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ModelError, shown
from ..ir.graph import Graph, Op

BROADCAST_RANK = 6  # loop dimensions of the *_broadcast kernels


def binary_args(op: Op, graph: Graph, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """A binary elementwise op's two operands, after checking that they broadcast to the output."""
    a, b = args[0], args[1]
    assert a is not None and b is not None
    out_shape = graph[op.outputs[0]].shape
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError as e:
        raise ModelError(f"{op.kind} {shown(op.name)}: shapes {a.shape} and {b.shape} do not broadcast") from e
    if int(np.prod(shape)) != int(np.prod(out_shape)):
        raise ModelError(f"{op.kind} {shown(op.name)}: inputs broadcast to {shape}, output is {out_shape}")
    return a, b


def _contiguous_strides(shape: Sequence[int]) -> list[int]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return strides[::-1]


def broadcast_strides(out_shape: Sequence[int], a_shape: Sequence[int], b_shape: Sequence[int]
                      ) -> tuple[list[int], list[int], list[int]]:
    """(dims, a_strides, b_strides) of a broadcast loop (see the module docstring)."""
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


def operand(ctx, name: str) -> str:
    """A pointer to an input: into the arena, or to its const array (a constant operand, e.g. a scalar)."""
    return ctx.const(name) if ctx.tensor(name).is_const else ctx.ptr(name)


def binary_call(op: Op, ctx, fn: str, first: Sequence[str]) -> str:
    """`fn(first..., size, a, b, out)` for equal shapes, else `fn_broadcast(first..., dims, strides..., a, b, out)`."""
    from ..engine.codegen.literals import c_call, c_ints

    a, b, out = ctx.tensor(op.inputs[0]), ctx.tensor(op.inputs[1]), ctx.tensor(op.outputs[0])
    pointers = [operand(ctx, a.name), operand(ctx, b.name), ctx.ptr(out.name)]
    if a.size == out.size and b.size == out.size:
        return c_call(fn, [*first, str(out.size), *pointers])
    dims, a_strides, b_strides = broadcast_strides(out.shape, a.shape, b.shape)
    return c_call(f"{fn}_broadcast", [*first, c_ints(dims), c_ints(a_strides), c_ints(b_strides), *pointers])


def unary_call(op: Op, ctx, fn: str, first: Sequence[str]) -> str:
    """`fn(first..., size, in, out)` of a unary elementwise kernel."""
    from ..engine.codegen.literals import c_call

    size = ctx.tensor(op.outputs[0]).size
    return c_call(fn, [*first, str(size), operand(ctx, op.inputs[0]), ctx.ptr(op.outputs[0])])
