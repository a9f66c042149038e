"""Supernet training (nas.train): the sandwich rule learns, checkpoints resume exactly after a kill, and a
subnet's accuracy is scored with its own batch-norm statistics."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.errors import UsageError  # noqa: E402
from mcuforge.nas.mcunet import SearchSpace  # noqa: E402
from mcuforge.nas.supernet import Supernet  # noqa: E402
from mcuforge.nas.train import TrainConfig, subnet_accuracy, train_supernet  # noqa: E402

SPACE = SearchSpace(0.2, 32, 1, 4)


def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """32x32 noise with one bright quadrant; the label is the quadrant."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n, 1, 32, 32)).astype(np.float32)
    for i, q in enumerate(y):
        x[i, 0, (q // 2) * 16:(q // 2) * 16 + 16, (q % 2) * 16:(q % 2) * 16 + 16] += 1.0
    return x, y


def _net(seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    return Supernet(SPACE)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_resume_after_a_kill_continues_exactly(tmp_path):
    x, y = _toy(96, 0)
    config = TrainConfig(epochs=2, batch_size=16, checkpoint_every=2, subnets=1)
    whole = _net()
    train_supernet(whole, x, y, config)
    killed = _net()
    ckpt = tmp_path / "supernet.pt"

    def kill(step, loss):
        if step == 7:  # between checkpoints: step 7 is lost, the run resumes after step 6
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernet(killed, x, y, config, checkpoint=ckpt, on_step=kill)
    resumed = _net(seed=1)  # other initial weights: everything must come from the checkpoint
    state = train_supernet(resumed, x, y, config, checkpoint=ckpt, resume=True)
    assert state.resumed_from == 6 and state.step == state.steps == 12
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(UsageError, match="other settings"):
        train_supernet(_net(), x, y, TrainConfig(epochs=3, batch_size=16, checkpoint_every=2, subnets=1),
                       checkpoint=ckpt, resume=True)
    with pytest.raises(UsageError, match="nothing to resume"):
        train_supernet(_net(), x, y, config, checkpoint=tmp_path / "none.pt", resume=True)


def test_sandwich_training_teaches_the_largest_and_the_smallest_subnet():
    x, y = _toy(256, 1)
    xv, yv = _toy(128, 2)
    net = _net()
    before = [subnet_accuracy(net, a, xv, yv, x) for a in (SPACE.largest(), SPACE.smallest())]
    train_supernet(net, x, y, TrainConfig(epochs=4, batch_size=32, lr=0.05, subnets=1))
    after = [subnet_accuracy(net, a, xv, yv, x) for a in (SPACE.largest(), SPACE.smallest())]
    assert min(after) >= 0.9 > max(before), (before, after)
