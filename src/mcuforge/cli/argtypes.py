"""Argument types of the command line: byte counts, fractions, whole numbers. Each raises
argparse.ArgumentTypeError with a one-line reason. Standard library only, and no import of the CLI modules,
so that every module that adds arguments (cli.args, targets.bench, cli.nas) can use them without an import
cycle."""
from __future__ import annotations

import argparse
import math

from ..errors import shown

BYTE_UNITS = {"K": 1024, "M": 1024 * 1024}


def parse_bytes(text: str) -> int:
    """'320000', '320K', '320KB', '256KiB', '1M' -> bytes (K = 1024): a whole, positive, finite amount."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = BYTE_UNITS.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale > 1 else t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte count: {shown(text)} (e.g. 320000, 320K, 1M)") from None
    if not math.isfinite(value) or value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of bytes, not {shown(text)} (e.g. 320K)")
    return int(value)


def parse_fraction(text: str) -> float:
    """'0.15', '15%' -> 0.15: a finite fraction >= 0."""
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a fraction: {shown(text)} (e.g. 0.15 or 15%)") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite fraction >= 0, not {shown(text)} (e.g. 0.15 or 15%)")
    return value


def _integer(text: str, low: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {shown(text)}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {low} or more, not {shown(text)}")
    return value


def parse_count(text: str) -> int:
    """A whole number >= 0 (e.g. --samples, --seed)."""
    return _integer(text, 0)


def parse_positive(text: str) -> int:
    """A whole number >= 1."""
    return _integer(text, 1)
