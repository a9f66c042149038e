"""Raw audio to class scores in C: the front-end, the quantization of its codes into the network's input and
the network, bit for bit the numpy front-end followed by the reference interpreter, on the host and on a
Cortex-M4 in QEMU."""
from __future__ import annotations

import numpy as np
import pytest
from oracle import SHARED

torch = pytest.importorskip("torch")

from mcuforge.audio import FrontendConfig, features  # noqa: E402
from mcuforge.audio.glue import audio_model_library, emit_audio_input_c, network_input  # noqa: E402
from mcuforge.engine.reference import run  # noqa: E402
from mcuforge.frontends.torch_capture import from_torch  # noqa: E402
from mcuforge.pipeline import compile_model  # noqa: E402
from mcuforge.quant.ptq import quantize, quantize_input  # noqa: E402
from mcuforge.targets.host import HostModel  # noqa: E402

SPEECH = SHARED / "datasets" / "speech_commands8.npz"
CONFIG = FrontendConfig()
SAMPLES = 16000


def clips() -> np.ndarray:
    if not SPEECH.exists():
        pytest.skip(f"{SPEECH} is missing")
    with np.load(SPEECH) as data:
        speech = data["x_test"][:6]
    rng = np.random.default_rng(0)
    return np.concatenate([speech, rng.integers(-32768, 32768, (1, SAMPLES)), np.zeros((1, SAMPLES)),
                           np.full((1, SAMPLES), 32767)]).astype(np.int16)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(CONFIG.mels, 8, 3, 2, 1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()
    x = network_input(features(clips(), CONFIG))  # (N, frames, mels): the IR layout of a 1-D signal
    graph = quantize(from_torch(net, torch.from_numpy(x[:1].transpose(0, 2, 1).copy())),
                     x, progress=False)
    return graph, compile_model(graph, "kws")


def expected(graph, clip: np.ndarray) -> np.ndarray:
    x = network_input(features(clip, CONFIG))
    return run(graph, [quantize_input(graph, x.reshape(graph[graph.inputs[0]].shape))])[0]


def test_network_input_is_one_float_multiply():
    codes = np.array([-32768, -1, 0, 1, 1023, 32767], np.int16)
    assert network_input(codes).dtype == np.float32
    np.testing.assert_allclose(network_input(codes), codes * np.log(2) / 1024, rtol=1e-6)


def test_raw_audio_to_scores_on_the_host_is_the_reference(model):
    graph, compiled = model
    host = HostModel.build(audio_model_library(compiled.lib, CONFIG, SAMPLES))
    for clip in clips():
        np.testing.assert_array_equal(host.run([clip])[0].reshape(-1), expected(graph, clip).reshape(-1))


def test_raw_audio_to_scores_on_cortex_m4(model):
    from mcuforge.targets.cortex_m import CortexMModel, toolchain_missing

    missing = toolchain_missing()
    if missing:
        pytest.skip(f"needs the Arm toolchain and QEMU ({missing})")
    graph, compiled = model
    m4 = CortexMModel.build(audio_model_library(compiled.lib, CONFIG, SAMPLES), "cortex-m4")
    batch = clips()[:3]
    counts, outs = m4.count_instructions_batch([[c] for c in batch])
    for clip, out in zip(batch, outs):
        np.testing.assert_array_equal(out[0].reshape(-1), expected(graph, clip).reshape(-1))
    assert all(c > 2_000_000 for c in counts)  # the front-end alone is about 2.7 M


def test_the_glue_refuses_a_clip_of_the_wrong_length():
    source = emit_audio_input_c("kws", CONFIG, SAMPLES)["kws_audio.c"]
    assert "num_samples != KWS_AUDIO_SAMPLES) return -1" in source
    assert "#error" in source  # a model whose input is not one clip's features does not build
