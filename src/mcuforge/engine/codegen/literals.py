"""C literals the emitters write: integers, designated initializers, compound-literal structs, calls."""
from __future__ import annotations

from typing import Sequence, Union

Field = Union[int, str, Sequence[int]]


def c_int(v: int) -> str:
    v = int(v)
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)


def c_ints(values: Sequence[int]) -> str:
    """A const int32_t array literal."""
    return f"(const int32_t[{len(values)}]){{" + ", ".join(c_int(v) for v in values) + "}"


def _field(value: Field) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(c_int(x) for x in value) + "}"
    return c_int(value)  # type: ignore[arg-type]


def c_fields(values: dict[str, Field]) -> str:
    """Designated initializers (`.name = 3`, `.name = {1, 2}`, `.name = expr`), wrapped to lines of about
    90 characters."""
    lines: list[str] = []
    for item in (f".{k} = {_field(v)}" for k, v in values.items()):
        if lines and len(lines[-1]) + len(item) < 88:
            lines[-1] += " " + item + ","
        else:
            lines.append(item + ",")
    return "\n  ".join(lines).rstrip(",")


def c_struct(ctype: str, values: dict[str, Field]) -> str:
    """A pointer to a const compound literal."""
    return f"&(const {ctype}){{{c_fields(values)}}}"


def c_call(fn: str, args: Sequence[str]) -> str:
    """`fn(arg, arg, ...);` one argument per line, aligned after the parenthesis."""
    pad = " " * (len(fn) + 1)
    return f"{fn}(" + (",\n" + pad).join(a.replace("\n", "\n" + pad) for a in args) + ");"
