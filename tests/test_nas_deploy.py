"""nas.deploy: training a standalone network resumes exactly; deploying it gives verified C within the
budgets, scored on the test split, and counted in QEMU on the board's cores."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.errors import BudgetError  # noqa: E402
from mcuforge.nas.baseline import mobilenet_v2  # noqa: E402
from mcuforge.nas.deploy import Recipe, deploy, train_network  # noqa: E402
from mcuforge.nas.stage1 import Budgets  # noqa: E402
from mcuforge.nas.supernet import build_network  # noqa: E402
from mcuforge.targets.boards import get_board  # noqa: E402

SPEC = mobilenet_v2(0.1, 32, channels=1, classes=3)


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 1, 32, 32)).astype(np.float32) + y[:, None, None, None].astype(np.float32)
    return x, y


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(SPEC)


def test_a_killed_training_resumes_exactly(tmp_path):
    x, y = _data(64)
    recipe = Recipe(epochs=2, batch_size=16)
    whole = _net()
    train_network(whole, x, y, recipe)

    class Kill(Exception):
        pass

    def kill_after_first(epoch, loss):
        if epoch == 1:
            raise Kill

    part = _net()
    with pytest.raises(Kill):
        train_network(part, x, y, recipe, checkpoint=tmp_path / "c.pt", on_epoch=kill_after_first)
    resumed = _net()
    train_network(resumed, x, y, recipe, checkpoint=tmp_path / "c.pt", resume=True)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_deploy_gives_verified_c_counted_on_both_cores():
    x, y = _data(96)
    x_test, y_test = _data(30, seed=1)
    model = _net()
    train_network(model, x, y, Recipe(epochs=10, batch_size=16))
    board = get_board("stm32f746")
    budgets = Budgets(sram_bytes=64 * 1024, flash_bytes=256 * 1024)
    result = deploy(model, "tiny", x, y, x_test, y_test, budgets, Recipe(epochs=1, batch_size=16, qat_epochs=1),
                    target="cortex-m7", cores=("cortex-m4", "cortex-m7"), board=board)
    assert result.bit_exact and result.flash_includes_code
    assert result.peak_sram_bytes <= budgets.sram_bytes and result.flash_bytes <= budgets.flash_bytes
    assert set(result.instructions) == {"cortex-m4", "cortex-m7"} and min(result.instructions.values()) > 1000
    assert result.measured_ms == pytest.approx(result.instructions["cortex-m7"] / board.clock_hz * 1e3)
    assert result.test_accuracy > 0.6  # three well separated classes
    with pytest.raises(BudgetError):  # the budgets are checked on the exact compile
        deploy(model, "tiny", x, y, x_test, y_test, Budgets(sram_bytes=1024), Recipe(epochs=1, qat_epochs=0))


def test_the_exact_compile_decides_before_training():
    from mcuforge.nas.deploy import exact_misfit
    from mcuforge.nas.mcunet import SearchSpace
    from mcuforge.nas.search import exactly_fitting
    from mcuforge.pipeline import compile_model
    from mcuforge.nas.space import to_graph

    assert exact_misfit(SPEC, Budgets(sram_bytes=64 * 1024, flash_bytes=256 * 1024)) is None
    assert "exceeds the budget of 1024 B" in exact_misfit(SPEC, Budgets(sram_bytes=1024))
    space = SearchSpace(width=0.3, resolution=48, channels=1, classes=4)
    big, small = space.largest(), space.smallest()
    arena = {a: compile_model(to_graph(space.network(a))).report.arena_bytes for a in (big, small)}
    assert arena[small] < arena[big]
    budgets = Budgets(sram_bytes=arena[small])  # the best scored misses by the exact arena: the next one fits
    said = []
    assert exactly_fitting(big, [big, small], space, budgets, "layer", "host", said.append) == small
    assert "does not fit on the exact compile" in said[0]
    assert exactly_fitting(small, [big, small], space, budgets, "layer", "host", said.append) == small
