"""Pick the execution strategy with the lowest peak SRAM within a cap on extra MACs.

First the ops of a branchy graph are put in the order with the lowest peak (plan.reorder; a chain keeps
its order). Then, on that graph:
Strategies: "layer" (the graph as it is, layer by layer), "patch" (the best patch stage over the first
layers, see patch.py) and "auto" (whichever of them has the lower peak; layer by layer on a tie, since
it computes no extra MACs and runs fastest). Candidates are ranked by their live-set lower bound, which
is cheap; only the best are packed, until a packed arena is no larger than the next candidate's bound.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import ModelError
from ...ir import Graph
from ..opinfo import total_macs
from ..plan import MemoryPlan, Reordering, plan_memory, reorder_for_memory
from ..plan.blocks import build_blocks, live_bytes
from ..plan.inplace import share_buffers
from ..plan.lifetimes import activation_lifetimes, round_up
from .patch import PatchStage, chain_spans, extra_macs_ratio, source_layers, split, stage_chains, stage_grid

STRATEGIES = ("layer", "patch", "auto")
MAX_EXTRA_MACS = 0.15  # default cap on the MACs a strategy may add (halo recomputation), a fraction
MAX_GRID = 8  # patches per side: more only adds halo MACs and code for a few hundred bytes
SHORTLIST = 8  # candidates whose live-set bound is computed (after ranking by a rough peak)


@dataclass(frozen=True)
class Schedule:
    strategy: str  # "layer" or "patch": what was chosen
    graph: Graph  # the graph the engine runs (rewritten for patches)
    plan: MemoryPlan
    model_macs: int  # the model's own MACs (the rewritten graph computes extra_macs_ratio more)
    stage: PatchStage | None = None
    extra_macs_ratio: float = 0.0
    reordering: Reordering | None = None  # set when the ops run in another order than the model's

    def describe(self) -> str:
        text = "layer by layer" if self.stage is None else \
            f"patch-based {self.stage.describe()}, +{100 * self.extra_macs_ratio:.1f} % MACs"
        r = self.reordering
        if r is not None:
            text += (f"; ops reordered (peak bound {r.original_peak:,} -> {r.peak:,} B"
                     f"{', proven optimal' if r.optimal else ''})")
        return text


def live_set_bound(graph: Graph, align: int = 4) -> int:
    """The planner's lower bound (largest live set with in-place sharing and scratch), without packing."""
    lifetimes = activation_lifetimes(graph)
    sizes = {n: max(round_up(graph[n].nbytes, align), align) for n in lifetimes}
    blocks = build_blocks(graph, share_buffers(graph, lifetimes, sizes, True), lifetimes, sizes, align)
    return max(live_bytes(blocks, max(len(graph.ops), 1)), default=0)


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


def schedule(graph: Graph, strategy: str = "auto", max_extra_macs: float = MAX_EXTRA_MACS) -> Schedule:
    """The graph to run and its memory plan under `strategy` (see the module docstring)."""
    if strategy not in STRATEGIES:
        raise ModelError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if max_extra_macs < 0:
        raise ModelError(f"the cap on extra MACs must be >= 0, not {max_extra_macs}")
    model_macs = total_macs(graph)
    reordering = reorder_for_memory(graph)
    reordered = reordering if reordering.improved else None
    graph = reordering.graph
    layer = Schedule("layer", graph, plan_memory(graph), model_macs, reordering=reordered)
    if strategy == "layer":
        return layer
    candidates = patch_candidates(graph, max_extra_macs, layer.plan.live_bytes)
    if strategy == "patch" and not candidates:
        raise ModelError(f"{graph.name}: no patch stage within +{100 * max_extra_macs:.0f} % MACs (the first "
                         "layers must be a chain of convolutions, pools or elementwise ops on NHWC int8 "
                         "tensors); use --strategy layer or raise --max-extra-macs")
    best = layer if strategy == "auto" else None  # "patch" returns the best patched graph, whatever its peak
    for bound, extra, stage, patched in candidates:
        if best is not None and bound >= best.plan.arena_bytes:
            break
        plan = plan_memory(patched, exact=False)  # candidates: the heuristic (exact search is slow)
        if best is None or plan.arena_bytes < best.plan.arena_bytes:
            best = Schedule("patch", patched, plan, model_macs, stage, extra, reordered)
    assert best is not None
    return best


def layer_profiles(graph: Graph, max_extra_macs: float = MAX_EXTRA_MACS) -> dict[str, tuple[int, ...]]:
    """Live bytes per layer of `graph` under each strategy that applies (for plots): "layer", and "patch"
    when a patch stage fits the cap, where a stage's layer shows its largest live set over the patches."""
    profiles = {"layer": plan_memory(graph).live_bytes}
    try:
        patched = schedule(graph, "patch", max_extra_macs)
    except ModelError:
        return profiles
    live = [0] * len(graph.ops)
    assert patched.stage is not None
    for layer, nbytes in zip(source_layers(graph, patched.stage, patched.graph), patched.plan.live_bytes):
        live[layer] = max(live[layer], nbytes)
    profiles["patch"] = tuple(live)
    return profiles
