"""Stage-2 search (nas.evolution): evolution and random search under the stage-1 oracles' budgets; every
candidate evaluated fits, and evolution beats random search at equal evaluations on a known objective."""
from __future__ import annotations

import random

import pytest

from mcuforge.nas.cost import estimate
from mcuforge.nas.evolution import (EvolutionConfig, NoFeasibleArch, budget_check, crossover, evolve, mutate,
                                    random_search)
from mcuforge.nas.mcunet import SearchSpace
from mcuforge.nas.stage1 import Budgets
from mcuforge.targets.boards import get_board

SPACE = SearchSpace(0.3, 64, 3, 10)


def _macs(arch):
    return estimate(SPACE.network(arch)).macs


def test_every_candidate_fits_and_evolution_beats_random_search():
    budgets = Budgets(sram_bytes=40 * 1024, flash_bytes=300 * 1024)  # about 1 in 5 networks fits
    fits = budget_check(SPACE, budgets)
    seen: dict[str, list] = {"evolution": [], "random": []}

    def fitness(run):
        def score(arch):  # a known objective: the most MACs that fit (what stage 1 ranks spaces by)
            assert fits(arch)
            seen[run].append(arch)
            return _macs(arch)
        return score

    config = EvolutionConfig(population=24, generations=8, seed=1)
    evo = evolve(SPACE, fitness("evolution"), fits, config)
    rnd = random_search(SPACE, fitness("random"), fits, evaluations=evo.evaluations, seed=1)
    assert evo.evaluations == rnd.evaluations == len(seen["evolution"]) == len(seen["random"])  # each once
    assert evo.history == sorted(evo.history)  # the parents are kept: the best never gets worse
    assert evo.best_fitness > rnd.best_fitness
    spec = SPACE.network(evo.best)
    est = estimate(spec)
    assert est.peak_sram_bytes <= budgets.sram_bytes


def test_latency_budget_on_a_board_and_no_feasible_architecture():
    board = get_board("stm32f746")
    fits = budget_check(SPACE, Budgets(latency_ms=30.0), board=board)  # 28-41 ms at random
    result = evolve(SPACE, _macs, fits, EvolutionConfig(population=8, generations=2))
    assert fits(result.best)
    with pytest.raises(NoFeasibleArch, match="larger budgets"):
        evolve(SPACE, _macs, budget_check(SPACE, Budgets(sram_bytes=1024)), EvolutionConfig(population=2,
                                                                                               generations=1))


def test_mutation_and_crossover_stay_in_the_space():
    rng = random.Random(0)
    a, b = SPACE.sample(rng), SPACE.sample(rng)
    assert mutate(a, rng, 0.0) == a
    changed = mutate(a, rng, 1.0)
    assert changed.depths[-1] == 1 and changed != a
    child = crossover(a, b, rng)
    for genes, x, y in ((child.kernels, a.kernels, b.kernels), (child.depths, a.depths, b.depths)):
        assert all(g in (u, v) for g, u, v in zip(genes, x, y))
