"""Operator reordering: the topological order of a branchy graph that minimises its peak live bytes.

    result = reorder_for_memory(graph)   # Reordering: the reordered graph, its order, peak and proof
    plan = plan_memory(result.graph)

Branches (residual adds, concats, detector heads) leave freedom in which op runs next, and that choice
changes which tensors are live together. The search runs over executed sets: a state is the set of ops run
so far (a bitmask), whose live tensors (the frontier) follow from it alone, and a step's cost is the live
bytes while one more ready op runs. The peak of an order is its largest step cost, so the best peak that
reaches each state is a bottleneck path through the lattice of executed sets, found layer by layer
(layer k: the states with k ops run).

1. Heuristic: a beam search keeps the `beam` states per layer with the lowest peak so far, then the fewest
   live bytes. Its order, or the given one if that is better, is the incumbent.
2. Proof: if the incumbent equals the largest op-local bound (an op's own inputs, outputs and scratch must
   be live together in any order), it is optimal. Otherwise the exact search expands every state whose
   peak stays below the incumbent's; it finds the optimum, or proves the incumbent is one, unless more
   than `exact_limit` states qualify (exponential only in the graph's width: a residual network has a
   few per op, a detector with h heads about (ops per head)^h). Then the incumbent is kept, unproven.

The cost model is the planner's lower bound (blocks.live_bytes): tensors aligned to `align` bytes; aliases
(RESHAPE) share one buffer whose footprint is its largest live member; an op with an in-place kernel shares
the bytes of an input whose buffer dies there (inplace.share_buffers' rule); each op adds the kernel
scratch it gets at a peak step. The result is checked with plan_memory on the reordered graph and returned
only when it is strictly better than the given order (lower bound, then arena, and never a larger arena);
otherwise the given graph comes back unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ...ir import ALIAS_KINDS, Graph
from .inplace import inplace_candidates
from .lifetimes import activation_lifetimes, buffer_bytes, round_up
from .memory_plan import MemoryPlan
from .planner import plan_memory
from .scratch import peak_scratch

EXACT_LIMIT = 50_000  # states the exact search may expand before the incumbent is kept unproven
BEAM = 32  # states the beam search keeps per layer
RUN = 8  # the longest forced run (_forced_run) looked for


@dataclass(frozen=True)
class Reordering:
    graph: Graph  # the same ops in the new execution order (the given graph when nothing was gained)
    order: tuple[int, ...]  # graph.ops[k] is the given graph's ops[order[k]]
    plan: MemoryPlan  # plan_memory(graph): the caller plans the reordered graph no more
    original_peak: int  # plan_memory's lower bound for the given order
    optimal: bool  # proven: no topological order has a lower peak (in the cost model)
    original_arena_bytes: int
    states: int = 0  # executed sets the searches expanded

    @property
    def peak(self) -> int:
        return self.plan.lower_bound

    @property
    def arena_bytes(self) -> int:
        return self.plan.arena_bytes

    @property
    def improved(self) -> bool:
        return self.order != tuple(range(len(self.order)))


class _TooManyStates(Exception):
    pass


_State = tuple[int, int, int, int, int]  # (ops done, peak so far, live tensors, live bytes, ready ops) as masks


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


class _Schedule:
    """The graph as bitmasks: op dependencies, tensor consumers, alias classes and in-place rules.

    A state is (ops done, live tensors, live bytes); `step` runs one more op."""

    def __init__(self, graph: Graph, align: int) -> None:
        tensors, ops = graph.tensors, graph.ops
        names = list(activation_lifetimes(graph))  # the tensors in the arena
        index = {n: i for i, n in enumerate(names)}
        self.n = len(ops)
        self.size = [buffer_bytes(tensors[n].nbytes, align) for n in names]
        writer = {n: k for k in reversed(range(self.n)) for n in ops[k].outputs if n}
        self.writes = [[index[n] for n in dict.fromkeys(op.outputs) if n in index] for op in ops]
        self.touches = [list(dict.fromkeys(index[n] for n in (*op.inputs, *op.outputs) if n in index))
                        for op in ops]
        self.consumers = [0] * len(names)
        self.preds = [0] * self.n
        self.succs: list[list[int]] = [[] for _ in ops]
        for k, op in enumerate(ops):
            for n in op.inputs:
                if n in index:
                    self.consumers[index[n]] |= 1 << k
                p = writer.get(n)
                if p is not None and p != k and not self.preds[k] >> p & 1:
                    self.preds[k] |= 1 << p
                    self.succs[p].append(k)
        self.pinned = sum(1 << index[n] for n in graph.outputs if n in index)
        self.initial = sum(1 << i for i, n in enumerate(names) if n not in writer)
        # Initial tensors nobody reads live for step 0 only.
        self.orphans = [t for t in _bits(self.initial) if not self.consumers[t] and not self.pinned >> t & 1]
        # Alias classes: tensors joined by RESHAPE-like ops share one buffer whatever the order.
        self.cls = list(range(len(names)))
        for op in ops:
            if op.kind in ALIAS_KINDS and op.inputs[0] in index and op.outputs[0] in index:
                a, b = self.cls[index[op.inputs[0]]], self.cls[index[op.outputs[0]]]
                self.cls = [a if c == b else c for c in self.cls]
        self.members: dict[int, list[int]] = {}
        for t, c in enumerate(self.cls):
            self.members.setdefault(c, []).append(t)
        self.class_consumers = {c: 0 for c in self.members}
        self.class_pinned = {c: any(self.pinned >> t & 1 for t in m) for c, m in self.members.items()}
        for t, c in enumerate(self.cls):
            self.class_consumers[c] |= self.consumers[t]
        # In place: (candidate inputs in the planner's order, the output) for single-output ops.
        self.inplace: list[tuple[list[int], int] | None] = []
        self.scratch: list[tuple[int, int]] = []  # aligned bytes: (not in place, in place)
        for op in ops:
            cands = [] if op.kind in ALIAS_KINDS else \
                [index[n] for n in inplace_candidates(op, graph) if n in index]
            out = op.outputs[0] if len(op.outputs) == 1 else ""
            self.inplace.append((cands, index[out]) if cands and out in index else None)
            self.scratch.append((round_up(peak_scratch(op, graph, False), align),
                                 round_up(peak_scratch(op, graph, True), align)))
        self.alone = [len(self.members[c]) == 1 for c in self.cls]  # no aliases
        # Ops whose tensors have no aliases: moving one changes the live bytes by a fixed amount.
        self.simple = [all(self.alone[t] for t in touched) for touched in self.touches]

    def footprint(self, t: int, live: int) -> int:
        """Bytes of the buffer of tensor t's alias class: its largest live member."""
        if self.alone[t]:
            return self.size[t] if live >> t & 1 else 0
        return max((self.size[m] for m in self.members[self.cls[t]] if live >> m & 1), default=0)

    def live_bytes(self, live: int) -> int:
        return sum(self.footprint(self.members[c][0], live) for c in {self.cls[t] for t in _bits(live)})

    def step(self, done: int, live: int, nbytes: int, k: int) -> tuple[int, int, int]:
        """(bytes while op k runs after `done`, live tensors after it, their bytes)."""
        after = done | 1 << k
        at = live
        held = nbytes  # bytes of the tensors live while op k runs
        for t in self.writes[k]:
            fp = 0 if self.alone[t] else self.footprint(t, at)
            at |= 1 << t
            held += max(self.size[t] - fp, 0)
        cost = held
        rule = self.inplace[k]
        inplace = False
        if rule is not None:
            cands, out = rule
            dying = [t for t in cands if not self.class_pinned[self.cls[t]]
                     and self.class_consumers[self.cls[t]] & ~after == 0]
            if dying:
                src = max(dying, key=lambda t: self.size[t])
                cost -= min(self.footprint(src, at), self.footprint(out, at))
                inplace = True
        cost += self.scratch[k][inplace]
        dead, aliased = 0, []
        for t in (self.touches[k] + self.orphans if not done else self.touches[k]):
            if at >> t & 1 and self.consumers[t] & ~after == 0 and not self.pinned >> t & 1:
                dead |= 1 << t
                if self.alone[t]:
                    held -= self.size[t]
                else:
                    aliased.append(t)
        for t in {self.cls[t]: t for t in aliased}.values():  # one member per alias class
            held -= self.footprint(t, at) - self.footprint(t, at & ~dead)
        return cost, at & ~dead, held

    def op_bound(self, k: int) -> int:
        """Bytes op k needs in any order: its own inputs, outputs and scratch (in place if it can be)."""
        own = sum(1 << t for t in self.touches[k])
        plain = self.live_bytes(own) + self.scratch[k][False]
        rule = self.inplace[k]
        if rule is None:
            return plain
        cands, out = rule
        shared = max(min(self.footprint(t, own), self.footprint(out, own)) for t in cands)
        return min(plain, self.live_bytes(own) - shared + self.scratch[k][True])

    def peak_of(self, order: list[int] | tuple[int, ...]) -> int:
        done, live = 0, self.initial
        nbytes, peak = self.live_bytes(live), 0
        for k in order:
            cost, live, nbytes = self.step(done, live, nbytes, k)
            peak, done = max(peak, cost), done | 1 << k
        return peak


def _advance(s: _Schedule, state: _State, k: int) -> tuple[int, _State]:
    """Run op k from `state`: (the step's cost, the next state)."""
    done, peak, live, nbytes, ready = state
    cost, live, nbytes = s.step(done, live, nbytes, k)
    done |= 1 << k
    ready &= ~(1 << k)
    for w in s.succs[k]:
        if s.preds[w] & ~done == 0:
            ready |= 1 << w
    return cost, (done, max(peak, cost), live, nbytes, ready)


def _forced_run(s: _Schedule, state: _State, firsts: dict[int, _State], cap: int
                ) -> tuple[list[int], _State] | None:
    """A path of ops, the first one ready (firsts: the state after each ready op), each the only op its
    predecessor makes ready, whose steps all cost at most `cap` and after which no more bytes are live
    than now; None if there is none.

    Some best completion of `state` starts with it: moving the path to the front of a completion keeps
    the other ops' order; each step in between then holds the path's end instead of a prefix of it,
    which holds more bytes, so no step costs more (with `cap` at most the peak any completion has)."""
    for k, at in firsts.items():
        path = [k]
        while s.simple[k] and at[1] <= cap:
            if at[3] <= state[3]:
                return path, at
            made_ready = [w for w in s.succs[k] if at[4] >> w & 1]
            if len(made_ready) != 1 or len(path) == RUN:
                break
            k = made_ready[0]
            path.append(k)
            at = _advance(s, at, k)[1]
    return None


def _search(s: _Schedule, below: int, limit: int | None = None, beam: int | None = None
            ) -> tuple[int, list[int], int]:
    """The lowest peak (and an order with it) among the orders whose every step costs less than `below`;
    (below, [], states) when there is none. limit: raise _TooManyStates past that many states (exact);
    beam: keep only that many states per layer (heuristic). Where a forced run exists (see _forced_run)
    the search takes it without branching; this keeps the search exact."""
    floor = max(s.op_bound(k) for k in range(s.n))  # no order peaks lower
    start: _State = (0, 0, s.initial, s.live_bytes(s.initial), sum(1 << k for k in range(s.n) if not s.preds[k]))
    layers: list[dict[int, _State]] = [{0: start}] + [{} for _ in range(s.n)]
    parent: dict[int, tuple[int, list[int]]] = {}
    states = 0
    for size in range(s.n):
        layer = layers[size]
        states += len(layer)
        if limit is not None and states > limit:
            raise _TooManyStates
        if beam is not None and len(layer) > beam:
            layer = dict(sorted(layer.items(), key=lambda item: (item[1][1], item[1][3]))[:beam])
        for done, state in layer.items():
            firsts = {k: _advance(s, state, k)[1] for k in _bits(state[4])}
            run = _forced_run(s, state, firsts, max(state[1], floor))
            moves = [run] if run else [([k], after) for k, after in firsts.items()]
            for path, after in moves:
                nxt = layers[size + len(path)]
                if after[1] >= below or (after[0] in nxt and nxt[after[0]][1] <= after[1]):
                    continue
                nxt[after[0]] = after
                parent[after[0]] = (done, path)
    full = (1 << s.n) - 1
    if full not in layers[s.n]:
        return below, [], states
    order: list[int] = []
    done = full
    while done:
        done, path = parent[done]
        order[:0] = path
    return layers[s.n][full][1], order, states


def _best_order(s: _Schedule, exact_limit: int, beam: int) -> tuple[int, tuple[int, ...], bool, int]:
    """(peak, order, proven optimal, states expanded) in the cost model."""
    order: tuple[int, ...] = tuple(range(s.n))
    peak = s.peak_of(order)
    found, beam_order, states = _search(s, peak, beam=beam)
    if beam_order:
        peak, order = found, tuple(beam_order)
    if peak <= max(s.op_bound(k) for k in range(s.n)):
        return peak, order, True, states
    try:
        found, exact_order, expanded = _search(s, peak, limit=exact_limit)
    except _TooManyStates:
        return peak, order, False, states + exact_limit
    if exact_order:
        peak, order = found, tuple(exact_order)
    return peak, order, True, states + expanded


def reorder_for_memory(graph: Graph, *, exact_limit: int = EXACT_LIMIT, beam: int = BEAM,
                       align: int = 4) -> Reordering:
    """The execution order of `graph`'s ops with the lowest peak live bytes (see the module docstring)."""
    identity = tuple(range(len(graph.ops)))
    plan = plan_memory(graph, align=align)  # also rejects an order that is not topological
    unchanged = Reordering(graph, identity, plan, plan.lower_bound, len(identity) < 2, plan.arena_bytes)
    if len(identity) < 2:
        return unchanged
    s = _Schedule(graph, align)
    peak, order, proven, states = _best_order(s, exact_limit, beam)
    if order != identity:
        reordered = replace(graph, ops=tuple(graph.ops[k] for k in order))
        new_plan = plan_memory(reordered, align=align)
        if ((new_plan.lower_bound, new_plan.arena_bytes) < (plan.lower_bound, plan.arena_bytes)
                and new_plan.arena_bytes <= plan.arena_bytes):
            return Reordering(reordered, order, new_plan, plan.lower_bound, proven and new_plan.lower_bound == peak,
                              plan.arena_bytes, states)
    return replace(unchanged, optimal=proven and plan.lower_bound == peak, states=states)
