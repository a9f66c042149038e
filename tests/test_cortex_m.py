"""Cortex-M4/M7 target: arm-none-eabi-gcc builds run in QEMU equal the host build and the reference bit
for bit; the QEMU plugin's instruction counts are exact and repeatable; the code-size report is sane."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mcuforge.cli import main
from mcuforge.engine.codegen import CLibrary, IOSpec
from mcuforge.engine.reference import run
from mcuforge.errors import BuildError
from mcuforge.pipeline import compile_model, load_model
from mcuforge.targets.cortex_m import CortexMModel, toolchain_missing
from mcuforge.targets.host import HostModel
from mcuforge.verify import random_inputs
from oracle import assert_qemu_equals_reference, dev_models, pending_models, real_samples

MISSING = toolchain_missing()
if MISSING:
    pytest.skip(f"Cortex-M tests need arm-none-eabi-gcc and qemu-system-arm ({MISSING}); on Debian: apt-get "
                "install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm",
                allow_module_level=True)

CORES = ("cortex-m4", "cortex-m7")
MODELS = [p for p in dev_models() if p.stem.startswith(("mlperf_kws", "mlperf_ic_resnet8", "st_har"))]
KWS = next(p for p in dev_models() if p.stem.startswith("mlperf_kws"))


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_qemu_equals_host_and_reference(path, core):
    graph = load_model(path)
    compiled = compile_model(graph)
    model = CortexMModel.build(compiled.lib, core=core)
    host = HostModel.build(compiled.lib)
    batch = random_inputs(graph, 3, seed=11) + [[x] for x in real_samples(path)]
    counts, outs = model.count_instructions_batch(batch)
    for xs, got in zip(batch, outs):
        for q, h, r in zip(got, host.run(xs), run(graph, xs)):
            np.testing.assert_array_equal(q, h)
            np.testing.assert_array_equal(q, r)
    assert len(counts) == len(batch) and min(counts) > compiled.report.macs // 10
    again, _ = model.count_instructions_batch(batch)
    assert again == counts
    assert model.count_instructions(batch[0]) == counts[0]  # one inference per QEMU run: the same count


NEW_OPERATORS = [p for p in pending_models()  # uint8 input; SVDF with int16 in, int32 out; LSTM
                 if p.stem.startswith(("st_ic_stmnist", "tflm_keyword", "tflm_mnist_lstm"))]


@pytest.mark.parametrize("path", NEW_OPERATORS, ids=lambda p: p.stem)
def test_new_operators_in_qemu_equal_the_reference(path):
    """Four inputs in a row in one QEMU run per core: a stateful model carries its state through them."""
    assert len(NEW_OPERATORS) == 3
    assert_qemu_equals_reference(load_model(path), samples=4)


def test_fast_at_every_optimisation_level():
    """runtime/mcu_build.h keeps the kernels inlined and specialised at -Os and compiles the model as at
    -O2 under -O0: the counts stay within 1.2x of -O2 (they were 6.5x at -Os and 60x at -O0), with the same
    outputs; -DMCU_SMALL_CODE gives the compiler's own choices back (smaller code, slower)."""
    graph = load_model(KWS)
    compiled = compile_model(graph, strategy="layer")
    x = random_inputs(graph, 1, seed=3)[0]
    fast = CortexMModel.build(compiled.lib, "cortex-m7", "-O2")
    base = fast.count_instructions(x)
    expected = fast.run(x)
    for opt in ("-Os", "-O0", "-Os -DMCU_SMALL_CODE"):
        m = CortexMModel.build(compiled.lib, "cortex-m7", opt)
        if opt == "-Os":
            os_code = m.size_report().code_bytes
        if opt.endswith("SMALL_CODE"):
            assert m.count_instructions(x) > 3 * base and m.size_report().code_bytes < 0.7 * os_code
        else:
            assert m.count_instructions(x) <= 1.2 * base, opt
        for got, want in zip(m.run(x), expected):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("core", CORES)
def test_size_report(core):
    compiled = compile_model(load_model(KWS))
    size = CortexMModel.build(compiled.lib, core=core, opt="-Os").size_report()
    assert size.core == core and size.opt == "-Os"
    assert compiled.lib.flash_weights_bytes <= size.weights_bytes < compiled.lib.flash_weights_bytes + 256
    assert size.bss_bytes >= compiled.lib.arena_bytes
    assert 500 < size.code_bytes < 64 * 1024
    assert size.model_code_bytes == size.code_bytes + size.const_bytes + size.data_bytes
    assert size.image_flash_bytes > size.code_bytes + size.weights_bytes
    assert json.loads(json.dumps(size.as_json()))["model_code_bytes"] == size.model_code_bytes


PROBE_H = """#include <stdint.h>
void *probe_input(int i);
void *probe_output(int i);
int probe_input_bytes(int i);
int probe_output_bytes(int i);
int probe_invoke(void);
"""
PROBE_C = r"""#include "probe.h"
static int8_t buf[2];
void *probe_input(int i) { return i == 0 ? &buf[0] : 0; }
void *probe_output(int i) { return i == 0 ? &buf[1] : 0; }
int probe_input_bytes(int i) { return i == 0; }
int probe_output_bytes(int i) { return i == 0; }
/* invoke: 2 + LOOPS * (bl, 3 in the leaf, subs, bne) + 2 instructions, then returns STATUS */
__asm(".syntax unified\n.thumb\n"
      ".global probe_leaf\n.thumb_func\nprobe_leaf:\n  nop\n  nop\n  bx lr\n"
      ".global probe_invoke\n.thumb_func\nprobe_invoke:\n  push {r4, lr}\n  movs r4, #LOOPS\n"
      "1:\n  bl probe_leaf\n  subs r4, #1\n  bne 1b\n  movs r0, #STATUS\n  pop {r4, pc}\n");
"""


def probe(loops: int, status: int = 0) -> CLibrary:
    source = PROBE_C.replace("LOOPS", str(loops)).replace("STATUS", str(status))
    return CLibrary("probe", {"probe.h": PROBE_H, "probe.c": source}, 2, 0,
                    (IOSpec("x", (1,), "int8"),), (IOSpec("y", (1,), "int8"),))


@pytest.mark.parametrize("core", CORES)
def test_plugin_counts_exactly_the_invoke_and_its_callees(core):
    for loops in (1, 37):
        model = CortexMModel.build(probe(loops), core=core)
        counts, _ = model.count_instructions_batch([[np.zeros(1, np.int8)]] * 2)
        assert counts == [4 + 6 * loops] * 2


def test_failing_invoke_is_reported():
    model = CortexMModel.build(probe(1, status=1), core="cortex-m4")
    with pytest.raises(BuildError, match="invoke returned an error"):
        model.run([np.zeros(1, np.int8)])


def test_cli_compile_and_run_on_cortex_m(tmp_path, capsys):
    out = tmp_path / "kws"
    assert main(["compile", str(KWS), "-o", str(out), "--name", "kws", "--target", "cortex-m7", "--opt", "Os",
                 "--json"]) == 0
    text = capsys.readouterr().out
    report = json.loads(text.strip().splitlines()[-1])
    assert report["code_size"]["core"] == "cortex-m7" and report["code_size"]["code_bytes"] > 0
    assert "model code (.text)" in text and (out / "kws_cortex-m7.elf").is_file()

    stack = np.random.default_rng(5).integers(-128, 128, size=(2, 1, 49, 10, 1), dtype=np.int8)
    np.save(tmp_path / "x.npy", stack)
    for target in ("cortex-m4", "host"):
        assert main(["run", str(KWS), "--input", str(tmp_path / "x.npy"), "--output",
                     str(tmp_path / f"{target}.npy"), "--target", target]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "cortex-m4.npy"), np.load(tmp_path / "host.npy"))
    assert main(["run", str(KWS), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "r.npy"),
                 "--target", "cortex-m7", "--engine", "reference"]) == 2  # a usage mistake


def test_per_layer_counts_add_up_to_the_trace_builds_total():
    """The plugin's layer marks split one inference into the model's layers: as many counts as layers, each
    positive, summing to the trace build's whole count, which is within 2 % of the normal build's."""
    graph = load_model(KWS)
    compiled = compile_model(graph)
    x = random_inputs(graph, 1, seed=3)[0]
    traced = CortexMModel.build(compiled.lib, core="cortex-m7", trace=True)
    layers = traced.count_layer_instructions(x)
    assert len(layers) == len(graph.ops) and min(layers) > 0
    assert sum(layers) == traced.count_instructions(x)
    plain = CortexMModel.build(compiled.lib, core="cortex-m7").count_instructions(x)
    assert abs(sum(layers) - plain) < 0.02 * plain
    with pytest.raises(ValueError, match="trace build"):
        CortexMModel.build(compiled.lib, core="cortex-m7").count_layer_instructions(x)


def test_cli_bench_layers_json(capsys):
    assert main(["bench", str(KWS), "--layers", "--core", "cortex-m4", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    graph = load_model(KWS)
    assert [r["layer"] for r in rows] == list(range(len(graph.ops)))
    assert [r["op"] for r in rows] == [op.kind for op in graph.ops]
    assert all(r["core"] == "cortex-m4" and r["instructions"] > 0 for r in rows)
    assert sum(r["macs"] for r in rows) == compile_model(graph).report.macs


@pytest.mark.parametrize("core", CORES)
def test_fused_blocks_in_qemu_equal_the_reference(core):
    """mcu_conv_acc_s8.h built for the core: every block of a MobileNetV2-like net fused, bit-exact."""
    from mcuforge.engine.compiler import compile_graph
    from mcuforge.engine.schedule import choose_fusion
    from netbuilder import mbv2

    graph = mbv2(5)
    fused, blocks = choose_fusion(graph, every=True)
    assert len(blocks) == 3
    model = CortexMModel.build(compile_graph(fused, "fused"), core=core)
    batch = random_inputs(graph, 2, seed=4)
    _, outs = model.count_instructions_batch(batch)
    for xs, got in zip(batch, outs):
        for q, r in zip(got, run(graph, xs)):
            np.testing.assert_array_equal(q, r)
