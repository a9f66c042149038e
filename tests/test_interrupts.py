"""Ctrl-C (SIGINT) and SIGTERM at known points of `mcuforge compile`: exit 130 / 143 with at most one short
line and no traceback; the output folder holds either its complete old contents or the complete new
library; no hidden temporary folder is left; new folders get ordinary permissions.

The points come from the CLI's test hook (MCUFORGE_TEST_PAUSE, see mcuforge.outdir): the process prints
`mcuforge-pause: <point>` and waits there, and the test sends the signal.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcuforge.outdir import MARKER
from oracle import MODELS

HELLO = MODELS / "tflm_hello_world_int8.tflite"
UMASK = 0o027
STATUS = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def new_library(tmp_path_factory) -> dict[str, bytes | None]:
    """What `compile HELLO -o lib` writes when nothing stops it."""
    out = tmp_path_factory.mktemp("reference") / "lib"
    proc = subprocess.run(compile_command(out), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return snapshot(out)


def compile_command(out: Path) -> list[str]:
    return [sys.executable, "-m", "mcuforge.cli", "compile", str(HELLO), "-o", str(out)]


def start(out: Path, pause: str) -> subprocess.Popen:
    env = {**os.environ, "MCUFORGE_TEST_PAUSE": pause}
    return subprocess.Popen(compile_command(out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.umask(UMASK))


def wait_for_pause(proc: subprocess.Popen, point: str, timeout: float = 30) -> None:
    deadline, seen = time.monotonic() + timeout, b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            seen += line
            if line.strip() == f"mcuforge-pause: {point}".encode():
                return
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise AssertionError(f"no pause at {point!r}; output: {seen!r}, stderr: {proc.stderr.read()!r}")


def stop_at(point: str, signum: int, out: Path, pause: str | None = None) -> tuple[int, str]:
    proc = start(out, pause or point)
    wait_for_pause(proc, point)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err.decode()


def old_library(out: Path) -> dict[str, bytes | None]:
    """An earlier library written by mcuforge, with a file the new one does not have."""
    out.mkdir()
    (out / MARKER).write_text("written by mcuforge\n")
    (out / "old_model.h").write_text("/* the previous model */\n")
    (out / "old_model.c").write_text("int old_model_invoke(void) { return 0; }\n")
    return snapshot(out)


def assert_quiet_stop(code: int, err: str, signum: int) -> None:
    status, word = STATUS[signum]
    assert code == status, err
    assert "Traceback" not in err and "internal error" not in err
    assert err.strip() in ("", word), err


def assert_no_strays(parent: Path, *expected: str) -> None:
    assert sorted(p.name for p in parent.iterdir()) == sorted(expected)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", ["startup", "compile", "write"])
@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing"])
def test_signal_leaves_old_contents_and_no_temporary_folder(point, signum, existing, tmp_path):
    out = tmp_path / "lib"
    before = old_library(out) if existing else None
    assert_quiet_stop(*stop_at(point, signum, out), signum)
    if existing:
        assert snapshot(out) == before
        assert_no_strays(tmp_path, "lib")
    else:
        assert_no_strays(tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_the_swap_waits_for_it(signum, tmp_path, new_library):
    """Inside the swap the signals are held back: the new library goes in whole, then the process stops."""
    out = tmp_path / "lib"
    old_library(out)
    assert_quiet_stop(*stop_at("swap", signum, out, pause="swap:0.5"), signum)
    assert snapshot(out) == new_library
    assert_no_strays(tmp_path, "lib")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_the_heavy_modules_load(signum, tmp_path, new_library):
    """The hook does not wait here (`startup:0`): the signal lands while numpy, rich and the engine load."""
    out = tmp_path / "lib"
    code, err = stop_at("startup", signum, out, pause="startup:0")
    if code == 0:  # it finished first: then the library is complete
        assert snapshot(out) == new_library
    else:
        assert_quiet_stop(code, err, signum)
        assert_no_strays(tmp_path)


def test_new_folder_gets_ordinary_permissions(tmp_path, new_library):
    out = tmp_path / "sub" / "lib"
    proc = start(out, "none")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert snapshot(out) == new_library
    for folder in (out, out.parent):
        assert folder.stat().st_mode & 0o777 == 0o777 & ~UMASK
    for f in out.rglob("*"):  # files, and the subfolders of the build-system files (zephyr/, examples/)
        assert f.stat().st_mode & 0o777 == (0o777 if f.is_dir() else 0o666) & ~UMASK, f


def test_cli_module_imports_only_the_standard_library():
    """Start-up safety: `mcuforge.cli.main` loads no heavy module before main installs its signal handlers."""
    code = "import sys, mcuforge.cli.main; print(sorted(m for m in ('numpy', 'rich', 'torch') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_main_in_process_restores_signal_handlers(tmp_path, capsys):
    from mcuforge.cli import main

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert main(["inspect", str(HELLO), "--json"]) == 0
    assert {s: signal.getsignal(s) for s in before} == before
