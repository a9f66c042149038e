"""Candidate evaluation as Ray tasks: the stage-2 search's fitness (a subnet's validation accuracy after
batch-norm recalibration) for many architectures at once, on this machine's cores or on a Ray cluster.

    with RayEvaluator(net, x_val, y_val, x_train, workers=4) as evaluator:       # a local Ray with 4 CPUs
        result = evolve(space, None, fits, config, evaluate_many=evaluator.evaluate_many)
    RayEvaluator(net, x_val, y_val, x_train, address="10.0.0.5:6379")           # a running cluster

The supernet's weights (a state dict of numpy arrays) and the validation and calibration arrays go into
Ray's object store once per evaluator (ray.put); each candidate is one Ray task (one CPU, one torch
thread) that rebuilds the Supernet from the space and the weights, sets the architecture and calls
nas.train.subnet_accuracy, so a score is the serial path's exactly (same weights, same recalibration
batches, same validation batches; bit for bit when the serial path also runs one torch thread). A worker
process keeps the rebuilt supernet of the current evaluator, so it is built once per worker, not once per
candidate. The evaluator takes a snapshot of the weights: build it after training.

A cluster: start it with `ray start --head` (and `ray start --address=HEAD:6379` on the others); every node
needs the same Python with mcuforge and torch installed. Evaluations are independent, so a lost worker's
task is retried by Ray.
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any, Sequence

import numpy as np

from ..errors import UsageError, shown
from .mcunet import Arch, SearchSpace
from .supernet import Supernet

CONNECT_TIMEOUT_S = 5.0
_WORKER_NET: dict[str, tuple[Supernet, dict[str, np.ndarray]]] = {}  # in a Ray worker: the current evaluator's


def _ray():
    try:
        import ray
    except ImportError:
        raise UsageError("parallel evaluation needs Ray: pip install 'mcuforge[ray]' (or run on one process)") \
            from None
    return ray


def _check_reachable(address: str) -> None:
    """A one-line UsageError when nothing listens at host:port (ray.init would wait for minutes)."""
    if address in ("auto", "local"):
        return
    bare = address.removeprefix("ray://")
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address {shown(address)}: give host:port of the Ray head (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise UsageError(f"cannot reach the Ray cluster at {shown(address)}: {e.strerror or e}; start it with "
                         "`ray start --head` or check the address") from None


def start_ray(workers: int | None, address: str | None) -> bool:
    """Connects to the Ray cluster at `address`, or starts a local Ray with `workers` CPUs (default: all
    cores), unless Ray is running in this process already. Returns whether it started one (the caller then
    shuts it down)."""
    ray = _ray()
    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers}: give at least 1")
    if ray.is_initialized():
        return False
    if address is not None:
        _check_reachable(address)
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError ...
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f"cannot connect to the Ray cluster at {shown(address)}: {first}") from None
    else:
        ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    return True


def _score(key: str, space: SearchSpace, refs: list, archs: list[Arch], calib_batches: int,
           batch_size: int) -> list[float]:
    """The Ray task: the validation accuracy of each of `archs` (see the module docstring)."""
    import torch

    from .train import subnet_accuracy

    torch.set_num_threads(1)
    if key not in _WORKER_NET:
        import ray

        state, data = ray.get(refs)  # nested refs: fetched only by a worker that has no copy yet
        net = Supernet(space)
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
        _WORKER_NET.clear()  # one evaluator at a time per worker: drop an earlier search's supernet
        _WORKER_NET[key] = (net, {k: np.array(v) for k, v in data.items()})
    net, data = _WORKER_NET[key]
    return [subnet_accuracy(net, arch, data["x_val"], data["y_val"], data["x_calib"], calib_batches, batch_size)
            for arch in archs]


class RayEvaluator:
    """Scores architectures of `net`'s space as Ray tasks; see the module docstring. `workers`: CPUs of the
    local Ray it starts (default: all cores); `address`: a running cluster's head (host:port) instead. A Ray
    already initialised in this process is used as it is (and left running by close)."""

    def __init__(self, net: Supernet, x_val: np.ndarray, y_val: np.ndarray, x_calib: np.ndarray, *,
                 workers: int | None = None, address: str | None = None, calib_batches: int = 4,
                 batch_size: int = 64) -> None:
        ray = _ray()
        self._owned = start_ray(workers, address)
        self.space = net.space
        self.calib_batches, self.batch_size = calib_batches, batch_size
        state = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        data = {"x_val": np.ascontiguousarray(x_val, np.float32), "y_val": np.asarray(y_val),
                "x_calib": np.ascontiguousarray(x_calib[:calib_batches * batch_size], np.float32)}
        self._refs = [ray.put(state), ray.put(data)]
        self._key = uuid.uuid4().hex
        self._task = ray.remote(num_cpus=1)(_score)

    def evaluate_many(self, archs: Sequence[Arch]) -> list[float]:
        """The validation accuracy of each architecture, one Ray task each, in the order given."""
        ray = _ray()
        if not archs:
            return []
        pending = [self._task.remote(self._key, self.space, self._refs, [arch], self.calib_batches,
                                     self.batch_size) for arch in archs]
        try:
            return [scores[0] for scores in ray.get(pending)]
        except ray.exceptions.RayError as e:
            if "No module named 'mcuforge'" in str(e) or "No module named 'torch'" in str(e):
                raise UsageError("the Ray workers cannot import mcuforge or torch: install them on every node "
                                 "of the cluster") from None
            raise

    def __call__(self, arch: Arch) -> float:
        return self.evaluate_many([arch])[0]

    def close(self) -> None:
        """Frees the object-store copies, and stops the local Ray this evaluator started."""
        ray = _ray()
        self._refs = []
        if self._owned and ray.is_initialized():
            ray.shutdown()
        self._owned = False

    def __enter__(self) -> RayEvaluator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["RayEvaluator"]
