"""The arena is the firmware's: --arena external (<name>_set_arena checks buffer, alignment and size),
two models linked into one program sharing one arena, and linker sections for the arena and the weights."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from mcuforge.cli import main
from mcuforge.engine.codegen import CodeOptions
from mcuforge.engine.reference import run
from mcuforge.errors import UsageError
from mcuforge.pipeline import compile_model, load_model, write_library
from mcuforge.targets.cortex_m import CortexMModel, toolchain_missing
from mcuforge.targets.host import WARNINGS, HostModel, compiler, input_bytes
from mcuforge.verify import random_inputs
from oracle import MODELS

KWS = MODELS / "mlperf_kws_dscnn_int8.tflite"
AD = MODELS / "mlperf_ad_fc_autoencoder_int8.tflite"
EXTERNAL = CodeOptions(arena="external")

# One program, two models, one buffer sized for the larger: run kws, ad, kws again (the second kws run
# sees an arena that ad overwrote), each output written out before the next model runs. Also the
# set_arena checks and invoke without an arena.
MAIN = r"""#include <stdio.h>
#include <stdint.h>
#include "kws.h"
#include "ad.h"

#define MAX(a, b) ((a) > (b) ? (a) : (b))
static union { uint8_t bytes[MAX(KWS_ARENA_BYTES, AD_ARENA_BYTES) + 1]; int64_t align; } shared;

static int run(int (*invoke)(void), void *in, int in_bytes, const void *out, int out_bytes, FILE *src) {
    if (fread(in, 1, (size_t)in_bytes, src) != (size_t)in_bytes) return 1;
    if (invoke() != 0) return 2;
    fwrite(out, 1, (size_t)out_bytes, stdout);
    return 0;
}

int main(void) {
    if (kws_invoke() != -1 || kws_input(0) != 0) return 10;          /* no arena yet */
    if (kws_set_arena(0, sizeof shared) != -1) return 11;
    if (kws_set_arena(shared.bytes + 1, KWS_ARENA_BYTES) != -2) return 12;
    if (kws_set_arena(shared.bytes, KWS_ARENA_BYTES - 1) != -3) return 13;
    if (kws_set_arena(shared.bytes, sizeof shared) != 0) return 14;
    if (ad_set_arena(shared.bytes, sizeof shared) != 0) return 15;
    if ((uint8_t *)kws_input(0) < shared.bytes || (uint8_t *)kws_input(0) >= shared.bytes + sizeof shared) return 16;
    if (run(kws_invoke, kws_input(0), kws_input_bytes(0), kws_output(0), kws_output_bytes(0), stdin)) return 20;
    if (run(ad_invoke, ad_input(0), ad_input_bytes(0), ad_output(0), ad_output_bytes(0), stdin)) return 21;
    if (run(kws_invoke, kws_input(0), kws_input_bytes(0), kws_output(0), kws_output_bytes(0), stdin)) return 22;
    return 0;
}
"""


def _write(path: Path, name: str, folder: Path, options: CodeOptions = EXTERNAL):
    graph = load_model(path)
    compiled = compile_model(graph, name, options=options)
    write_library(compiled.lib, folder / name)
    return graph, compiled


def test_two_models_share_one_external_arena(tmp_path):
    kws_graph, kws = _write(KWS, "kws", tmp_path)
    ad_graph, ad = _write(AD, "ad", tmp_path)
    (tmp_path / "main.c").write_text(MAIN)
    objects = []
    for name in ("kws", "ad"):
        for src in sorted((tmp_path / name).glob("*.c")):
            obj = tmp_path / f"{name}_{src.stem}.o"
            subprocess.run([compiler(), *WARNINGS, "-pedantic", "-O2", f"-I{tmp_path / name}", "-c", str(src),
                            "-o", str(obj)], check=True, capture_output=True)
            objects.append(str(obj))
    exe = tmp_path / "two"
    subprocess.run([compiler(), *WARNINGS, "-O2", f"-I{tmp_path / 'kws'}", f"-I{tmp_path / 'ad'}",
                    str(tmp_path / "main.c"), *objects, "-o", str(exe)], check=True, capture_output=True)
    x1, x2 = random_inputs(kws_graph, 2, seed=5)
    (y,) = random_inputs(ad_graph, 1, seed=6)
    stdin = b"".join(input_bytes(spec, v) for spec, v in ((kws.lib.inputs[0], x1[0]), (ad.lib.inputs[0], y[0]),
                                                            (kws.lib.inputs[0], x2[0])))
    proc = subprocess.run([str(exe)], input=stdin, capture_output=True)
    assert proc.returncode == 0, proc.returncode
    want = [run(kws_graph, x1)[0], run(ad_graph, y)[0], run(kws_graph, x2)[0]]
    got, pos = [], 0
    for w in want:
        got.append(np.frombuffer(proc.stdout[pos:pos + w.nbytes], dtype=w.dtype).reshape(w.shape))
        pos += w.nbytes
    assert pos == len(proc.stdout)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("strategy", ["layer", "patch"])
def test_external_arena_gives_the_static_arenas_outputs(strategy):
    graph = load_model(KWS)
    xs = random_inputs(graph, 2, seed=8)
    static = HostModel.build(compile_model(graph, strategy=strategy).lib)
    external = HostModel.build(compile_model(graph, strategy=strategy, options=EXTERNAL).lib)
    for x in xs:
        for a, b in zip(static.run(x), external.run(x)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(bool(toolchain_missing()), reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_sections_on_cortex_m(tmp_path):
    """The weights land in --weights-section, the static arena in --arena-section (the MPS2 linker script
    places .rodata.* in flash and .bss.* in SRAM), and the model still runs, as does an external arena."""
    graph = load_model(KWS)
    x = random_inputs(graph, 1, seed=2)[0]
    want = run(graph, x)
    placed = compile_model(graph, "kws", options=CodeOptions(arena_section=".bss.kws_arena",
                                                               weights_section=".rodata.kws_weights"))
    m = CortexMModel.build(placed.lib, "cortex-m7")
    sizes = {}
    for obj in m.artifact.objects():
        out = subprocess.run(["arm-none-eabi-objdump", "-h", str(obj)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[1] in (".bss.kws_arena", ".rodata.kws_weights"):
                sizes[parts[1]] = sizes.get(parts[1], 0) + int(parts[2], 16)
    assert sizes[".bss.kws_arena"] == placed.lib.arena_bytes
    assert sizes[".rodata.kws_weights"] == placed.lib.flash_weights_bytes
    np.testing.assert_array_equal(m.run(x)[0], want[0])
    external = CortexMModel.build(compile_model(graph, "kws", options=EXTERNAL).lib, "cortex-m7")
    np.testing.assert_array_equal(external.run(x)[0], want[0])


def test_bad_arena_options_are_refused_in_one_line(tmp_path, capsys):
    for args in (["--arena-section", "a b"], ["--weights-section", ""], ["--arena", "external", "--arena-section",
                                                                          ".sram2"]):
        out = tmp_path / "out"
        assert main(["compile", str(KWS), "-o", str(out), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --") and "\n" not in err
        assert not out.exists()
    with pytest.raises(SystemExit):
        main(["compile", str(KWS), "-o", str(tmp_path / "o"), "--arena", "heap"])
    with pytest.raises(UsageError):
        CodeOptions(arena="heap")
