"""The front-end as a `CLibrary` with the model API (`<name>_input/_output/_invoke`), so that the targets
build, run, count and size it exactly as they do a compiled network: `HostModel.build(lib)` runs it on the
host, `CortexMModel.build(lib, "cortex-m4")` in QEMU with exact instruction counts and a size report.

Its one input is a clip of `num_samples` int16 samples, its one output the (frames, mels) int16 codes;
`<name>_invoke()` is one call of `<name>_frontend` on the clip.
"""
from __future__ import annotations

from ..engine.codegen import CLibrary, IOSpec
from .config import FrontendConfig
from .emit import check_prefix, emit_frontend_c, scratch_bytes, table_bytes


def _adapter(name: str, samples: int, frames: int, mels: int) -> dict[str, str]:
    up, out = name.upper(), frames * mels
    header = f"""/* {name}: the front-end behind the model API, for mcuforge's host and Cortex-M harnesses. */
#ifndef {up}_H
#define {up}_H
#include <stdint.h>
#include "{name}_frontend.h"
#define {up}_NUM_INPUTS 1
#define {up}_NUM_OUTPUTS 1
void *{name}_input(int i);
void *{name}_output(int i);
int {name}_input_bytes(int i);
int {name}_output_bytes(int i);
int {name}_invoke(void);
#endif
"""
    source = f"""#include "{name}.h"
static int16_t {name}_clip[{samples}];
static int16_t {name}_features[{max(out, 1)}];
void *{name}_input(int i) {{ return i == 0 ? (void *){name}_clip : 0; }}
void *{name}_output(int i) {{ return i == 0 ? (void *){name}_features : 0; }}
int {name}_input_bytes(int i) {{ return i == 0 ? (int)sizeof {name}_clip : 0; }}
int {name}_output_bytes(int i) {{ return i == 0 ? {2 * out} : 0; }}
int {name}_invoke(void) {{
    return {name}_frontend({name}_clip, {samples}, {name}_features) == {frames} ? 0 : 1;
}}
"""
    return {f"{name}.h": header, f"{name}.c": source}


def frontend_library(config: FrontendConfig, name: str = "frontend", num_samples: int | None = None) -> CLibrary:
    """The front-end of `config` for clips of `num_samples` samples (default: one second) as a CLibrary."""
    p = check_prefix(name)
    samples = config.sample_rate if num_samples is None else int(num_samples)
    if samples < 1:
        raise ValueError(f"frontend_library: num_samples={num_samples!r} must be at least 1")
    frames, mels = config.shape(samples)
    files = dict(emit_frontend_c(config, p), **_adapter(p, samples, frames, mels))
    return CLibrary(name=p, files=files, arena_bytes=scratch_bytes(config), flash_weights_bytes=table_bytes(config),
                    inputs=(IOSpec("samples", (samples,), "int16"),),
                    outputs=(IOSpec("features", (frames, mels), "int16"),))
