"""NAS latency and code-size oracles (nas.latency, nas.codesize): the shipped tables load, and on fresh
random MCUNet networks (neither in bench/latency.py's training set nor in its evaluation set) the
predictions from layer records alone are within 10 % of what QEMU's plugin counts and arm-none-eabi-size
reports. Under CI (the CI environment variable set) a missing Arm toolchain or QEMU fails these tests
instead of skipping them."""
from __future__ import annotations

import random

import pytest

from mcuforge.targets.bench import SEED, SPEED_OPT
from mcuforge.nas import codesize, latency
from mcuforge.nas.layers import Layer, layers_of
from mcuforge.nas.mcunet import SearchSpace
from mcuforge.nas.space import to_graph
from mcuforge.pipeline import compile_model
from mcuforge.targets.boards import get_board
from mcuforge.targets.cortex_m import CortexMModel
from mcuforge.verify import random_inputs

CORES = ("cortex-m4", "cortex-m7")
BOUND = 0.10  # the bound on every network's predicted total (and the code size's aim)


# (space, arch seed, cores to count): small networks so that the -O2 builds stay quick
NETWORKS = {
    "2d-w0.3-r96": (SearchSpace(0.3, 96), 9001, CORES),
    "1d-w0.5-r256": (SearchSpace(0.5, 256, channels=6, classes=5, signal=True), 9002, ("cortex-m7",)),
    "2d-w0.4-r64-c10": (SearchSpace(0.4, 64, classes=10), 9003, ("cortex-m7",)),
}


def _compiled(name: str):
    space, seed, cores = NETWORKS[name]
    compiled = compile_model(to_graph(space.network(space.sample(random.Random(seed)))))
    return compiled, layers_of(compiled.graph, compiled.plan), cores


def test_tables_load():
    lat, size = latency.table(), codesize.table()
    for core in CORES:
        classes = lat["cores"][core]["classes"]
        assert 0.95 < lat["cores"][core]["scale"] < 1.05
        assert {"generic", "conv1x1", "dw_plane", "add", "fc", "softmax"} <= set(classes)
        for key, coef in classes.items():
            path = key.split("|")[0]
            assert len(coef) == len(latency.FEATURES[path]) and min(coef) >= 0, key
        for opt in codesize.OPTS:
            assert len(size["cores"][core][opt]) == len(codesize.feature_names(opt))


def test_predictions_add_up_and_scale_by_the_clock():
    compiled, layers, _ = _compiled("2d-w0.3-r96")
    per_layer = latency.layer_instructions(layers, "cortex-m7")
    total = latency.predict_instructions(layers, "cortex-m7")
    assert len(per_layer) == len(layers) and min(per_layer) >= 0
    assert abs(sum(per_layer) - total) <= len(layers)
    assert total > compiled.report.macs  # at least one instruction per MAC on these networks
    board = get_board("stm32f746")
    assert latency.estimate_ms(layers, board) == pytest.approx(total / board.clock_hz * 1e3)
    assert latency.predict_instructions(layers, "cortex-m4") > 0
    assert 1_000 < codesize.code_bytes(layers, "cortex-m7") < codesize.code_bytes(layers, "cortex-m7", "-O2")
    with pytest.raises(ValueError, match="cortex-m0plus"):
        latency.predict_instructions(layers, "cortex-m0plus")
    with pytest.raises(ValueError, match="-O3"):
        codesize.code_bytes(layers, "cortex-m7", "-O3")


def test_unknown_operators_fall_back_to_the_generic_model():
    layer = Layer("MUL", (8, 8, 16), (8, 8, 16))
    assert latency.kernel_path(layer) == "generic"
    assert latency.predict_instructions([layer], "cortex-m7") > 0


@pytest.mark.parametrize("name", NETWORKS)
def test_predictions_match_qemu_and_arm_none_eabi_size(name, toolchain):
    compiled, layers, cores = _compiled(name)
    inputs = random_inputs(compiled.graph, 1, seed=SEED)[0]
    for core in cores:
        speed = CortexMModel.build(compiled.lib, core, SPEED_OPT)
        measured = speed.count_instructions(inputs)
        predicted = latency.predict_instructions(layers, core)
        assert abs(predicted / measured - 1) <= BOUND, (core, predicted, measured)
        for model, opt in ((speed, "O2"), (CortexMModel.build(compiled.lib, core, "-Os"), "Os")):
            actual = model.size_report().code_bytes
            guess = codesize.code_bytes(layers, core, opt)
            assert abs(guess / actual - 1) <= BOUND, (core, opt, guess, actual)
