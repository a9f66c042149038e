"""TinyNAS stage 2's search: evolution over the architectures of one space under the board's budgets, and
random search with the same number of evaluations as its baseline.

    fits = budget_check(space, Budgets(sram_bytes=..., flash_bytes=..., latency_ms=...), board=board)
    result = evolve(space, fitness, fits, EvolutionConfig(generations=20))
    base = random_search(space, fitness, fits, evaluations=result.evaluations, seed=0)

As once-for-all runs it: a population of feasible architectures (default 100); every generation keeps the
best quarter as parents and fills the rest, half by mutation (each gene of a random parent resampled with
probability 0.1) and half by crossover (each gene from one of two random parents), drawing again until the
child fits the budgets. `fitness(arch)` is what is maximised (a subnet's validation accuracy, or a
predictor's guess); each distinct architecture is evaluated once (cached). Every candidate is checked
against the budgets with the stage-1 oracles (peak SRAM of the chosen memory model, flash with the code,
latency on the board) before it is evaluated.

Batch evaluation: with `evaluate_many(archs) -> scores` (e.g. nas.parallel.RayEvaluator.evaluate_many, Ray
tasks), each generation's new candidates (and random search's draws) are scored in one call instead of one
`fitness` call each. The random draws never depend on the scores of the same generation, so the result, the
history and the evaluation count are the same as the serial path's for the same seed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from ..targets.boards import Board
from .mcunet import DEPTHS, EXPANDS, KERNELS, LAST_DEPTH, STAGES, Arch, SearchSpace
from .oracles import code_model, flash_bytes, latency_model, peak_sram
from .space import NetworkSpec
from .stage1 import Budgets

Fitness = Callable[[Arch], float]
EvaluateMany = Callable[[list[Arch]], list[float]]
Constraint = Callable[[Arch], bool]
MAX_DRAWS = 10_000  # draws for one feasible child before the search gives up on the budgets


@dataclass(frozen=True)
class EvolutionConfig:
    population: int = 100
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5  # of the children; the rest come from crossover
    mutate_prob: float = 0.1  # per gene
    generations: int = 500
    seed: int = 0


@dataclass
class SearchResult:
    best: Arch
    best_fitness: float
    history: list[float] = field(default_factory=list)  # the best fitness after each generation (or draw)
    evaluations: int = 0  # distinct architectures evaluated


class NoFeasibleArch(RuntimeError):
    """No architecture of the space fits the budgets (or none was found in MAX_DRAWS draws)."""


def spec_check(budgets: Budgets, *, strategy: str = "layer", board: Board | None = None,
               code_core: str | None = "cortex-m7") -> Callable[[NetworkSpec], bool]:
    """spec -> whether it fits `budgets` under the stage-1 oracles: peak SRAM of the `strategy` memory model,
    flash (const data, plus code on `code_core` at -Os when given), latency on `board`."""
    code = code_model(code_core) if code_core else None
    latency = latency_model(board) if board is not None and budgets.latency_ms is not None else None

    def fits(spec: NetworkSpec) -> bool:
        from .cost import layers

        if budgets.sram_bytes is not None and peak_sram(spec, strategy) > budgets.sram_bytes:
            return False
        if budgets.flash_bytes is not None and flash_bytes(spec, code=code) > budgets.flash_bytes:
            return False
        return latency is None or latency(layers(spec)) <= budgets.latency_ms

    return fits


def budget_check(space: SearchSpace, budgets: Budgets, *, strategy: str = "layer", board: Board | None = None,
                 code_core: str | None = "cortex-m7") -> Constraint:
    """arch -> whether its network in `space` fits `budgets` (spec_check)."""
    fits = spec_check(budgets, strategy=strategy, board=board, code_core=code_core)
    return lambda arch: fits(space.network(arch))


def _feasible(draw: Callable[[], Arch], fits: Constraint) -> Arch:
    for _ in range(MAX_DRAWS):
        arch = draw()
        if fits(arch):
            return arch
    raise NoFeasibleArch(f"no architecture fits the budgets in {MAX_DRAWS} draws: give larger budgets or choose "
                         "a smaller space (stage 1)")


def mutate(arch: Arch, rng: random.Random, prob: float) -> Arch:
    depths = [rng.choice(DEPTHS) if i < len(STAGES) - 1 and rng.random() < prob else d
              for i, d in enumerate(arch.depths)]
    depths[-1] = LAST_DEPTH
    kernels = [rng.choice(KERNELS) if rng.random() < prob else k for k in arch.kernels]
    expands = [rng.choice(EXPANDS) if rng.random() < prob else e for e in arch.expands]
    return Arch(depths, kernels, expands)


def crossover(a: Arch, b: Arch, rng: random.Random) -> Arch:
    pick = lambda x, y: [rng.choice((u, v)) for u, v in zip(x, y)]  # noqa: E731
    return Arch(pick(a.depths, b.depths), pick(a.kernels, b.kernels), pick(a.expands, b.expands))


class _Scored:
    """fitness with a cache: each distinct architecture is evaluated once; `prefetch` scores a batch with
    evaluate_many in one call."""

    def __init__(self, fitness: Fitness | None, evaluate_many: EvaluateMany | None = None) -> None:
        if fitness is None and evaluate_many is None:
            raise TypeError("give a fitness function or evaluate_many")
        self.fitness, self.many, self.cache = fitness, evaluate_many, {}

    def __call__(self, arch: Arch) -> float:
        if arch not in self.cache:
            if self.fitness is None:
                self.prefetch([arch])
            else:
                self.cache[arch] = float(self.fitness(arch))
        return self.cache[arch]

    def prefetch(self, archs: list[Arch]) -> None:
        """With evaluate_many: the distinct architectures of `archs` not scored yet, in one call, cached in
        the order the serial path would have scored them."""
        if self.many is None:
            return
        new = list(dict.fromkeys(a for a in archs if a not in self.cache))
        if not new:
            return
        scores = list(self.many(new))
        if len(scores) != len(new):
            raise ValueError(f"evaluate_many returned {len(scores)} scores for {len(new)} architectures")
        for arch, value in zip(new, scores):
            self.cache[arch] = float(value)


def evolve(space: SearchSpace, fitness: Fitness | None, fits: Constraint,
           config: EvolutionConfig = EvolutionConfig(), on_generation: Callable[[int, float], None] | None = None,
           *, evaluate_many: EvaluateMany | None = None) -> SearchResult:
    """The best architecture evolution finds (see the module docstring). With `evaluate_many`, each
    generation's new candidates are scored in one call (fitness may then be None); same result."""
    rng = random.Random(config.seed)
    score = _Scored(fitness, evaluate_many)
    population = [_feasible(lambda: space.sample(rng), fits) for _ in range(config.population)]
    n_parents = max(1, round(config.population * config.parent_ratio))
    n_mutants = round((config.population - n_parents) * config.mutation_ratio)
    history: list[float] = []
    for generation in range(config.generations):
        score.prefetch(population)
        ranked = sorted(population, key=score, reverse=True)
        parents = ranked[:n_parents]
        history.append(score(parents[0]))
        if on_generation is not None:
            on_generation(generation, history[-1])
        mutants = [_feasible(lambda: mutate(rng.choice(parents), rng, config.mutate_prob), fits)
                   for _ in range(n_mutants)]
        children = [_feasible(lambda: crossover(rng.choice(parents), rng.choice(parents), rng), fits)
                    for _ in range(config.population - n_parents - n_mutants)]
        population = parents + mutants + children
    score.prefetch(population)
    best = max(population, key=score)
    history.append(score(best))
    return SearchResult(best, score(best), history, len(score.cache))


def random_search(space: SearchSpace, fitness: Fitness | None, fits: Constraint, evaluations: int,
                  seed: int = 0, *, evaluate_many: EvaluateMany | None = None) -> SearchResult:
    """The best of `evaluations` distinct feasible random architectures (the baseline of MCUNet's Fig. 13).
    With `evaluate_many`, all draws are scored in one call (fitness may then be None); same result."""
    rng = random.Random(seed)
    score = _Scored(fitness, evaluate_many)
    drawn: list[Arch] = []
    distinct: set[Arch] = set()
    for _ in range(evaluations * 100):  # the draws depend on the seed only, never on the scores
        if len(distinct) >= evaluations:
            break
        drawn.append(_feasible(lambda: space.sample(rng), fits))
        distinct.add(drawn[-1])
    score.prefetch(drawn)
    best: Arch | None = None
    history: list[float] = []
    for arch in drawn:
        if best is None or score(arch) > score(best):
            best = arch
        history.append(score(best))
    assert best is not None
    return SearchResult(best, score(best), history, len(score.cache))


__all__ = ["EvaluateMany", "EvolutionConfig", "NoFeasibleArch", "SearchResult", "budget_check", "crossover", "evolve",
           "mutate", "random_search", "spec_check"]
