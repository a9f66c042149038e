"""Candidate evaluation in batches (nas.evolution's evaluate_many) and as Ray tasks (nas.parallel): the same
seed gives the same search as the serial path, and a Ray task's score is the serial subnet_accuracy exactly;
a missing Ray or an unreachable cluster is refused in one line."""
from __future__ import annotations

import random
import sys
import time

import numpy as np
import pytest

from mcuforge.errors import UsageError
from mcuforge.nas.cost import estimate
from mcuforge.nas.evolution import EvolutionConfig, budget_check, evolve, random_search
from mcuforge.nas.mcunet import SearchSpace
from mcuforge.nas.stage1 import Budgets

SPACE = SearchSpace(0.3, 64, 3, 10)
TINY = SearchSpace(width=0.2, resolution=32, channels=1, classes=3)


def test_batches_give_the_serial_search_exactly():
    fits = budget_check(SPACE, Budgets(sram_bytes=40 * 1024, flash_bytes=300 * 1024))
    calls: list[list] = []

    def macs(arch):
        return estimate(SPACE.network(arch)).macs

    def many(archs):
        calls.append(list(archs))
        return [macs(a) for a in archs]

    config = EvolutionConfig(population=16, generations=4, seed=3)
    serial = evolve(SPACE, macs, fits, config)
    batched = evolve(SPACE, None, fits, config, evaluate_many=many)
    assert batched == serial
    assert len(calls) == config.generations + 1  # one call per generation, and one for the last children
    flat = [a for batch in calls for a in batch]
    assert len(flat) == len(set(flat)) == serial.evaluations  # each architecture scored once

    calls.clear()
    serial = random_search(SPACE, macs, fits, evaluations=20, seed=5)
    assert random_search(SPACE, None, fits, evaluations=20, seed=5, evaluate_many=many) == serial
    assert len(calls) == 1 and len(calls[0]) == 20 == serial.evaluations
    assert random_search(SPACE, macs, fits, 20, 5, evaluate_many=many) == serial  # many wins over fitness


def test_missing_ray_is_a_one_line_usage_error(monkeypatch):
    pytest.importorskip("torch")
    from mcuforge.nas.parallel import RayEvaluator
    from mcuforge.nas.supernet import Supernet

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(UsageError, match=r"needs Ray: pip install 'mcuforge\[ray\]'"):
        RayEvaluator(Supernet(TINY), np.zeros((4, 1, 32, 32)), np.zeros(4, int), np.zeros((4, 1, 32, 32)))


def test_unreachable_cluster_is_a_one_line_usage_error():
    pytest.importorskip("torch")
    ray = pytest.importorskip("ray")
    import socket

    from mcuforge.nas.parallel import RayEvaluator
    from mcuforge.nas.supernet import Supernet

    if ray.is_initialized():
        ray.shutdown()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    x = np.zeros((4, 1, 32, 32), np.float32)
    t = time.perf_counter()
    for address, message in ((f"127.0.0.1:{port}", "cannot reach the Ray cluster at '127.0.0.1:"),
                             ("no-port", "give host:port")):
        with pytest.raises(UsageError, match=message) as e:
            RayEvaluator(Supernet(TINY), x, np.zeros(4, int), x, address=address)
        assert "\n" not in str(e.value)
    assert time.perf_counter() - t < 30 and not ray.is_initialized()


def test_ray_tasks_score_exactly_as_the_serial_path():
    torch = pytest.importorskip("torch")
    pytest.importorskip("ray")
    from mcuforge.nas.parallel import RayEvaluator
    from mcuforge.nas.supernet import Supernet
    from mcuforge.nas.train import TrainConfig, subnet_accuracy, train_supernet

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the serial reference on one thread, as each Ray task runs
    try:
        rng = np.random.default_rng(0)
        y = rng.integers(0, 3, 96)
        x = rng.normal(0, 0.5, (96, 1, 32, 32)).astype(np.float32)
        x[np.arange(96), 0, 8 * y, :] += 2.0  # a learnable cue: a bright row per class
        torch.manual_seed(0)
        net = Supernet(TINY)
        train_supernet(net, x[:64], y[:64], TrainConfig(epochs=2, batch_size=16, subnets=1))
        net.sort_channels()
        x_val, y_val, x_cal = x[64:], y[64:], x[:64]
        fitness = lambda arch: subnet_accuracy(net, arch, x_val, y_val, x_cal, 2, 16)  # noqa: E731
        archs = [TINY.sample(random.Random(i)) for i in range(6)] + [TINY.largest(), TINY.smallest()]
        serial = [fitness(a) for a in archs]
        assert len(set(serial)) > 1  # the candidates differ: equality below is not trivial
        config = EvolutionConfig(population=6, generations=2, seed=0)
        fits = lambda arch: True  # noqa: E731
        serial_evo = evolve(TINY, fitness, fits, config)
        with RayEvaluator(net, x_val, y_val, x_cal, workers=2, calib_batches=2, batch_size=16) as evaluator:
            assert evaluator.evaluate_many(archs) == serial
            assert evaluator(archs[0]) == serial[0]
            assert evolve(TINY, None, fits, config, evaluate_many=evaluator.evaluate_many) == serial_evo
    finally:
        torch.set_num_threads(threads)
