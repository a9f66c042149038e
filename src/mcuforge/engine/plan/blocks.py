"""Blocks to place in the arena: buffers (tensors sharing a base offset) and kernel scratch.

A block spans steps `start..end` and at each step occupies `footprint[step - start]` bytes from its base
offset (the largest aligned member live then), so a buffer that shrinks (a stride-2 depthwise or a
float32->int8 QUANTIZE written in place) frees its upper bytes for later tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...ir import Graph, Op
from .inplace import Sharing, share_buffers
from .lifetimes import Lifetime, activation_lifetimes, buffer_bytes, round_up


@dataclass(frozen=True)
class Block:
    tensors: tuple[str, ...]  # the buffer's tensors; empty for scratch
    scratch_op: int | None  # op index for a scratch block, else None
    start: int
    end: int
    footprint: tuple[int, ...]  # aligned bytes occupied at each step start..end

    peak: int = field(init=False)  # largest footprint
    area: int = field(init=False)  # bytes x steps
    constant: bool = field(init=False)  # same footprint at every step

    def __post_init__(self) -> None:
        object.__setattr__(self, "peak", max(self.footprint))
        object.__setattr__(self, "area", sum(self.footprint))
        object.__setattr__(self, "constant", min(self.footprint) == self.peak)

    @property
    def label(self) -> str:
        return self.tensors[0] if self.tensors else f"<scratch of op {self.scratch_op}>"


def buffer_block(members: tuple[str, ...], lifetimes: dict[str, Lifetime], sizes: dict[str, int]) -> Block:
    start = min(lifetimes[n].start for n in members)
    end = max(lifetimes[n].end for n in members)
    if len(members) == 1:
        return Block(members, None, start, end, (sizes[members[0]],) * (end - start + 1))
    footprint = [0] * (end - start + 1)
    for n in members:
        lt, size = lifetimes[n], sizes[n]
        for step in range(lt.start - start, lt.end - start + 1):
            if footprint[step] < size:
                footprint[step] = size
    return Block(members, None, start, end, tuple(footprint))


def build_blocks(graph: Graph, sharing: Sharing, lifetimes: dict[str, Lifetime], sizes: dict[str, int],
                 align: int, scratch: Callable[[Op, bool], int]) -> list[Block]:
    """The blocks to pack: one per shared buffer, one per op with scratch (`scratch(op, inplace)` bytes:
    the chosen kernel's for the planner, the smallest kernel's when the scratch choice asks for the live set)."""
    blocks = [buffer_block(members, lifetimes, sizes) for members in sharing.buffers]
    for i, op in enumerate(graph.ops):
        nbytes = scratch(op, i in sharing.inplace_ops)
        if nbytes > 0:
            blocks.append(Block((), i, i, i, (round_up(nbytes, align),)))
    return blocks


def live_bytes(blocks: list[Block], n_steps: int) -> list[int]:
    """Bytes occupied at each step: the sum of the blocks' footprints (the schedule's lower bound)."""
    delta = [0] * (n_steps + 1)
    for b in blocks:
        if b.constant:
            delta[b.start] += b.footprint[0]
            delta[b.end + 1] -= b.footprint[0]
        else:
            for k, size in enumerate(b.footprint):
                delta[b.start + k] += size
                delta[b.start + k + 1] -= size
    live, running = [], 0
    for d in delta[:n_steps]:
        running += d
        live.append(running)
    return live


@dataclass(frozen=True)
class LiveSet:
    """The one live-bytes pass: what the planner packs, the scheduler compares and the scratch choice asks."""

    lifetimes: dict[str, Lifetime]
    sizes: dict[str, int]  # aligned bytes of each activation (lifetimes.buffer_bytes)
    sharing: Sharing
    blocks: list[Block]
    live: list[int]  # bytes live at each step (the schedule's lower bound is the largest)


def live_set(graph: Graph, align: int, inplace: bool, scratch: Callable[[Op, bool], int]) -> LiveSet:
    """Lifetimes, aligned sizes, in-place sharing (when `inplace`), the blocks with each op's scratch
    (`scratch(op, in place)` bytes) and the live bytes per step, computed one way for every user."""
    lifetimes = activation_lifetimes(graph)
    sizes = {n: buffer_bytes(graph.tensors[n].nbytes, align) for n in lifetimes}
    sharing = share_buffers(graph, lifetimes, sizes, inplace)
    blocks = build_blocks(graph, sharing, lifetimes, sizes, align, scratch)
    return LiveSet(lifetimes, sizes, sharing, blocks, live_bytes(blocks, max(len(graph.ops), 1)))
