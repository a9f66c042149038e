"""Supernet training (nas.train): the sandwich rule learns, checkpoints resume exactly after a kill, and a
subnet's accuracy is scored with its own batch-norm statistics."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.errors import UsageError  # noqa: E402
from mcuforge.nas.mcunet import SearchSpace  # noqa: E402
from mcuforge.nas.supernet import Supernet  # noqa: E402
from mcuforge.nas.progressive import PHASES, phase_archs, phase_of, phase_starts  # noqa: E402
from mcuforge.nas.train import TrainConfig, make_optimizer, subnet_accuracy, train_supernet  # noqa: E402

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


@pytest.mark.parametrize("method", ["sandwich", "progressive"])
def test_resume_after_a_kill_continues_exactly(tmp_path, method):
    x, y = _toy(96, 0)
    # progressive: phases start at steps 0, 3, 6, 9; the kill after step 6 resumes with the saved teacher,
    # and the channels are sorted (momentum with them) after the resume
    config = TrainConfig(epochs=2, batch_size=16, checkpoint_every=2, subnets=1, method=method)
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
        train_supernet(_net(), x, y, TrainConfig(epochs=3, batch_size=16, checkpoint_every=2, subnets=1,
                                                 method=method), checkpoint=ckpt, resume=True)
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


def test_progressive_phases_train_their_part_of_the_space():
    steps = 40
    starts = phase_starts(steps, (0.25, 0.25, 0.25, 0.25))
    assert starts == [0, 10, 20, 30]
    seen = {}
    for step in range(steps):
        archs = phase_archs(SPACE, step, steps, starts, 4, seed=0)
        seen.setdefault(PHASES[phase_of(step, starts)], []).extend(archs)
    assert seen["full"] == [SPACE.largest()] * 10
    big = SPACE.largest()
    assert all(a.depths == big.depths and a.expands == big.expands for a in seen["kernel"])
    assert len({a.kernels for a in seen["kernel"]}) == 40
    assert all(a.expands == big.expands for a in seen["depth"])
    assert {d for a in seen["depth"][:20] for d in a.depths[:-1]} == {3, 4}  # first half: the deepest two
    assert {d for a in seen["depth"][20:] for d in a.depths[:-1]} == {2, 3, 4}
    assert {e for a in seen["expand"][:20] for e in a.expands} == {4, 5, 6}
    assert {e for a in seen["expand"][20:] for e in a.expands} == {3, 4, 5, 6}
    with pytest.raises(UsageError, match="choose one of sandwich, progressive"):
        TrainConfig(method="ofa")
    with pytest.raises(UsageError, match="non-negative fractions"):
        TrainConfig(phases=(1, 1, 1))


def test_sorting_channels_keeps_the_function_and_permutes_the_momentum():
    x, y = _toy(64, 3)
    net = _net()
    optimizer = make_optimizer(net, TrainConfig())
    net.set_active(SPACE.largest())
    loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    optimizer.step()
    block = net.stages[1][0]
    weight, momentum = block.expand_conv.weight, optimizer.state[block.expand_conv.weight]["momentum_buffer"]
    before_w, before_m = weight.detach().clone(), momentum.clone()
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(x))
    net.sort_channels(optimizer)
    with torch.no_grad():
        assert torch.allclose(net(torch.from_numpy(x)), out, atol=1e-5)
    order = [int((before_w == row).all(dim=(1, 2, 3)).nonzero()[0]) for row in weight.detach()]
    assert sorted(order) == list(range(len(order))) and order != list(range(len(order)))
    assert torch.equal(momentum, before_m[order])
