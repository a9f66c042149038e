"""Layers whose C is the same up to arena offsets share one function.

Patch-based execution repeats a stage's layers once per patch with the same shapes, weights and
constants; only where their tensors lie in the arena differs. Inlining every repetition makes the code
(and the C compiler's time) grow with the number of patches, so each body that occurs more than once
becomes a static function taking its arena pointers as arguments, and the layers call it. The kernels
are still specialised inside it by their literal shapes.
"""
from __future__ import annotations

import re


def _parametrise(body: str, arena: str) -> tuple[str, list[str]]:
    """The body with every `&<arena>[offset]` replaced by a parameter p0, p1, ... and those pointers."""
    pattern = re.compile(r"&" + re.escape(arena) + r"\[(\d+)\]")
    pointers: list[str] = []

    def param(match: re.Match[str]) -> str:
        pointers.append(match.group(0))
        return f"p{len(pointers) - 1}"

    return pattern.sub(param, body), pointers


def share_repeated_layers(bodies: list[str], arena: str) -> tuple[list[str], list[str]]:
    """(function definitions, new bodies): repeated bodies become calls of one shared function each."""
    shapes = [_parametrise(body, arena) if body else ("", []) for body in bodies]
    counts: dict[str, int] = {}
    for text, _ in shapes:
        if text:
            counts[text] = counts.get(text, 0) + 1
    names: dict[str, str] = {}
    functions: list[str] = []
    out: list[str] = []
    for body, (text, pointers) in zip(bodies, shapes):
        if not text or counts[text] < 2:
            out.append(body)
            continue
        if text not in names:
            names[text] = f"mcu_layer_{len(names)}"
            params = ", ".join(f"int8_t *p{k}" for k in range(len(pointers))) or "void"
            inner = "\n".join("    " + line if line.strip() else line for line in text.splitlines())
            functions += [f"static void {names[text]}({params}) {{", inner, "}", ""]
        out.append(f"{names[text]}({', '.join(pointers)});")
    return functions, out
