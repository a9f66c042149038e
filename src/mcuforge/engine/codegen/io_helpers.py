"""The generated library's helpers between real values and its int8 (or uint8) edges.

<name>_quantize_input(i, x, n) writes real values into input i as TFLite's QUANTIZE does (float32 division by
the scale, halves away from zero, plus the zero point, clamped to -128..127); <name>_dequantize_output(i, y, n)
reads output i as real values, scale * (q - zero point), as DEQUANTIZE does. A float32 edge (a model with
QUANTIZE/DEQUANTIZE inside) takes and gives its floats unchanged, so the same calling code serves both kinds.
The arithmetic is the runtime's own (mcu_quantize.h): no libm.
"""
from __future__ import annotations

from ...ir import Graph

QUANTIZE_HEADER = "mcu_quantize.h"


def _kind(graph: Graph, tensor: str) -> str | None:
    """'int8' or 'uint8' (quantized with a scale and zero point), 'float32', or None (no real-valued view)."""
    t = graph[tensor]
    if t.dtype in _TYPE_CODE and t.quant is not None:
        return t.dtype
    return "float32" if t.dtype == "float32" else None


_TYPE_CODE = {"int8": "s8", "uint8": "u8"}


def needs_quantize_header(graph: Graph) -> bool:
    return any(_kind(graph, n) in _TYPE_CODE for n in (*graph.inputs, *graph.outputs))


def helper_declarations(graph: Graph, name: str, external_arena: bool) -> list[str]:
    upper = name.upper()
    unset = ", no arena set yet" if external_arena else ""
    yours = ", or the input is read from your buffer (set_input)" if graph.external else ""
    return [f"/* Real values -> input i: x[0..n-1], n = {upper}_INPUTi_SIZE, quantized with the input's scale and zero",
            " * point as TFLite's QUANTIZE does (x / scale rounded half away from zero, plus the zero point, clamped to",
            " * -128..127, 0..255 for a uint8 input); a float32 input takes them unchanged. Returns 0, or -1: i out of range, n not the input's",
            f" * size, x NULL, an input that is not int8, uint8 or float32{unset}{yours}. */",
            f"int {name}_quantize_input(int i, const float *x, int n);",
            "/* Output i -> real values: y[0..n-1] = scale * (q - zero point), as TFLite's DEQUANTIZE; a float32 output",
            " * is copied. Returns 0, or -1: i out of range, n not the output's size, y NULL, an output that is",
            f" * not int8, uint8 or float32{unset}. */",
            f"int {name}_dequantize_output(int i, float *y, int n);"]


def helper_definitions(graph: Graph, name: str) -> list[str]:
    upper = name.upper()
    lines = [f"int {name}_quantize_input(int i, const float *x, int n) {{",
             f"    void *const dst = {name}_input(i);",
             "    if (dst == 0 || x == 0) return -1;"]
    lines += _cases(graph, graph.inputs, upper, "INPUT", lambda i, p: (
        [f"        if (dst != (void *)({name}_input_buffer{i})) return -1; /* the caller's buffer */"]
        if graph.inputs[i] in graph.external else []) + _quantize_body(graph, graph.inputs[i], p))
    lines += ["}",
              f"int {name}_dequantize_output(int i, float *y, int n) {{",
              f"    const void *const src = {name}_output(i);",
              "    if (src == 0 || y == 0) return -1;"]
    lines += _cases(graph, graph.outputs, upper, "OUTPUT", lambda i, p: _dequantize_body(graph, graph.outputs[i], p))
    return lines + ["}"]


def _cases(graph: Graph, names: tuple[str, ...], upper: str, kind: str, body) -> list[str]:
    cases: list[str] = []
    for i, n in enumerate(names):
        if _kind(graph, n) is None:
            continue
        p = f"{upper}_{kind}{i}"
        cases += [f"    case {i}:", f"        if (n != {p}_SIZE) return -1;", *body(i, p), "        return 0;"]
    if not cases:
        return ["    (void)i;", "    (void)n;", "    return -1;"]
    return ["    switch (i) {", *cases, "    default:", "        return -1;", "    }"]


def _quantize_body(graph: Graph, tensor: str, p: str) -> list[str]:
    if _kind(graph, tensor) == "float32":
        return [f"        memmove(dst, x, sizeof(float) * {p}_SIZE);"]
    code = _TYPE_CODE[graph[tensor].dtype]
    return [f"        mcu_quantize_f32_{code}({p}_SCALE, {p}_ZERO_POINT, {p}_SIZE, x, ({graph[tensor].dtype}_t *)dst);"]


def _dequantize_body(graph: Graph, tensor: str, p: str) -> list[str]:
    if _kind(graph, tensor) == "float32":
        return [f"        memmove(y, src, sizeof(float) * {p}_SIZE);"]
    t = graph[tensor]
    return [f"        mcu_dequantize_{_TYPE_CODE[t.dtype]}_f32({p}_SCALE, {p}_ZERO_POINT, {p}_SIZE, (const {t.dtype}_t *)src, y);"]
