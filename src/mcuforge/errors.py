"""Exceptions a user can act on. The CLI turns each into one line and an exit status."""
from __future__ import annotations


class McuforgeError(Exception):
    """Base class of the project's own errors."""

    exit_code = 1


class ModelError(McuforgeError):
    """The model file is malformed, or uses something the engine does not support."""

    exit_code = 2


class UsageError(McuforgeError):
    """An argument, input file or output path the command cannot use (wrong value, type, folder, extension)."""

    exit_code = 2


class BudgetError(McuforgeError):
    """The compiled model does not fit the SRAM or flash budget."""

    exit_code = 3


class BuildError(McuforgeError):
    """The C compiler failed on generated code (a bug in mcuforge: please report it)."""

    exit_code = 4


def shown(text: str, limit: int = 48) -> str:
    """A name taken from a model or the user, safe to print inside a one-line message: quoted, control and
    non-ASCII characters escaped (no newline, NUL or terminal escape reaches the screen), and shortened
    to about `limit` characters with '...' in the middle."""
    body = text.encode("ascii", "backslashreplace").decode("ascii")
    body = "".join(ch if " " <= ch <= "~" else f"\\x{ord(ch):02x}" for ch in body).replace("'", "\\'")
    if len(body) > limit:
        keep = (limit - 3) // 2
        body = f"{body[:keep]}...{body[-keep:]}"
    return f"'{body}'"
