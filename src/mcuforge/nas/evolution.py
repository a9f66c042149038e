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
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from ..targets.boards import Board
from .mcunet import DEPTHS, EXPANDS, KERNELS, LAST_DEPTH, STAGES, Arch, SearchSpace
from .oracles import code_model, flash_bytes, latency_model, peak_sram
from .stage1 import Budgets

Fitness = Callable[[Arch], float]
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


def budget_check(space: SearchSpace, budgets: Budgets, *, strategy: str = "layer", board: Board | None = None,
                 code_core: str | None = "cortex-m7") -> Constraint:
    """arch -> whether its network fits `budgets` under the stage-1 oracles: peak SRAM of the `strategy`
    memory model, flash (const data, plus code on `code_core` at -Os when given), latency on `board`."""
    code = code_model(code_core) if code_core else None
    latency = latency_model(board) if board is not None and budgets.latency_ms is not None else None

    def fits(arch: Arch) -> bool:
        from .cost import layers

        spec = space.network(arch)
        if budgets.sram_bytes is not None and peak_sram(spec, strategy) > budgets.sram_bytes:
            return False
        if budgets.flash_bytes is not None and flash_bytes(spec, code=code) > budgets.flash_bytes:
            return False
        return latency is None or latency(layers(spec)) <= budgets.latency_ms

    return fits


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
    """fitness with a cache: each distinct architecture is evaluated once."""

    def __init__(self, fitness: Fitness) -> None:
        self.fitness, self.cache = fitness, {}

    def __call__(self, arch: Arch) -> float:
        if arch not in self.cache:
            self.cache[arch] = float(self.fitness(arch))
        return self.cache[arch]


def evolve(space: SearchSpace, fitness: Fitness, fits: Constraint, config: EvolutionConfig = EvolutionConfig(),
           on_generation: Callable[[int, float], None] | None = None) -> SearchResult:
    """The best architecture evolution finds (see the module docstring)."""
    rng = random.Random(config.seed)
    score = _Scored(fitness)
    population = [_feasible(lambda: space.sample(rng), fits) for _ in range(config.population)]
    n_parents = max(1, round(config.population * config.parent_ratio))
    n_mutants = round((config.population - n_parents) * config.mutation_ratio)
    history: list[float] = []
    for generation in range(config.generations):
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
    best = max(population, key=score)
    history.append(score(best))
    return SearchResult(best, score(best), history, len(score.cache))


def random_search(space: SearchSpace, fitness: Fitness, fits: Constraint, evaluations: int,
                  seed: int = 0) -> SearchResult:
    """The best of `evaluations` distinct feasible random architectures (the baseline of MCUNet's Fig. 13)."""
    rng = random.Random(seed)
    score = _Scored(fitness)
    best: Arch | None = None
    history: list[float] = []
    for _ in range(evaluations * 100):
        if len(score.cache) >= evaluations:
            break
        arch = _feasible(lambda: space.sample(rng), fits)
        if best is None or score(arch) > score(best):
            best = arch
        history.append(score(best))
    assert best is not None
    return SearchResult(best, score(best), history, len(score.cache))


__all__ = ["EvolutionConfig", "NoFeasibleArch", "SearchResult", "budget_check", "crossover", "evolve", "mutate",
           "random_search"]
