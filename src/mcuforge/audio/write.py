"""`write_frontend`: the front-end's files added to a library folder that `mcuforge compile` (or
`pipeline.write_library`) already wrote, listed in its build files so that the firmware builds them with the
model."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .config import FrontendConfig
from .emit import emit_frontend_c

_CMAKE_SOURCE = re.compile(r"^    (\S+/)?[A-Za-z0-9_]+\.c\n", re.MULTILINE)


def _add_source(path: Path, source: str) -> None:
    """Lists `source` after the last source line of a CMake file mcuforge generated (the library's
    CMakeLists.txt, `    name.c`, or its Zephyr one, `    ${MCUFORGE_<NAME>_DIR}/name.c`); nothing if absent."""
    if not path.is_file():
        return
    text = path.read_text()
    found = list(_CMAKE_SOURCE.finditer(text))
    if not found or any(m.group(0).strip().rsplit("/", 1)[-1] == source for m in found):
        return
    last = found[-1]
    path.write_text(text[:last.end()] + f"    {last.group(1) or ''}{source}\n" + text[last.end():])


def write_frontend(folder: str | os.PathLike, config: FrontendConfig, prefix: str,
                   samples: int | None = None) -> list[Path]:
    """Writes the front-end's two files into an existing folder (e.g. a library `mcuforge compile` wrote) and
    lists the source in its CMakeLists.txt and zephyr/CMakeLists.txt when those are there (the Arduino and
    PlatformIO manifests take every top-level .c already). With `samples` (the clip length), also
    `<prefix>_audio.h/.c` (audio.glue: `<prefix>_input_from_audio`, for a model compiled as `prefix` whose
    input is one clip's features). Returns the paths written. A later `mcuforge compile -o` into the same
    folder replaces it whole: write the front-end again after it."""
    out = Path(folder)
    if not out.is_dir():
        raise ValueError(f"write_frontend: {os.fspath(folder)!r} is not a folder; compile the model into it first "
                         "(or create it)")
    files = emit_frontend_c(config, prefix)
    if samples is not None:
        from .glue import emit_audio_input_c

        files.update(emit_audio_input_c(prefix, config, samples))
    paths = []
    for name, text in files.items():
        (out / name).write_text(text)
        paths.append(out / name)
    for source in (name for name in files if name.endswith(".c")):
        for cmake in (out / "CMakeLists.txt", out / "zephyr" / "CMakeLists.txt"):
            _add_source(cmake, source)
    return paths
