"""Output written whole or not at all: folders swapped in whole, files renamed into place.

`replaced_folder(path)` gives a fresh hidden folder beside `path` (`.<name>.mcuforge-*`) to write into; when
the block ends it replaces `path` whole, so `path` then holds exactly the new files, and on any failure,
Ctrl-C (SIGINT) or SIGTERM it keeps its previous contents and the hidden folder is removed. The swap (two
renames and the removal of the old folder) runs with SIGINT and SIGTERM held back, so a signal cannot
cut it in half. Only a folder that is empty or that mcuforge wrote itself (it holds the marker file
`.mcuforge`) is ever replaced; a folder holding anything else is refused with a UsageError, so a user's
own files are never deleted. A process killed outright (SIGKILL, power loss) in the middle of the swap
can leave the previous contents in a hidden `.<name>.mcuforge-old-*` folder beside `path`.

Test hook: with MCUFORGE_TEST_PAUSE=<point>[:seconds] in the environment, `pause_for_tests(point)` prints
`mcuforge-pause: <point>` on stdout and sleeps (default 60 s) there, so a test can send a signal at a
known point. Points: `startup` (signal handlers in place, before the heavy imports), `compile` (before
planning), `write` (files staged, before the swap), `swap` (inside the swap, signals held back).
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import UsageError, shown

MARKER = ".mcuforge"
MARKER_TEXT = ("This folder was written by mcuforge. The next `mcuforge compile -o` into it replaces it whole:\n"
               "keep your own files elsewhere.\n")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PAUSE_VARIABLE = "MCUFORGE_TEST_PAUSE"


def pause_for_tests(point: str) -> None:
    """The test hook described in the module docstring; does nothing unless MCUFORGE_TEST_PAUSE names `point`."""
    name, _, seconds = os.environ.get(PAUSE_VARIABLE, "").partition(":")
    if name != point:
        return
    print(f"mcuforge-pause: {point}", flush=True)
    deadline = time.monotonic() + float(seconds or 60)
    while time.monotonic() < deadline:  # short sleeps: a signal handler runs between them
        time.sleep(0.02)


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends, then take effect as usual. They are blocked in this
    thread (pthread_sigmask); one that another thread receives meets a handler that only records it."""
    caught: list[int] = []
    saved = {}
    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
        saved = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in STOP_SIGNALS}
    can_block = hasattr(signal, "pthread_sigmask")  # POSIX
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if can_block else None
    try:
        yield
    finally:
        if can_block:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for s, handler in saved.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if caught:
            signal.raise_signal(caught[0])


def cannot_write(given: str, error: OSError) -> UsageError:
    return UsageError(f"cannot write {shown(given)}: {error.strerror or error}; choose a place you can write to")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _refuse_unless_replaceable(target: Path, given: str) -> None:
    if not target.is_dir():
        raise UsageError(f"{shown(given)} is a file, not a folder: choose a new or empty folder for the output")
    try:
        entries = sorted(os.listdir(target))
    except OSError as e:
        raise UsageError(f"cannot read the folder {shown(given)}: {e.strerror}") from None
    if entries and MARKER not in entries:
        raise UsageError(f"{shown(given)} holds files mcuforge did not write (e.g. {shown(entries[0], 24)}) and "
                         "would be replaced whole: choose a new or empty folder")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_parent(target: Path, given: str) -> None:
    """UsageError unless the folder that will hold `target` exists or can be created there."""
    base = _nearest_existing(target.parent)
    if not base.is_dir():
        raise UsageError(f"cannot write {shown(given)}: {shown(str(base))} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {shown(given)}: no permission to write in {shown(str(base))}")


def check_output_folder(path: str | os.PathLike) -> Path:
    """The absolute folder that `replaced_folder(path)` will write; UsageError if it may not: `path` is a
    file, holds files mcuforge did not write, contains the current folder, or cannot be created."""
    given = os.fspath(path)
    target = Path(given).resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise UsageError(f"{shown(given)} is the current folder or holds it: choose a new or empty subfolder")
    if target.exists():
        _refuse_unless_replaceable(target, given)
    check_writable_parent(target, given)
    return target


def _created_parents(folder: Path) -> list[Path]:
    """Makes `folder` and its missing parents; returns those it made, innermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for p in reversed(missing):
        p.mkdir()
    return missing


def _swap(stage: Path, target: Path, given: str) -> None:
    """Puts `stage` where `target` is, deleting the old `target` (signals held back)."""
    with signals_held():
        pause_for_tests("swap")
        old = None
        if target.exists():
            _refuse_unless_replaceable(target, given)  # again: someone may have added files meanwhile
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.mcuforge-old-", dir=target.parent))
            os.rename(target, old)  # replaces the empty `old` folder
        try:
            os.rename(stage, target)
        except OSError:
            if old is not None:
                os.rename(old, target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def replaced_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A new, empty folder to write into (ordinary permissions: the umask applies); when the block ends
    without an exception it replaces `path` whole (see the module docstring). Raises UsageError if
    `path` may not be replaced (check_output_folder) or cannot be written (with the OS's reason)."""
    given = os.fspath(path)
    target = check_output_folder(given)
    made: list[Path] = []
    stage: Path | None = None
    done = False
    try:
        try:
            with signals_held():
                made = _created_parents(target.parent)
                stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.mcuforge-", dir=target.parent))
                os.chmod(stage, 0o777 & ~_umask())
        except OSError as e:
            raise cannot_write(given, e) from None
        yield stage
        try:
            (stage / MARKER).write_text(MARKER_TEXT)
            pause_for_tests("write")
            _swap(stage, target, given)
        except OSError as e:
            raise cannot_write(given, e) from None
        done = True
    finally:
        with signals_held():
            if stage is not None and stage.exists():
                shutil.rmtree(stage, ignore_errors=True)
            if not done:
                for p in made:  # innermost first; stops at a folder that is not empty
                    try:
                        p.rmdir()
                    except OSError:
                        break


def either(choices: tuple[str, ...]) -> str:
    """('.png', '.svg', '.pdf') -> '.png, .svg or .pdf'."""
    return " or ".join(filter(None, (", ".join(choices[:-1]), choices[-1])))


def check_output_file(path: str | os.PathLike, suffixes: tuple[str, ...], what: str, *,
                      make_parents: bool = False) -> Path:
    """UsageError unless `path` can take `what` (e.g. "the plot"): it ends in one of `suffixes`, is not a
    folder, and its folder exists (or, with `make_parents`, can be created)."""
    given = os.fspath(path)
    target = Path(given)
    if not target.name.lower().endswith(suffixes):
        raise UsageError(f"{shown(given)}: {what} must be a file ending in {either(suffixes)}")
    if target.is_dir():
        raise UsageError(f"{shown(given)} is a folder: give a file name for {what}")
    if make_parents:
        check_writable_parent(target.resolve(), given)
    elif not target.parent.is_dir():
        raise UsageError(f"cannot write {shown(given)}: the folder {shown(str(target.parent))} does not exist; "
                         "create it first")
    elif not os.access(target.parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {shown(given)}: no permission to write in {shown(str(target.parent))}")
    return target


def write_file_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Calls `write` on a temporary file beside `path`, then renames it to `path`: never a half-written
    file, and the temporary file is removed on any failure or signal. OSError becomes UsageError."""
    given = os.fspath(path)
    target = Path(given)
    tmp: str | None = None
    try:
        with signals_held():
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.mcuforge-", dir=target.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        raise cannot_write(given, e) from None
    finally:
        if tmp is not None:
            with signals_held():
                Path(tmp).unlink(missing_ok=True)
    return target
