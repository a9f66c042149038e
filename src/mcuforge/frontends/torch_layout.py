"""How an IR tensor holds the elements of a torch tensor, and the RESHAPE/TRANSPOSE steps between two such ways.

PyTorch computes channel-first (NCHW); the IR is channels-last (NHWC). Rather than transposing at every
op, the torch frontend records for each torch value one or more *layouts*: the torch tensor (row-major),
regrouped as `view`, permuted by `perm`, then reshaped to the IR tensor's shape. A convolution asks for the
image layout of its input, a Linear accepts any layout (its weight columns are permuted to match), views
and permutes only relabel, and a TRANSPOSE is emitted only where a consumer needs an order the value does
not have yet (then one transpose, over the coarsest shape both orders can be expressed in).

Every shape here starts with the batch dimension (1 in the IR) and every perm keeps it first.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from math import prod

import numpy as np

Shape = tuple[int, ...]
Step = tuple[str, Shape]  # ("reshape", new shape) or ("transpose", perm)


@dataclass(frozen=True)
class Layout:
    view: Shape  # the torch shape, regrouped (same row-major element order)
    perm: Shape  # IR order = view transposed by perm
    ir_shape: Shape  # the IR tensor's shape: a reshape of the permuted view

    @staticmethod
    def plain(shape: Sequence[int]) -> Layout:
        """IR order and shape equal torch's."""
        shape = tuple(shape)
        return Layout(shape, tuple(range(len(shape))), shape)

    @staticmethod
    def permuted(shape: Sequence[int], perm: Sequence[int]) -> Layout:
        """IR tensor = torch tensor transposed by `perm`."""
        shape, perm = tuple(shape), tuple(perm)
        return Layout(shape, perm, tuple(shape[p] for p in perm))

    @staticmethod
    def channels_last(shape: Sequence[int]) -> Layout:
        """[N, C, *spatial] -> [N, *spatial, C] (NCHW -> NHWC, [N, C, L] -> [N, L, C])."""
        rank = len(shape)
        return Layout.permuted(shape, (0, *range(2, rank), 1)) if rank >= 3 else Layout.plain(shape)

    @staticmethod
    def image(shape: Sequence[int]) -> Layout:
        """A channel-first tensor of rank 2, 3 or 4 as a 4-D NHWC image: [N, C] -> [N, 1, 1, C],
        [N, C, L] -> [N, 1, L, C], [N, C, H, W] -> [N, H, W, C]."""
        n, c, *spatial = shape
        h, w = (1,) * (2 - len(spatial)) + tuple(spatial)
        return Layout((n, c, h, w), (0, 2, 3, 1), (n, h, w, c))

    @property
    def permuted_view(self) -> Shape:
        return tuple(self.view[p] for p in self.perm)

    @property
    def is_permutation(self) -> bool:
        """The IR tensor is the view transposed (no regrouping after the transpose)."""
        return self.ir_shape == self.permuted_view

    def ir_axis(self, torch_axis: int) -> int:
        """The IR axis holding torch axis `torch_axis` (for permutation layouts whose view is the torch shape)."""
        return self.perm.index(torch_axis % len(self.perm))

    def order(self) -> np.ndarray:
        """For each IR element (flattened), the flat index of the torch element it holds."""
        return np.arange(prod(self.view)).reshape(self.view).transpose(self.perm).reshape(-1)

    def same_order(self, other: Layout) -> bool:
        """Both hold the elements in the same order: converting is a RESHAPE (an alias) at most."""
        if _kept_order(self) and _kept_order(other):
            return True
        return bool(np.array_equal(self.order(), other.order()))

    def over(self, shape: Sequence[int]) -> Layout | None:
        """This order with `shape` as the view (its IR shape the permuted view), when `shape` splits the
        view's dimensions without merging any; else None."""
        shape = tuple(shape)
        fine = _refinement(_squeezed(self.view), _squeezed(shape))
        if fine != _squeezed(shape):
            return None
        expanded = _expand(self, fine)
        non_unit = [i for i in range(1, len(shape)) if shape[i] != 1]
        units = [i for i in range(1, len(shape)) if shape[i] == 1]
        perm = (0, *units, *(non_unit[p - 1] for p in expanded.perm[1:]))
        return Layout.permuted(shape, perm)

    def reshaped(self, shape: Sequence[int]) -> Layout:
        """The layout of a torch reshape of this value to `shape` that needs the fewest moves: a canonical
        layout (channels-last, plain) holding the same order, else the same order relabelled over `shape`,
        else the same order as a flat [N, F] (ranks <= 2) or under the current IR shape (an alias)."""
        shape = tuple(shape)
        candidates = ([Layout.channels_last(shape)] if len(shape) >= 3 else []) + [Layout.plain(shape)]
        for candidate in candidates:
            if self.same_order(candidate):
                return candidate
        relabelled = self.over(shape)
        if relabelled is not None:
            return relabelled
        return Layout(self.view, self.perm, shape if len(shape) <= 2 else self.ir_shape)

    def transposed(self, dims: Sequence[int]) -> Layout:
        """The layout the same IR tensor has for the torch tensor permuted by `dims` (self.view must be
        the torch shape): a relabelling, no data moves."""
        inverse = _inverse(dims)
        view = tuple(self.view[d] for d in dims)
        return Layout(view, tuple(inverse[p] for p in self.perm), self.ir_shape)


def _inverse(perm: Sequence[int]) -> Shape:
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)


def _kept_order(layout: Layout) -> bool:
    """The permutation moves only dimensions of size 1: IR order is torch order."""
    return _trivial_transpose(layout.view, layout.perm)


def _trivial_transpose(shape: Shape, perm: Shape) -> bool:
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def _squeezed(view: Shape) -> Shape:
    """The view without the batch and other size-1 dimensions."""
    return tuple(d for d in view[1:] if d != 1)


def _refinement(a: Shape, b: Shape) -> Shape | None:
    """The coarsest shape that regroups (row-major) into both `a` and `b`, or None if there is none."""
    bounds = sorted({prod(a[:i]) for i in range(len(a) + 1)} | {prod(b[:i]) for i in range(len(b) + 1)})
    if any(hi % lo for lo, hi in pairwise(bounds)):
        return None
    return tuple(hi // lo for lo, hi in pairwise(bounds))


def _expand(layout: Layout, fine: Shape) -> Layout:
    """`layout` over a refinement `fine` of its squeezed view, with a batch dimension in front."""
    groups: list[list[int]] = []
    k = 0
    for d in layout.view[1:]:
        group, size = [], 1
        while size < d:
            size *= fine[k]
            group.append(k + 1)
            k += 1
        groups.append(group)
    perm = (0, *(i for p in layout.perm[1:] for i in groups[p - 1]))
    return Layout((1, *fine), perm, layout.ir_shape)


def conversion_steps(src: Layout, dst: Layout) -> list[Step]:
    """RESHAPE/TRANSPOSE steps that turn an IR tensor held in `src` into one held in `dst` (same torch tensor)."""
    if src.same_order(dst):
        return _simplify(src.ir_shape, [("reshape", dst.ir_shape)])
    fine = _refinement(_squeezed(src.view), _squeezed(dst.view))
    if fine is not None:  # one transpose over the shape both views split into
        a, b = _expand(src, fine), _expand(dst, fine)
        raw = [("reshape", a.permuted_view), ("transpose", tuple(a.perm.index(p) for p in b.perm)),
               ("reshape", dst.ir_shape)]
    else:  # back to torch order, then to dst's
        raw = [("reshape", src.permuted_view), ("transpose", _inverse(src.perm)), ("reshape", dst.view),
               ("transpose", dst.perm), ("reshape", dst.ir_shape)]
    return _simplify(src.ir_shape, raw)


def _simplify(shape: Shape, steps: list[Step]) -> list[Step]:
    """Turn transposes that move only size-1 dims into reshapes, merge reshapes, drop identities."""
    merged: list[Step] = []
    current = shape
    for kind, arg in steps:
        if kind == "transpose" and _trivial_transpose(current, arg):
            kind, arg = "reshape", tuple(current[p] for p in arg)
        if kind == "reshape" and merged and merged[-1][0] == "reshape":
            merged.pop()
        merged.append((kind, arg))
        current = tuple(current[p] for p in arg) if kind == "transpose" else arg
    out: list[Step] = []
    current = shape
    for kind, arg in merged:
        after = tuple(current[p] for p in arg) if kind == "transpose" else arg
        if after != current or kind == "transpose":
            out.append((kind, arg))
        current = after
    return out
