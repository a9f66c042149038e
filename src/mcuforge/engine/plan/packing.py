"""Offset assignment: pack the blocks into one arena so that no two blocks live at the same step overlap.

Greedy placement (as TFLM's GreedyMemoryPlanner): take the blocks in some order and put each at the
lowest offset (first fit) or in the tightest gap (best fit) left by the already-placed blocks it shares a
step with. Several orders are tried and the smallest arena is kept; the search stops as soon as an arena
reaches the lower bound (the largest live set), which no placement can beat. If none does, a short seeded
local search over first-fit orders follows (on random graphs it closes most of the remaining gap).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

from .blocks import Block

# (j, below, above): block i at offset X and block j at Y, live at a common step, need X + below <= Y or
# X >= Y + above, where below is i's largest footprint over the common steps and above is j's.
Neighbours = list[list[tuple[int, int, int]]]


@dataclass(frozen=True)
class Packing:
    offsets: tuple[int, ...]  # per block
    arena_bytes: int
    order_name: str  # which ordering produced it (for reports)


def _shared_peak(b: Block, lo: int, hi: int) -> int:
    if b.constant:
        return b.footprint[0]
    return max(b.footprint[lo - b.start: hi - b.start + 1])


def neighbours(blocks: Sequence[Block]) -> Neighbours:
    """For each block, the blocks it shares a step with and the footprints over the shared steps."""
    by_start = sorted(range(len(blocks)), key=lambda k: blocks[k].start)
    result: Neighbours = [[] for _ in blocks]
    active: list[int] = []  # blocks started so far that are still live
    for i in by_start:
        bi = blocks[i]
        active = [j for j in active if blocks[j].end >= bi.start]
        for j in active:
            bj = blocks[j]
            lo, hi = bi.start, min(bi.end, bj.end)
            below, above = _shared_peak(bi, lo, hi), _shared_peak(bj, lo, hi)
            result[i].append((j, below, above))
            result[j].append((i, above, below))
        active.append(i)
    return result


def _first_fit(gaps: list[tuple[int, int]]) -> int:
    """Lowest offset X >= 0 outside every open interval (lo, hi) of `gaps`."""
    gaps.sort()
    x = 0
    for lo, hi in gaps:
        if lo >= x:
            return x
        if hi > x:
            x = hi
    return x


def _best_fit(gaps: list[tuple[int, int]]) -> int:
    """Offset at the bottom of the tightest free range between the forbidden intervals; on top if none."""
    gaps.sort()
    x = 0
    best, best_slack = -1, -1
    for lo, hi in gaps:
        if lo >= x:
            slack = lo - x
            if best < 0 or slack < best_slack:
                best, best_slack = x, slack
                if slack == 0:
                    return best
        if hi > x:
            x = hi
    return best if best >= 0 else x


def greedy(order: Sequence[int], blocks: Sequence[Block], near: Neighbours, best_fit: bool,
           give_up_at: int) -> tuple[list[int], int] | None:
    """Place blocks in `order`; None as soon as the arena would reach `give_up_at`."""
    fit = _best_fit if best_fit else _first_fit
    offsets = [-1] * len(blocks)
    arena = 0
    for i in order:
        forbidden = [(offsets[j] - below, offsets[j] + above) for j, below, above in near[i] if offsets[j] >= 0]
        x = fit(forbidden)
        offsets[i] = x
        top = x + blocks[i].peak
        if top > arena:
            arena = top
            if arena >= give_up_at:
                return None
    return offsets, arena


OrderKey = Callable[[Block], tuple]
ORDERS: tuple[tuple[str, OrderKey], ...] = (
    ("size", lambda b: (-b.peak, b.start)),
    ("size*span", lambda b: (-b.area, -b.peak, b.start)),
    ("span", lambda b: (-(b.end - b.start), -b.peak, b.start)),
    ("start", lambda b: (b.start, -b.peak)),
    ("end", lambda b: (-b.end, -b.peak)),
)


def _improve(order: list[int], blocks: Sequence[Block], near: Neighbours, lower_bound: int,
             tries: int) -> tuple[list[int], int]:
    """Local search over first-fit orders: move the block on top earlier, or swap two blocks; keep changes
    that do not grow the arena. Some order gives the optimum under first fit (place the blocks of an
    optimal packing by increasing offset), so searching orders loses nothing. Seeded: plans repeat."""
    placed = greedy(order, blocks, near, False, 1 << 62)
    assert placed is not None
    offsets, arena = placed
    best = (offsets, arena)
    rng = random.Random(len(blocks) * 7919 + arena)
    n = len(blocks)
    for _ in range(tries):
        trial = order[:]
        if rng.random() < 0.5:
            top = max(range(n), key=lambda k: (offsets[k] + blocks[k].peak, rng.random()))
            pos = trial.index(top)
            if pos:
                trial.insert(rng.randrange(pos), trial.pop(pos))
        else:
            a, b = rng.randrange(n), rng.randrange(n)
            trial[a], trial[b] = trial[b], trial[a]
        placed = greedy(trial, blocks, near, False, arena + 1)
        if placed is None:
            continue
        order, (offsets, arena) = trial, placed
        if arena < best[1]:
            best = (offsets, arena)
            if arena <= lower_bound:
                break
    return best


def pack(blocks: Sequence[Block], lower_bound: int, peak_step: int, search: int = 0) -> Packing:
    """The smallest arena over the orderings and both fits; stops early at the lower bound. When it is
    still above the bound, up to `search` more orders are tried by local search."""
    near = neighbours(blocks)
    at_peak = lambda b: 0 if b.start <= peak_step <= b.end else 1  # noqa: E731
    keys = ORDERS + (("peak-first,size", lambda b: (at_peak(b), -b.peak, b.start)),)
    orders = ((name, sorted(range(len(blocks)), key=lambda k: key(blocks[k]))) for name, key in keys)
    best: Packing | None = None
    best_order: list[int] = []
    for name, order in orders:
        for best_fit in (False, True):
            limit = best.arena_bytes if best else 1 << 62
            placed = greedy(order, blocks, near, best_fit, limit)
            if placed is None:
                continue
            offsets, arena = placed
            best = Packing(tuple(offsets), arena, f"{name},{'best' if best_fit else 'first'}-fit")
            best_order = order
            if arena <= lower_bound:
                return best
    if best is None:
        return Packing((), 0, "empty")
    if search > 0 and len(blocks) > 1:
        offsets, arena = _improve(best_order, blocks, near, lower_bound, search)
        if arena < best.arena_bytes:
            best = Packing(tuple(offsets), arena, "local search")
    return best
