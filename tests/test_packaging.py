"""The generated library as a firmware project takes it: CMake (host and arm-none-eabi), a Zephyr module, Arduino
and PlatformIO manifests, the example program, and the quantize/dequantize helpers against the reference."""
from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mcuforge import __version__
from mcuforge.engine.codegen import CodeOptions
from mcuforge.engine.codegen.packaging import EXAMPLE
from mcuforge.operators.quantize import dequantize_values, quantize_f32_values
from mcuforge.pipeline import compile_model, load_model, write_library
from mcuforge.targets.host import WARNINGS, HostModel, compiler
from oracle import MODELS

KWS = MODELS / "mlperf_kws_dscnn_int8.tflite"
HAR = MODELS / "st_har_gmp_wl24_wisdm_int8_floatio.tflite"  # float32 input and output
STRICT = (*WARNINGS, "-pedantic")


def need(tool: str) -> str:
    """The tool's path; a missing tool skips the test, but fails it under CI (where .ci/run installs it)."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed (CI installs it)")
        pytest.skip(f"{tool} is not installed")
    return path


def run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def libs(tmp_path_factory) -> dict[str, Path]:
    """KWS with a static and with an external arena, and HAR (float edges), written as `compile -o` does."""
    root = tmp_path_factory.mktemp("libs")
    made = {}
    for key, path, name, arena in (("static", KWS, "kws", "static"), ("external", KWS, "kws", "external"),
                                   ("float", HAR, "har", "static")):
        compiled = compile_model(load_model(path), name, options=CodeOptions(arena=arena))
        write_library(compiled.lib, root / key)
        made[key] = root / key
    return made


def cmake_build(source: Path, build: Path, *defines: str) -> None:
    cmake = need("cmake")
    run([cmake, "-S", str(source), "-B", str(build), *defines])
    run([cmake, "--build", str(build), "-j", "2"])


# ------------------------------------------------------------------------------------------------ CMake


CONSUMER = """cmake_minimum_required(VERSION 3.13)
project(consumer C)
add_subdirectory("{lib}" kws)
add_executable(app "{lib}/examples/example_main.c")
target_link_libraries(app PRIVATE kws)
"""


def test_cmake_builds_the_library_alone_and_inside_a_project(libs, tmp_path):
    lib = libs["static"]
    cmake_build(lib, tmp_path / "alone", "-DCMAKE_C_FLAGS=" + " ".join(STRICT[1:]))
    assert (tmp_path / "alone" / "libkws.a").is_file()

    app = tmp_path / "app"
    app.mkdir()
    (app / "CMakeLists.txt").write_text(CONSUMER.format(lib=lib.as_posix()))
    cmake_build(app, tmp_path / "app_build", "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_C_FLAGS=" + " ".join(STRICT[1:]))
    out = run([str(tmp_path / "app_build" / "app")])
    assert re.fullmatch(r"kws: top class \d+ of 12, score \S+\n", out), out


def test_cmake_cross_builds_for_cortex_m7(libs, tmp_path):
    gcc = need("arm-none-eabi-gcc")
    build = tmp_path / "m7"
    cmake_build(libs["external"], build, "-DCMAKE_SYSTEM_NAME=Generic", f"-DCMAKE_C_COMPILER={gcc}",
                "-DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY", "-DCMAKE_BUILD_TYPE=MinSizeRel",
                "-DCMAKE_C_FLAGS=-mcpu=cortex-m7 -mthumb -Wall -Wextra -Werror -pedantic")
    archive = build / "libkws.a"
    symbols = run([shutil.which("arm-none-eabi-nm") or "arm-none-eabi-nm", str(archive)])
    for fn in ("kws_invoke", "kws_set_arena", "kws_quantize_input", "kws_dequantize_output"):
        assert re.search(rf" T {fn}$", symbols, re.M), fn
    header = run([shutil.which("arm-none-eabi-readelf") or "arm-none-eabi-readelf", "-h", str(archive)])
    assert "ARM" in header


ZEPHYR_STUBS = """cmake_minimum_required(VERSION 3.13)
project(zephyr_stub C)
# Zephyr's own functions, as far as the module uses them
macro(zephyr_library_named name)
  set(ZEPHYR_CURRENT_LIBRARY ${name})
  add_library(${name} STATIC)
endmacro()
function(zephyr_library_sources)
  target_sources(${ZEPHYR_CURRENT_LIBRARY} PRIVATE ${ARGN})
endfunction()
function(zephyr_include_directories)
  target_include_directories(${ZEPHYR_CURRENT_LIBRARY} PUBLIC ${ARGN})
endfunction()
function(zephyr_library_compile_definitions)
  target_compile_definitions(${ZEPHYR_CURRENT_LIBRARY} PRIVATE ${ARGN})
endfunction()
set(CONFIG_MCUFORGE_KWS y)
set(CONFIG_MCUFORGE_KWS_SMALL_CODE y)
add_subdirectory("{lib}/zephyr" module)
"""


def test_zephyr_module_files(libs, tmp_path):
    """module.yml and Kconfig as Zephyr reads them; the module's CMakeLists built with Zephyr's functions stubbed."""
    lib = libs["static"]
    module = parse_yaml((lib / "zephyr" / "module.yml").read_text())
    assert module == {"name": "mcuforge_kws", "build": {"cmake": "zephyr", "kconfig": "zephyr/Kconfig"}}
    kconfig = (lib / "zephyr" / "Kconfig").read_text()
    assert re.search(r"^config MCUFORGE_KWS\n\tbool ", kconfig, re.M)
    assert re.search(r"^config MCUFORGE_KWS_SMALL_CODE\n\tbool .*\n\tdepends on MCUFORGE_KWS$", kconfig, re.M)
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "CMakeLists.txt").write_text(ZEPHYR_STUBS.replace("{lib}", lib.as_posix()))
    cmake_build(stub, tmp_path / "stub_build")
    assert (tmp_path / "stub_build" / "module" / "libmcuforge_kws.a").is_file()


def parse_yaml(text: str) -> dict:
    """yaml.safe_load where PyYAML is installed; else a reader of the nested `key: value` maps module.yml uses."""
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        return yaml.safe_load(text)
    root: dict = {}
    stack = [(-1, root)]
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        key, sep, value = line.strip().partition(":")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key), line
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if value.strip():
            parent[key] = value.strip()
        else:
            parent[key] = {}
            stack.append((indent, parent[key]))
    return root


# ------------------------------------------------------------------------------------ Arduino, PlatformIO


def test_arduino_and_platformio_manifests(libs):
    lib = libs["static"]
    props = dict(line.split("=", 1) for line in (lib / "library.properties").read_text().splitlines()
                 if line and not line.startswith("#"))
    assert {"name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url", "architectures",
            "includes"} <= set(props)
    assert (props["name"], props["version"], props["author"]) == ("kws", __version__, "mcuforge")
    assert (props["category"], props["architectures"], props["includes"]) == ("Data Processing", "*", "kws.h")
    assert not (lib / "src").exists()  # the flat layout: Arduino compiles the top level's .c files, nothing below

    manifest = json.loads((lib / "library.json").read_text())
    assert (manifest["name"], manifest["version"], manifest["headers"]) == ("kws", __version__, "kws.h")
    assert manifest["frameworks"] == "*" and manifest["platforms"] == "*" and manifest["keywords"]
    build = manifest["build"]
    assert build["srcDir"] == "." and build["includeDir"] == "."
    assert "+<*.c>" in build["srcFilter"] and "-<examples/>" in build["srcFilter"]


# ---------------------------------------------------------------------------------- the example program


@pytest.mark.parametrize("key", ["static", "external", "float"])
def test_example_builds_pedantic_and_runs(libs, key, tmp_path):
    lib = libs[key]
    top_level = sorted(p.name for p in lib.glob("*.c"))
    assert not any(re.search(r"\bmain\s*\(", (lib / c).read_text()) for c in top_level)  # `cc *.c` + your main()
    exe = tmp_path / "example"
    # no -lm: the library and its helpers need no libm
    run([compiler(), *STRICT, "-O2", "-I.", *top_level, EXAMPLE, "-o", str(exe)], cwd=lib)
    out = run([str(exe)])
    name = "har" if key == "float" else "kws"
    assert re.fullmatch(rf"{name}: top class \d+ of \d+, score \S+\n", out), out


UNSET = """#include "kws.h"
int main(void) {
    static float x[KWS_INPUT0_SIZE], y[KWS_OUTPUT0_SIZE];
    if (kws_quantize_input(0, x, KWS_INPUT0_SIZE) != -1) return 1;  /* no arena yet */
    if (kws_dequantize_output(0, y, KWS_OUTPUT0_SIZE) != -1) return 2;
    return kws_invoke() == -1 ? 0 : 3;
}
"""


def test_helpers_refuse_before_the_external_arena_is_set(libs, tmp_path):
    lib = libs["external"]
    (tmp_path / "unset.c").write_text(UNSET)
    exe = tmp_path / "unset"
    run([compiler(), *STRICT, "-O2", f"-I{lib}", str(tmp_path / "unset.c"), *map(str, sorted(lib.glob("*.c"))),
         "-o", str(exe)])
    assert subprocess.run([str(exe)]).returncode == 0


EXTERNAL_INPUT = """#include "kws.h"
static int8_t frame[KWS_INPUT0_SIZE];
int main(void) {
    static float x[KWS_INPUT0_SIZE];
    if (kws_quantize_input(0, x, KWS_INPUT0_SIZE) != 0) return 1;  /* into the model's own input buffer */
    if (((const int8_t *)kws_input(0))[0] != KWS_INPUT0_ZERO_POINT) return 2;
    kws_set_input(0, frame);
    if (kws_quantize_input(0, x, KWS_INPUT0_SIZE) != -1) return 3;  /* never into the caller's const buffer */
    return kws_invoke();
}
"""


def test_helpers_never_write_the_callers_input_buffer(tmp_path):
    lib = tmp_path / "kws"
    write_library(compile_model(load_model(KWS).with_external_inputs(), "kws").lib, lib)
    (tmp_path / "main.c").write_text(EXTERNAL_INPUT)
    run([compiler(), *STRICT, "-O2", f"-I{lib}", str(tmp_path / "main.c"), *map(str, sorted(lib.glob("*.c"))),
         "-o", str(tmp_path / "main")])
    assert subprocess.run([str(tmp_path / "main")]).returncode == 0


# ------------------------------------------------------------------------ quantize / dequantize helpers


def helpers(path: Path, name: str):
    graph = load_model(path)
    model = HostModel.build(compile_model(graph, name).lib)
    dll = model._dll
    for fn in ("quantize_input", "dequantize_output"):
        getattr(dll, f"{name}_{fn}").argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    return graph, model, dll


def test_quantize_and_dequantize_equal_the_reference_bit_for_bit():
    graph, model, dll = helpers(KWS, "kws")
    tin, tout = graph[graph.inputs[0]], graph[graph.outputs[0]]
    s, zp, size = tin.quant.s, tin.quant.zp, tin.size
    s32 = np.float32(s)
    k = np.arange(-300, 300, dtype=np.float32)
    rng = np.random.default_rng(3)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 1e-30, -1e-30,
                         np.float32(3.4e38), np.float32(-3.4e38)], np.float32)
    near_half = np.concatenate([np.nextafter(np.float32(0.5), np.float32(0)) * s32 * np.array([1, -1], np.float32),
                                np.nextafter(np.float32(0.5), np.float32(1)) * s32 * np.array([1, -1], np.float32)])
    values = np.concatenate([
        (k + np.float32(0.5)) * s32,                                        # ties, most exact after the division
        k * s32, rng.normal(0, 60 * s, 4000).astype(np.float32),         # in range and clamped
        rng.uniform(-1e4, 1e4, 1000).astype(np.float32), specials, near_half]).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        assert np.count_nonzero(np.abs(np.modf(values / s32)[0]) == np.float32(0.5)) > 300  # real ties
    quantize, dequantize = dll.kws_quantize_input, dll.kws_dequantize_output
    address = model._dll.kws_input(0)
    for start in range(0, len(values), size):
        chunk = np.zeros(size, np.float32)
        part = values[start:start + size]
        chunk[:len(part)] = part
        assert quantize(0, chunk.ctypes.data, size) == 0
        got = np.frombuffer(ctypes.string_at(address, size), np.int8)
        np.testing.assert_array_equal(got, quantize_f32_values(s, zp, chunk))

    codes = np.arange(-128, 128, dtype=np.int8)
    n_out = tout.size
    out_address = model._dll.kws_output(0)
    for start in range(0, 256, n_out):
        q = np.resize(np.roll(codes, -start), n_out)
        ctypes.memmove(out_address, q.ctypes.data, n_out)
        y = np.full(n_out, np.nan, np.float32)
        assert dequantize(0, y.ctypes.data, n_out) == 0
        want = dequantize_values(tout.quant.s, tout.quant.zp, q)
        np.testing.assert_array_equal(y.view(np.uint32), want.view(np.uint32))

    x = np.zeros(size, np.float32)
    y = np.zeros(n_out, np.float32)
    for i, n in ((1, size), (-1, size), (0, size - 1), (0, size + 1), (0, 0)):
        assert quantize(i, x.ctypes.data, n) == -1, (i, n)
    assert quantize(0, None, size) == -1
    for i, n in ((1, n_out), (0, n_out - 1)):
        assert dequantize(i, y.ctypes.data, n) == -1, (i, n)
    assert dequantize(0, None, n_out) == -1


def test_float_edges_are_copied_unchanged():
    graph, model, dll = helpers(HAR, "har")
    size, n_out = graph[graph.inputs[0]].size, graph[graph.outputs[0]].size
    x = np.random.default_rng(4).normal(0, 3, size).astype(np.float32)
    x[:3] = [np.nan, np.inf, -0.0]
    assert dll.har_quantize_input(0, x.ctypes.data, size) == 0
    assert ctypes.string_at(dll.har_input(0), x.nbytes) == x.tobytes()
    assert dll.har_invoke() == 0
    y = np.zeros(n_out, np.float32)
    assert dll.har_dequantize_output(0, y.ctypes.data, n_out) == 0
    assert y.tobytes() == ctypes.string_at(dll.har_output(0), y.nbytes)
    assert dll.har_quantize_input(0, x.ctypes.data, size - 1) == -1
