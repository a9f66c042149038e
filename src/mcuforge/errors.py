"""Exceptions a user can act on. The CLI turns each into one line and an exit status."""
from __future__ import annotations


class McuforgeError(Exception):
    """Base class of the project's own errors."""

    exit_code = 1


class ModelError(McuforgeError):
    """The model file is malformed, or uses something the engine does not support."""

    exit_code = 2


class BudgetError(McuforgeError):
    """The compiled model does not fit the SRAM or flash budget."""

    exit_code = 3


class BuildError(McuforgeError):
    """The C compiler failed on generated code (a bug in mcuforge: please report it)."""

    exit_code = 4
