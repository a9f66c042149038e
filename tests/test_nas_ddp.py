"""Data-parallel supernet training (nas.ddp_train, torch.distributed with gloo on 2 CPU processes): a run
killed and resumed ends with the weights of one process on the same global batches, bit for bit; one worker
is train_supernet bit for bit; the torchrun entry point trains and resumes; bad settings are refused in one
line."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from mcuforge.errors import UsageError  # noqa: E402
from mcuforge.nas.ddp_train import train_supernet_ddp, train_supernet_workers  # noqa: E402
from mcuforge.nas.mcunet import SearchSpace  # noqa: E402
from mcuforge.nas.supernet import Supernet  # noqa: E402
from mcuforge.nas.train import (TrainConfig, learning_rate, make_optimizer, sandwich_step, schedule,  # noqa: E402
                                step_archs, step_batches, train_supernet)

SPACE = SearchSpace(width=0.2, resolution=32, channels=1, classes=3)
CONFIG = TrainConfig(epochs=4, batch_size=16, subnets=1, checkpoint_every=2)  # 64 samples: 16 steps


def _toy(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.5, (n, 1, 32, 32)).astype(np.float32)
    x[np.arange(n), 0, 8 * y, :] += 2.0
    return x, y


def _net(seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    return Supernet(SPACE)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _two_halves_reference(net: Supernet, x: np.ndarray, y: np.ndarray, config: TrainConfig) -> list[float]:
    """One process doing what 2 workers do: each step's batch in two halves (batch norm per half), the
    halves' gradients averaged, one SGD step. Returns the step losses (mean of the halves)."""
    _, steps = schedule(len(x), config)
    optimizer = make_optimizer(net, config)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    half = config.batch_size // 2
    losses = []
    net.train()
    for step, idx in step_batches(len(x), config):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step, steps)
        grads, loss = [], []
        for part in (idx[:half], idx[half:]):
            optimizer.zero_grad(set_to_none=True)
            loss.append(sandwich_step(net, xt[part], yt[part], step_archs(SPACE, config, step)))
            grads.append([None if p.grad is None else p.grad.clone() for p in net.parameters()])
        for p, g0, g1 in zip(net.parameters(), *grads):  # a slot no subnet of the step used has none
            p.grad = None if g0 is None else (g0 + g1) / 2
        optimizer.step()
        losses.append(float((loss[0] + loss[1]) / 2))
    return losses


def test_two_workers_killed_and_resumed_equal_one_process_on_the_same_global_batches(tmp_path):
    x, y = _toy()
    ckpt = tmp_path / "supernet.pt"
    losses: dict[int, float] = {}

    def kill(step, loss):
        losses[step] = loss
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernet_workers(_net(), x, y, CONFIG, workers=2, threads=1, checkpoint=ckpt, on_step=kill)
    net = _net(seed=1)  # other initial weights: everything must come from the checkpoint
    state = train_supernet_workers(net, x, y, CONFIG, workers=2, threads=1, checkpoint=ckpt, resume=True,
                                   on_step=lambda s, loss: losses.__setitem__(s, loss))
    assert 2 <= state.resumed_from < state.steps == state.step == 16  # rank 0 may run past the kill
    assert set(range(1, 4)) | set(range(state.resumed_from + 1, 17)) <= set(losses)

    reference = _net()
    expected = _two_halves_reference(reference, x, y, CONFIG)
    assert {s: expected[s - 1] for s in losses} == losses  # the mean of the workers' losses
    for (name, a), b in zip(reference.named_parameters(), net.parameters()):
        assert torch.equal(a, b), name  # bit for bit: the same shards, the same sums, the same SGD steps
    saved = torch.load(ckpt, weights_only=False)
    assert saved["step"] == 16
    for name, value in net.state_dict().items():
        assert torch.equal(saved["model"][name], value), name  # rank 0's checkpoint is the returned net


def test_one_worker_is_train_supernet_exactly(tmp_path):
    x, y = _toy()
    single = _net()
    train_supernet(single, x, y, CONFIG)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        ddp = _net(seed=1)
        ddp.load_state_dict(_net().state_dict())
        state = train_supernet_ddp(ddp, x, y, CONFIG)
    finally:
        dist.destroy_process_group()
    assert state.step == 16
    for (name, a), b in zip(single.state_dict().items(), ddp.state_dict().values()):
        assert torch.equal(a, b), name  # parameters and batch-norm statistics


def test_bad_settings_are_refused_in_one_line(tmp_path):
    x, y = _toy()
    for kwargs, message in (({"workers": 3}, "does not split into 3 equal parts"),
                            ({"workers": 2, "checkpoint": tmp_path / "none.pt", "resume": True}, "nothing to resume"),
                            ({"workers": 0}, "at least 1")):
        with pytest.raises(UsageError, match=message):
            train_supernet_workers(_net(), x, y, CONFIG, **kwargs)
    with pytest.raises(UsageError, match="torchrun"):
        train_supernet_ddp(_net(), x, y, CONFIG)
    with pytest.raises(UsageError, match="'progressive' runs on one process"):
        train_supernet_workers(_net(), x, y, dataclasses.replace(CONFIG, method="progressive"), workers=2)


def test_torchrun_entry_point_trains_and_resumes(tmp_path, capsys):
    from mcuforge.nas.ddp_train import main

    out = tmp_path / "run"
    args = ["--data", "digits", "--width", "0.2", "--resolution", "32", "--epochs", "1", "--batch-size", "32",
            "--max-train", "160", "--subnets", "1", "--cpu", "--out", str(out)]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
              "mcuforge.nas.ddp_train", *args]
    proc = subprocess.Popen(launch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-2000:]
    assert "4 steps on 2 workers" in stdout and (out / "supernet.pt").exists()
    assert "step 4: loss" in (out / "ddp_train.log").read_text()
    # started without torchrun, main runs a group of one: it resumes the 2-worker checkpoint (nothing left)
    assert "RANK" not in os.environ
    assert main([*args, "--resume"]) == 0
    assert "resumed after step 4" in capsys.readouterr().out
    assert main([*args, "--batch-size", "0"]) == 2
    assert "give a batch size of at least 1" in capsys.readouterr().err
