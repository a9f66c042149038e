"""Pick the execution strategy with the lowest peak SRAM within a cap on extra MACs.

First the ops of a branchy graph are put in the order with the lowest peak (plan.reorder; a chain keeps
its order). Then, on that graph, one of the strategies:
- "layer": layer by layer.
- "patch": the best patch stage over the first layers (patch.py), the rest layer by layer.
- "fused": the inverted-residual blocks whose peak lies above the rest of the graph's run in slices of
  their expanded channels (fuse.py), each with the widest slices that reach the lowest peak the blocks
  allow (choose_fusion); no extra MACs.
- "auto" (the CLI's default): layer by layer and each promising patch stage, each with the blocks fused
  that lie above the peak the rest of the graph sets (the widest slices that get them there); the lowest
  packed peak wins, then the fewest extra MACs and fused blocks, since those run slower.
Candidates are ranked by their live-set lower bound, which is cheap; only the best are packed, until a
packed arena is no larger than the next candidate's bound.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from ...choices import STRATEGIES
from ...errors import ModelError
from ...ir import Graph, Op
from ..opinfo import total_macs
from ..plan import MemoryPlan, Reordering, plan_memory, reorder_for_memory
from ..plan.blocks import live_set
from ..plan.scratch import peak_scratch, scratch_bytes
from .fuse import FusedBlock, block_of, fusable_blocks, fuse, slice_widths
from .patch import PatchStage, chain_spans, extra_macs_ratio, split, stage_chains, stage_grid
from .patch import source_layers as patch_source_layers

MAX_EXTRA_MACS = 0.15  # default cap on the MACs a strategy may add (halo recomputation), a fraction
MAX_GRID = 8  # patches per side: more only adds halo MACs and code for a few hundred bytes
SHORTLIST = 8  # candidates whose live-set bound is computed (after ranking by a rough peak)


@dataclass(frozen=True)
class Schedule:
    strategy: str  # what was chosen: "layer", "patch", "fused" or "patch+fused"
    graph: Graph  # the graph the engine runs (rewritten for patches and fused blocks)
    plan: MemoryPlan
    model_macs: int  # the model's own MACs (the rewritten graph computes extra_macs_ratio more)
    stage: PatchStage | None = None
    extra_macs_ratio: float = 0.0
    reordering: Reordering | None = None  # set when the ops run in another order than the model's
    fused: tuple[FusedBlock, ...] = ()  # the blocks run in channel slices (no extra MACs)
    # auto: the options ranked (live-set bound, extra MACs, patch stage, fused blocks), lowest bound first;
    # they were packed in this order and the smallest arena won (a packing can land above its bound)
    considered: tuple[tuple[int, float, PatchStage | None, tuple[FusedBlock, ...]], ...] = ()

    def describe(self) -> str:
        parts = []
        if self.stage is not None:
            parts.append(f"patch-based {self.stage.describe()}, +{100 * self.extra_macs_ratio:.1f} % MACs")
        if self.fused:
            parts.append(f"fused ({len(self.fused)} block{'s' * (len(self.fused) != 1)}, +0 % MACs): "
                         + ", ".join(b.describe() for b in self.fused))
        text = "; ".join(parts + ["the rest layer by layer"]) if parts else "layer by layer"
        r = self.reordering
        if r is not None:
            text += (f"; ops reordered (peak bound {r.original_peak:,} -> {r.peak:,} B"
                     f"{', proven optimal' if r.optimal else ''})")
        return text

    def blocks(self) -> list[dict]:
        """The parts that do not run layer by layer, with their strategy and MAC overhead (for --json)."""
        parts: list[dict] = []
        if self.stage is not None:
            parts.append({"strategy": "patch", "layers": [self.stage.first, self.stage.last],
                          "grid": list(self.stage.grid), "extra_macs_ratio": round(self.extra_macs_ratio, 6)})
        parts += [{"strategy": "fused", "block": b.name, "slices": b.slices, "slice_channels": b.width,
                   "expanded_channels": b.expanded, "extra_macs_ratio": 0.0} for b in self.fused]
        return parts


def _strategy(stage: PatchStage | None, fused: tuple[FusedBlock, ...]) -> str:
    return "+".join(name for name, used in (("patch", stage is not None), ("fused", bool(fused))) if used) \
        or "layer"


def _live(graph: Graph, align: int, scratch: Callable[[Op, Graph, bool], int]) -> list[int]:
    """Live bytes per step with in-place sharing, each op with `scratch(op, graph, in place)` bytes."""
    return live_set(graph, align, True, lambda op, inplace: scratch(op, graph, inplace)).live


def live_profile(graph: Graph, align: int = 4) -> list[int]:
    """Live bytes per step, each op with the scratch it gets at a peak step (scratch.peak_scratch): what
    the peak can be lowered to around each op."""
    return _live(graph, align, peak_scratch)


def choose_fusion(graph: Graph, start: int = 0, every: bool = False, shift: int = 0
                  ) -> tuple[Graph, tuple[FusedBlock, ...]]:
    """Fuse the inverted-residual blocks from op `start` on: every block (`every`) or those whose own peak
    lies above the peak the rest of the graph sets. The target is the larger of the peak outside the
    blocks and each block's lowest peak (narrowest slices); each block fused gets the widest slices
    that keep it at or under the target. `shift`: ops that an earlier rewrite added before `start` (the
    blocks are reported at their index in the model)."""
    found = fusable_blocks(graph, start)
    if not found:
        return graph, ()
    live = live_profile(graph)
    inside = {k for i in found for k in range(i, i + 3)}
    target = max((b for k, b in enumerate(live) if k not in inside), default=0)
    widths: dict[int, list[int]] = {}

    def block_peak(i: int, width: int) -> int:
        """The peak over the block's ops (3 per slice and the requantization) when fused in these slices."""
        n = 3 * block_of(graph, i, width).slices + 1
        return max(live_profile(fuse(graph, i, width))[i:i + n])

    for i in found:
        widths[i] = slice_widths(graph[graph.ops[i].outputs[0]].shape[-1])
        layer_peak = max(live[i:i + 3])
        lowest = block_peak(i, widths[i][-1]) if widths[i] else layer_peak
        target = max(target, lowest if every else min(layer_peak, lowest))
    chosen: list[tuple[int, int]] = []
    for i in found:
        if not widths[i] or (not every and max(live[i:i + 3]) <= target):
            continue
        width = next((w for w in widths[i][:-1] if block_peak(i, w) <= target), widths[i][-1])
        chosen.append((i, width))
    blocks = []
    for i, width in reversed(chosen):  # from the last block: earlier indices stay valid
        blocks.append(block_of(graph, i, width, i - shift))
        graph = fuse(graph, i, width)
    return graph, tuple(reversed(blocks))


def live_set_bound(graph: Graph, align: int = 4) -> int:
    """The planner's lower bound (largest live set with in-place sharing and scratch), without packing."""
    return max(_live(graph, align, scratch_bytes), default=0)


def _rough_peak(graph: Graph, stage: PatchStage, layer_live: tuple[int, ...]) -> int:
    """A quick ranking of candidates: the larger of the layer-by-layer live bytes outside the stage and
    X + Y + the largest (input + output) patch of the chain inside it."""
    chain = list(graph.ops[stage.first:stage.last + 1])
    row_cuts, col_cuts = stage_grid(graph, stage)
    rows = [chain_spans(graph, chain, r, 1) for r in row_cuts]
    cols = [chain_spans(graph, chain, c, 2) for c in col_cuts]
    local = 0
    for k, op in enumerate(chain):
        cin, cout = graph[op.inputs[0]].shape[3], graph[op.outputs[0]].shape[3]
        for x_r, r in rows:
            for x_c, c in cols:
                src = (r[k - 1][0].size * c[k - 1][0].size) if k else x_r.size * x_c.size
                local = max(local, src * cin + r[k][0].size * c[k][0].size * cout)
    outside = max((b for i, b in enumerate(layer_live) if not stage.first <= i <= stage.last), default=0)
    return max(outside, graph[chain[0].inputs[0]].nbytes + graph[chain[-1].outputs[0]].nbytes + local)


def patch_candidates(graph: Graph, max_extra_macs: float, layer_live: tuple[int, ...],
                     shortlist: int = SHORTLIST) -> list[tuple[int, float, PatchStage, Graph]]:
    """(bound, extra MACs, stage, rewritten graph) of the most promising patch stages within the MAC cap,
    best first: all stages are ranked by a rough peak, the `shortlist` best get their live-set bound."""
    stages: dict[tuple, tuple[int, float, PatchStage]] = {}
    for first, last in stage_chains(graph):
        h, w = graph[graph.ops[last].outputs[0]].shape[1:3]
        for n in range(2, MAX_GRID + 1):
            grid = (min(n, h), min(n, w))
            key = (first, last, -(-h // grid[0]), -(-w // grid[1]))  # same cuts: same rewrite
            if key in stages or grid == (1, 1):
                continue
            stage = PatchStage(first, last, grid)
            extra = extra_macs_ratio(graph, stage)
            if extra <= max_extra_macs:
                stages[key] = (_rough_peak(graph, stage, layer_live), extra, stage)
    ranked = sorted(stages.values(), key=lambda c: (c[0], c[1]))[:shortlist]
    found = []
    for _, extra, stage in ranked:
        patched = split(graph, stage)
        found.append((live_set_bound(patched), extra, stage, patched))
    return sorted(found, key=lambda c: (c[0], c[1]))


def _stage_end(graph: Graph, stage: PatchStage, patched: Graph) -> int:
    """Index in `patched` of the first op after the stage."""
    return stage.first + len(patched.ops) - (len(graph.ops) - (stage.last - stage.first + 1))


Option = tuple[int, float, int, PatchStage | None, tuple[FusedBlock, ...], Graph]


def auto_options(graph: Graph, candidates: list[tuple[int, float, PatchStage, Graph]],
                 fusion: tuple[Graph, tuple[FusedBlock, ...]] | None = None) -> list[Option]:
    """The auto strategy's options, best first: (live-set bound, extra MACs, blocks fused, patch stage,
    fused blocks, graph) of the graph with its blocks fused (`fusion`: choose_fusion(graph), when known),
    and of each candidate patch stage (patch_candidates) with the blocks after it fused. schedule() packs
    them in this order and keeps the smallest arena (the packing can land above a bound); nas.auto
    replays the ranking from shapes."""
    fused, blocks = fusion or choose_fusion(graph)
    options: list[Option] = [(live_set_bound(fused), 0.0, len(blocks), None, blocks, fused)]
    for _, extra, stage, patched in candidates:
        end = _stage_end(graph, stage, patched)
        fused, blocks = choose_fusion(patched, end, shift=end - stage.last - 1)
        options.append((live_set_bound(fused), extra, len(blocks), stage, blocks, fused))
    return sorted(options, key=lambda o: o[:3])


def schedule(graph: Graph, strategy: str = "auto", max_extra_macs: float = MAX_EXTRA_MACS) -> Schedule:
    """The graph to run and its memory plan under `strategy` (see the module docstring)."""
    return schedules(graph, (strategy,), max_extra_macs)[strategy]


def schedules(graph: Graph, strategies: tuple[str, ...] = STRATEGIES, max_extra_macs: float = MAX_EXTRA_MACS,
              *, skip_missing: bool = False) -> dict[str, Schedule]:
    """The schedule of `graph` under each of `strategies`, sharing the reordering, the fusion and the patch
    candidates between them. A strategy the model cannot run ("fused" without an inverted-residual block,
    "patch" without a stage within the MAC cap) raises ModelError, or is left out with `skip_missing`."""
    for strategy in strategies:
        if strategy not in STRATEGIES:
            raise ModelError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if max_extra_macs < 0:
        raise ModelError(f"the cap on extra MACs must be >= 0, not {max_extra_macs}")
    model_macs = total_macs(graph)
    reordering = reorder_for_memory(graph)
    reordered = reordering if reordering.improved else None
    graph = reordering.graph
    out: dict[str, Schedule] = {}
    fusion = choose_fusion(graph) if "fused" in strategies or "auto" in strategies else None
    if "fused" in strategies:
        if fusable_blocks(graph):
            assert fusion is not None
            fused, blocks = fusion
            plan = plan_memory(fused) if blocks else reordering.plan
            out["fused"] = Schedule(_strategy(None, blocks), fused, plan, model_macs, reordering=reordered,
                                    fused=blocks)
        elif not skip_missing:
            raise ModelError(f"{graph.name}: no inverted-residual block to fuse (a pointwise conv, a depthwise "
                             "conv and a pointwise conv in a row, int8, nothing else reading between them); "
                             "use --strategy layer or auto")
    layer = Schedule("layer", graph, reordering.plan, model_macs, reordering=reordered)
    if "layer" in strategies:
        out["layer"] = layer
    if "patch" not in strategies and "auto" not in strategies:
        return out
    candidates = patch_candidates(graph, max_extra_macs, layer.plan.live_bytes)
    if "patch" in strategies:
        if candidates:  # the best patched graph, whatever its peak
            out["patch"] = _pack([(bound, extra, 0, stage, (), patched) for bound, extra, stage, patched
                                  in candidates], None, layer, reordered)
        elif not skip_missing:
            raise ModelError(f"{graph.name}: no patch stage within +{100 * max_extra_macs:.0f} % MACs (the first "
                             "layers must be a chain of convolutions, pools or elementwise ops on NHWC int8 "
                             "tensors); use --strategy layer or raise --max-extra-macs")
    if "auto" in strategies:
        options = auto_options(graph, candidates, fusion)
        out["auto"] = replace(_pack(options, layer, layer, reordered),
                              considered=tuple((o[0], o[1], o[3], o[4]) for o in options))
    return out


def _pack(options: list[Option], best: Schedule | None, layer: Schedule, reordered: Reordering | None
          ) -> Schedule:
    """The option with the smallest arena, packed best bound first until a bound reaches the best arena
    (starting from `best`; `layer`: the layer-by-layer schedule, whose plan its graph reuses)."""
    for bound, extra, _, stage, blocks, g in options:
        if best is not None and bound >= best.plan.arena_bytes:
            break
        plan = layer.plan if g is layer.graph else plan_memory(g, exact=False)  # the exact search is slow
        if best is None or plan.arena_bytes < best.plan.arena_bytes:
            best = Schedule(_strategy(stage, blocks), g, plan, layer.model_macs, stage, extra, reordered, blocks)
    assert best is not None
    return best


def layer_profiles(graph: Graph, max_extra_macs: float = MAX_EXTRA_MACS) -> dict[str, tuple[int, ...]]:
    """Live bytes per layer of `graph` under each strategy that changes something (for plots): "layer",
    "fused" when fusing a block lowers the peak, "patch" when a patch stage fits the cap, and what "auto"
    picks when that is a combination ("patch+fused"). A layer that a strategy splits (into patches or
    slices) shows its largest live set over the parts."""
    profiles = {"layer": plan_memory(graph).live_bytes}
    for strategy in ("fused", "patch", "auto"):
        try:
            chosen = schedule(graph, strategy, max_extra_macs)
        except ModelError:
            continue
        if chosen.strategy in profiles:
            continue
        live = [0] * len(graph.ops)
        for layer, nbytes in zip(source_layers(graph, chosen), chosen.plan.live_bytes):
            live[layer] = max(live[layer], nbytes)
        profiles[chosen.strategy] = tuple(live)
    return profiles


def source_layers(graph: Graph, chosen: Schedule) -> list[int]:
    """For each op `chosen` runs, the index of the layer of `graph` it computes part of."""
    run = chosen.graph
    if chosen.reordering is not None:
        graph = chosen.reordering.graph
        order = chosen.reordering.order
    else:
        order = tuple(range(len(graph.ops)))
    if chosen.stage is None:
        layers = list(range(len(run.ops)))
        patched = graph
    else:
        patched = split(graph, chosen.stage)
        layers = patch_source_layers(graph, chosen.stage, patched)
    by_name = {op.name: layers[k] for k, op in enumerate(patched.ops)}
    # a fused block's ops say which layer they slice (Op.rewrite); its requantization keeps the layer's name
    return [order[by_name[op.name] if op.name in by_name else by_name[op.rewrite.layer]] for op in run.ops]
