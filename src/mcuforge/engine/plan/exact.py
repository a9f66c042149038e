"""Exact offset assignment for a fixed schedule: a MILP solved by HiGHS (scipy.optimize.milp).

Variables, in units of g = the gcd of all footprints (every packing can be moved down to multiples of g):
the offsets x_i and the arena A; for each pair (i, j) of blocks live at a common step a binary z_ij,
0 when i lies below j:

    x_i + below_ij <= x_j + M_ij z_ij            (i below j)
    x_j + above_ij <= x_i + M'_ij (1 - z_ij)     (j below i)
    x_i + peak_i <= A,   lower_bound <= A < incumbent,   minimise A

below_ij / above_ij are i's and j's largest footprints over their common steps (packing.neighbours), so a
buffer that shrinks lets a later block sit over its freed upper bytes, exactly as in the greedy packer.
With z fixed the rest is a difference system with integer data, so x may be continuous; the solution is
rebuilt by first fit in order of increasing x: valid by construction, never above the MILP's offsets.

A is capped one unit below the heuristic's arena: a solution is strictly better, and "infeasible" proves
the heuristic optimal. `proven_bound` is the best lower bound known when the solver stops: the live-set
bound, the solver's dual bound, or the incumbent itself after such a proof. scipy is imported lazily; without
it `exact_pack` returns None.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .blocks import Block
from .errors import PlanError
from .packing import Neighbours, Packing, greedy, neighbours

EXACT = "exact"  # name of a packing found by the MILP


@dataclass(frozen=True)
class ExactPacking:
    offsets: tuple[int, ...]  # per block
    arena_bytes: int
    proven_bound: int  # no packing of these blocks has a smaller arena
    name: str  # EXACT when the MILP found it, else the incumbent's name
    seconds: float  # solver wall time

    @property
    def optimal(self) -> bool:
        return self.arena_bytes <= self.proven_bound


def _pairs(near: Neighbours) -> list[tuple[int, int, int, int]]:
    return [(i, j, below, above) for i, row in enumerate(near) for j, below, above in row if i < j]


def _stacking(blocks: Sequence[Block], pairs: list[tuple[int, int, int, int]], g: int, add,
              a_col: int) -> None:
    """At each step, the blocks live then and below block i fit under it, those above it fit over it:
    x_i >= sum f_j [j below i] and A >= x_i + f_i + sum f_j [j above i] (f: footprints at that step).
    Redundant for integer z, they tie the offsets to the orders in the LP relaxation."""
    index = {(i, j): a_col + 1 + k for k, (i, j, _, _) in enumerate(pairs)}
    seen: set[tuple[tuple[int, int], ...]] = set()
    for t in range(max(b.end for b in blocks) + 1):
        live = tuple((i, b.footprint[t - b.start] // g) for i, b in enumerate(blocks) if b.start <= t <= b.end)
        if len(live) < 2 or live in seen:
            continue
        seen.add(live)
        for i, fi in live:
            below, above = [(i, -1.0)], [(i, 1.0), (a_col, -1.0)]
            rhs_below, rhs_above = 0.0, float(-fi)
            for j, fj in live:
                if j > i:  # z_ij = 1: j below i
                    below.append((index[(i, j)], float(fj)))
                    above.append((index[(i, j)], float(-fj)))
                    rhs_above -= fj
                elif j < i:  # z_ji = 0: j below i
                    below.append((index[(j, i)], float(-fj)))
                    above.append((index[(j, i)], float(fj)))
                    rhs_below -= fj
            add(below, rhs_below)
            add(above, rhs_above)


def _model(blocks: Sequence[Block], pairs: list[tuple[int, int, int, int]], g: int, lower: int, upper: int):
    """(c, integrality, bounds, constraints) of the MILP; variables x_0..x_{n-1}, A, z_0..z_{p-1}."""
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint
    from scipy.sparse import coo_matrix

    n, p = len(blocks), len(pairs)
    a_col = n
    peak = [b.peak // g for b in blocks]
    rows, cols, vals, ub = [], [], [], []

    def add(entries: list[tuple[int, float]], rhs: float) -> None:
        r = len(ub)
        for col, v in entries:
            rows.append(r)
            cols.append(col)
            vals.append(v)
        ub.append(rhs)

    for i in range(n):  # x_i - A <= -peak_i
        add([(i, 1.0), (a_col, -1.0)], -peak[i])
    shape = [(b.start, b.end, b.footprint) for b in blocks]
    twins = {i for i, j, _, _ in pairs if shape[i] == shape[j]} | {j for i, j, _, _ in pairs if shape[i] == shape[j]}
    # all footprints flat over the common steps: a packing mirrored top-down is as good, so one pair of
    # blocks without twins may be ordered (twins are reordered afterwards without moving that pair)
    mirror = all(below == blocks[i].peak and above == blocks[j].peak for i, j, below, above in pairs)
    fixed: list[int] = []
    for k, (i, j, below, above) in enumerate(pairs):
        bl, ab = below // g, above // g
        z = n + 1 + k
        m1 = upper - peak[i] + bl  # x_i - x_j - M1 z <= -below
        m2 = upper - peak[j] + ab  # x_j - x_i + M2 z <= M2 - above
        add([(i, 1.0), (j, -1.0), (z, -float(m1))], -bl)
        add([(j, 1.0), (i, -1.0), (z, float(m2))], m2 - ab)
        if shape[i] == shape[j]:
            fixed.append(z)  # interchangeable blocks: the lower-numbered one goes below
        elif mirror and i not in twins and j not in twins:
            fixed.append(z)
            mirror = False
    _stacking(blocks, pairs, g, add, a_col)
    lo = np.zeros(n + 1 + p)
    hi = np.concatenate([np.array([upper - q for q in peak], float), [upper], np.ones(p)])
    lo[a_col] = lower
    hi[fixed] = 0.0
    integrality = np.concatenate([np.zeros(n), [1], np.ones(p)])
    c = np.zeros(n + 1 + p)
    c[a_col] = 1.0
    matrix = coo_matrix((vals, (rows, cols)), shape=(len(ub), n + 1 + p)).tocsr()
    return c, integrality, Bounds(lo, hi), LinearConstraint(matrix, -np.inf, np.array(ub, float))


def exact_pack(blocks: Sequence[Block], lower_bound: int, time_limit: float = 2.0,
               incumbent: Packing | None = None) -> ExactPacking | None:
    """The smallest arena for `blocks`, or the best found within `time_limit` seconds, never worse than
    `incumbent` (default: first fit by size). None when scipy is missing."""
    if time_limit <= 0:
        raise PlanError(f"time limit must be positive, not {time_limit}")
    near = neighbours(blocks)
    if incumbent is None:
        order = sorted(range(len(blocks)), key=lambda k: (-blocks[k].peak, blocks[k].start))
        offsets, arena = greedy(order, blocks, near, False, 1 << 62) or ([], 0)
        incumbent = Packing(tuple(offsets), arena, "size,first-fit")
    if len(incumbent.offsets) != len(blocks):
        raise PlanError(f"incumbent packing has {len(incumbent.offsets)} offsets for {len(blocks)} blocks")
    if incumbent.arena_bytes <= lower_bound or not blocks:
        return ExactPacking(incumbent.offsets, incumbent.arena_bytes, lower_bound, incumbent.order_name, 0.0)
    try:
        from scipy.optimize import milp
    except ImportError:
        return None
    g = 0
    for b in blocks:
        for f in b.footprint:
            g = math.gcd(g, f)
    lower, upper = -(-lower_bound // g), -(-incumbent.arena_bytes // g) - 1  # A < the incumbent
    pairs = _pairs(near)
    t0 = time.perf_counter()
    c, integrality, bounds, constraints = _model(blocks, pairs, g, lower, upper)
    res = milp(c, integrality=integrality, bounds=bounds, constraints=constraints,
               options={"time_limit": float(time_limit), "mip_rel_gap": 0.0, "disp": False})
    seconds = time.perf_counter() - t0
    best = ExactPacking(incumbent.offsets, incumbent.arena_bytes, lower_bound, incumbent.order_name, seconds)
    if res.status == 2:  # infeasible below the incumbent: the incumbent is optimal
        return ExactPacking(best.offsets, best.arena_bytes, best.arena_bytes, best.name, seconds)
    bound = lower_bound
    dual = getattr(res, "mip_dual_bound", None)
    if dual is not None and math.isfinite(dual):
        bound = max(bound, math.ceil(dual - 1e-6) * g)
    if res.x is not None:
        order = sorted(range(len(blocks)), key=lambda k: res.x[k])
        placed = greedy(order, blocks, near, False, incumbent.arena_bytes)
        if placed is not None:
            best = ExactPacking(tuple(placed[0]), placed[1], bound, EXACT, seconds)
            if res.status == 0:  # optimal below the incumbent; first fit never places higher
                bound = max(bound, round(res.fun) * g)
    return ExactPacking(best.offsets, best.arena_bytes, min(bound, best.arena_bytes), best.name, seconds)
