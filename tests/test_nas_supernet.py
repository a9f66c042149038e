"""TinyNAS stage 2's supernet (nas.supernet): every subnet it extracts computes what the supernet computes
with that subnet active, has the shapes of the stage-1 spec the oracles cost, and goes through from_torch,
PTQ and the engine bit-exact."""
from __future__ import annotations

import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.frontends.tflite_writer import write_tflite  # noqa: E402
from mcuforge.frontends.torch_capture import from_torch  # noqa: E402
from mcuforge.nas.cost import estimate  # noqa: E402
from mcuforge.nas.mcunet import KERNELS, SearchSpace  # noqa: E402
from mcuforge.nas.space import to_graph  # noqa: E402
from mcuforge.nas.supernet import Supernet, recalibrate_bn  # noqa: E402
from mcuforge.pipeline import compile_model  # noqa: E402
from mcuforge.quant.ptq import quantize  # noqa: E402
from mcuforge.verify import verify  # noqa: E402

SPACES = {"image": (SearchSpace(0.3, 48, 3, 10), (3, 48, 48)),
          "signal": (SearchSpace(0.3, 64, 6, 5, signal=True), (6, 64))}
WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "FULLY_CONNECTED")


def _trained_a_little(space, sample, seed=0):
    """A supernet whose batch norms have seen data, channels sorted, so that subnets are not all zeros."""
    torch.manual_seed(seed)
    net = Supernet(space).train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(4, *sample))
    net.sort_channels()
    return net


@pytest.mark.parametrize("kind", SPACES)
def test_extracted_subnet_computes_what_the_supernet_computes(kind):
    space, sample = SPACES[kind]
    net = _trained_a_little(space, sample)
    x = torch.randn(3, *sample)
    for seed in range(4):
        arch = space.sample(random.Random(seed))
        net.set_active(arch)
        recalibrate_bn(net, [torch.randn(4, *sample) for _ in range(2)])
        net.eval()
        sub = net.extract(arch).eval()
        with torch.no_grad():
            torch.testing.assert_close(sub(x), net(x), rtol=0, atol=1e-6)
        net.train()


def test_sorting_channels_keeps_the_largest_net_and_kernels_share_weights():
    space, sample = SPACES["image"]
    net = _trained_a_little(space, sample).eval()
    x = torch.randn(2, *sample)
    with torch.no_grad():
        before = net(x)
        net.sort_channels()
        torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-5)
    block = net.stages[0][0]
    w7, w5, w3 = (block.kernel_weight(k, 8) for k in sorted(KERNELS, reverse=True))
    torch.testing.assert_close(w5, w7[..., 1:6, 1:6])  # the transforms start as the identity
    torch.testing.assert_close(w3, w7[..., 2:5, 2:5])
    net.train()
    net.set_active(space.smallest())
    net(x).sum().backward()
    assert block.transforms["3"].grad is not None and block.transforms["3"].grad.abs().sum() > 0


def _ops(graph):
    return [(op.kind, graph[op.outputs[0]].shape) for op in graph.ops if op.kind in WEIGHTED]


@pytest.mark.parametrize("kind", SPACES)
def test_subnet_has_the_stage1_spec_and_runs_bit_exact_in_the_engine(kind):
    space, sample = SPACES[kind]
    net = _trained_a_little(space, sample)
    arch = space.sample(random.Random(7))
    net.set_active(arch)
    net.eval()
    float_graph = from_torch(net.extract(arch).eval(), torch.zeros(1, *sample))
    spec = space.network(arch)
    assert _ops(float_graph) == _ops(to_graph(spec))
    rng = np.random.default_rng(0)
    calib = rng.normal(size=(16, *float_graph[float_graph.inputs[0]].shape[1:])).astype(np.float32)
    int8 = quantize(float_graph, calib, batch_size=8, progress=False)
    result = verify(int8, samples=2, tflite_bytes=write_tflite(int8))
    assert result.ok and result.tflm_checked, result.mismatches[:2]
    compiled = compile_model(int8, strategy="layer")
    est = estimate(spec)
    assert compiled.report.arena_bytes == est.peak_sram_bytes
    assert compiled.report.macs == est.macs
