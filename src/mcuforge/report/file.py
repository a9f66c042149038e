"""`compile --report FILE` / `validate --report FILE`: the compile report as a file a person reads.

    write_report("report.html", content)   # one self-contained HTML page (inline CSS and SVG)
    write_report("report.md", content)     # markdown, with its plot beside it as report_memory.svg

`ReportContent` gathers what is known: the memory report (the model's own layers, numbered as the model
is, with whatever ran for each), the plan and why auto chose it, the flash breakdown (with the code
measured by arm-none-eabi-size where the library was built for a Cortex-M core), latency estimates per
board (instructions predicted by nas.latency's per-layer model, and a QEMU count where one was made),
and validation results. The plot is our own SVG: no plotting library is needed.
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .. import __version__
from ..outdir import check_output_file, write_file_atomically
from ..pipeline import MemoryReport

REPORT_SUFFIXES = (".html", ".htm", ".md")


@dataclass
class ReportContent:
    report: MemoryReport
    title: str = ""
    layer_instructions: dict[str, list[int]] = field(default_factory=dict)  # core -> predicted, per model layer
    boards: list[tuple[str, str, int, int | None]] = field(default_factory=list)  # (board, core, clock_hz, counted)
    code_size: list[str] = field(default_factory=list)  # SizeReport.lines()
    sram_budget: int | None = None
    flash_budget: int | None = None
    validation: list[str] = field(default_factory=list)  # lines of a validation's report
    notes: list[str] = field(default_factory=list)


def check_report_path(path: str | os.PathLike) -> Path:
    return check_output_file(path, REPORT_SUFFIXES, "the report")


def layer_predictions(report: MemoryReport, graph, plan, cores: Sequence[str]) -> dict[str, list[int]]:
    """Predicted instructions per model layer on each core (nas.latency's per-op model, summed over the
    ops run for each layer)."""
    from ..nas.latency import layer_instructions
    from ..nas.layers import layers_of

    layers = layers_of(graph, plan)
    out: dict[str, list[int]] = {}
    for core in cores:
        per_op = layer_instructions(layers, core)
        rows = [0] * max(len(report.model_layers), 1)
        for k, n in enumerate(per_op):
            rows[report.source[k] if report.source else k] += n
        out[core] = rows
    return out


def board_rows(predicted: dict[str, list[int]], counted: dict[str, int] | None = None
               ) -> list[tuple[str, str, int, int | None]]:
    """(board, core, clock, counted instructions or None) for every board whose core has predictions."""
    from ..targets.boards import BOARDS

    counted = counted or {}
    return [(b.name, b.core, b.clock_hz, counted.get(b.name)) for b in BOARDS.values() if b.core in predicted]


# ------------------------------------------------------------------------------------------ content

def _kib(n: int | None) -> str:
    return "–" if n is None else f"{n:,} B ({n / 1024:.1f} KiB)"


def _summary(c: ReportContent) -> list[tuple[str, str]]:
    r = c.report
    rows = [("peak SRAM (the arena, scratch included)", _kib(r.sram_bytes)
             + (" (inputs in your buffers, not counted)" if r.external_inputs else "")),
            ("lower bound (largest live set)", _kib(r.lower_bound_bytes)),
            ("peak set by", f"layer {r.peak_model_layer.index} {r.peak_model_layer.kind}"),
            ("execution", r.schedule)]
    if r.plan_choice:
        rows.append(("plan chosen for", r.plan_choice["reason"]))
    rows.append(("MACs", f"{r.macs:,}" + (f" (+{100 * r.extra_macs_ratio:.1f} % recomputed halos)"
                                         if r.extra_macs_ratio else "")))
    if c.sram_budget is not None:
        rows.append(("SRAM budget", f"{_kib(c.sram_budget)}: {'fits' if r.sram_bytes <= c.sram_budget else 'over'}"))
    return rows


def _flash(c: ReportContent) -> list[tuple[str, str]]:
    r = c.report
    rows = [("weights, biases, requantization constants", _kib(r.flash_weights_bytes)),
            ("the model's weights and biases as the model file stores them", _kib(r.param_bytes))]
    if r.flash_code_bytes is not None:
        rows += [(f"model code and its tables ({r.flash_code_build}, arm-none-eabi-size)", _kib(r.flash_code_bytes)),
                 ("in all", _kib(r.flash_bytes))]
    else:
        rows.append(("model code", "not measured: compile with --target cortex-m4|cortex-m7 or a --board"))
    if c.flash_budget is not None:
        rows.append(("flash budget", f"{_kib(c.flash_budget)}: {'fits' if r.flash_bytes <= c.flash_budget else 'over'}"))
    return rows


def _plans(c: ReportContent) -> list[list[str]]:
    plans = (c.report.plan_choice or {}).get("plans", [])
    return [[p["strategy"], f"{p['arena_bytes']:,}", f"{p['predicted_instructions']:,}"] for p in plans]


def _boards(c: ReportContent) -> list[list[str]]:
    rows = []
    for board, core, clock, counted in c.boards:
        predicted = sum(c.layer_instructions[core])
        rows.append([board, core, f"{clock / 1e6:g} MHz", f"{predicted:,}", f"{predicted / clock * 1e3:.1f} ms",
                     "–" if counted is None else f"{counted:,} ({counted / clock * 1e3:.1f} ms)"])
    return rows


def _layers(c: ReportContent) -> tuple[list[str], list[list[str]]]:
    r = c.report
    cores = list(c.layer_instructions)
    head = ["#", "op", "output shape", "MACs run", "params", "live bytes", "ops run", "note",
            *(f"{core} instructions (predicted)" for core in cores)]
    peak = r.source[r.peak_step] if r.source else r.peak_step
    rows = []
    for row in r.model_layers or r.layers:
        how = getattr(row, "how", "in place" if getattr(row, "inplace", False) else "")
        note = ", ".join(x for x in ("peak" if row.index == peak else "", how) if x)
        rows.append([str(row.index), row.kind, "x".join(map(str, row.out_shape)) or "scalar", f"{row.macs:,}",
                     f"{row.params:,}", f"{row.live_bytes:,}", str(getattr(row, "ops", 1)), note,
                     *(f"{c.layer_instructions[core][row.index]:,}" for core in cores)])
    return head, rows


# ---------------------------------------------------------------------------------------------- SVG

def memory_svg(report: MemoryReport, budget: int | None = None) -> str:
    """Live bytes per model layer as bars (the peak in red), the lower bound and the budget as lines."""
    rows = report.model_layers or report.layers
    values = [r.live_bytes for r in rows]
    n = max(len(values), 1)
    width, height, left, bottom, top, right = 860, 300, 64, 40, 28, 16
    plot_w, plot_h = width - left - right, height - top - bottom
    vmax = max([*values, budget or 0, 1]) * 1.08
    peak = max(range(len(values)), key=values.__getitem__) if values else -1
    y = lambda v: top + plot_h * (1 - v / vmax)  # noqa: E731
    bar = plot_w / n
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="16" font-size="13">{html.escape(report.model)}: live memory per layer '
           f'({html.escape(report.strategy)}), peak {report.arena_bytes:,} B</text>']
    for k in range(6):
        v = vmax / 1.08 * k / 5
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v / 1024:.0f} KiB</text>')
    for i, v in enumerate(values):
        color = "#d62728" if i == peak else "#1f77b4"
        out.append(f'<rect x="{left + i * bar + bar * 0.1:.1f}" y="{y(v):.1f}" width="{max(bar * 0.8, 0.5):.1f}" '
                   f'height="{top + plot_h - y(v):.1f}" fill="{color}"><title>layer {i}: {v:,} B</title></rect>')
    step = max(1, round(n / 20))
    for i in range(0, n, step):
        out.append(f'<text x="{left + (i + 0.5) * bar:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{i}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">layer (the model\'s '
               'numbering)</text>')
    for value, label, color in ((report.lower_bound_bytes, "lower bound", "#2ca02c"), (budget, "budget", "#d62728")):
        if value:
            out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                       f'stroke="{color}" stroke-dasharray="5,4"/><text x="{width - right - 4}" '
                       f'y="{y(value) - 4:.1f}" text-anchor="end" fill="{color}">{label} {value:,} B</text>')
    out.append("</svg>")
    return "\n".join(out)


# --------------------------------------------------------------------------------------- renderers

def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    return ["| " + " | ".join(map(esc, head)) + " |", "|" + "|".join("---" for _ in head) + "|",
            *("| " + " | ".join(map(esc, r)) + " |" for r in rows), ""]


def _sections(c: ReportContent) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, in order."""
    out = [("Memory and plan", ["", ""], [list(r) for r in _summary(c)])]
    if _plans(c):
        out.append(("Plans weighed", ["plan", "arena bytes", "predicted instructions"], _plans(c)))
    out.append(("Flash", ["", ""], [list(r) for r in _flash(c)]))
    if c.boards:
        out.append(("Latency estimates", ["board", "core", "clock", "predicted instructions", "at one cycle each",
                                          "counted in QEMU"], _boards(c)))
    return out


def markdown(c: ReportContent, svg_name: str) -> str:
    lines = [f"# {c.title or c.report.model}", "", f"Generated by mcuforge {__version__}.", ""]
    for title, head, rows in _sections(c):
        lines += [f"## {title}", ""] + _md_table(head, rows)
        if title == "Memory and plan":
            lines += [f"![live memory per layer]({svg_name})", ""]
    if c.code_size:
        lines += ["## Code size", "", "```", *c.code_size, "```", ""]
    if c.validation:
        lines += ["## Validation", "", "```", *c.validation, "```", ""]
    head, rows = _layers(c)
    lines += ["## Layers", "", "Numbered as the model is; a patch stage's or a fused block's ops are counted under "
              "the layer they come from.", ""] + _md_table(head, rows)
    lines += [f"- {n}" for n in c.notes]
    return "\n".join(lines).rstrip() + "\n"


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    th = "".join(f"<th>{e(h)}</th>" for h in head) if any(head) else ""
    body = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table>{'<tr>' + th + '</tr>' if th else ''}{body}</table>"


def html_page(c: ReportContent) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(c.title or c.report.model)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:13px;text-align:left}th{background:#f3f3f3}pre{background:#f6f6f6;padding:8px}</style>",
             f"</head><body><h1>{e(c.title or c.report.model)}</h1><p>Generated by mcuforge {e(__version__)}.</p>"]
    for title, head, rows in _sections(c):
        parts.append(f"<h2>{e(title)}</h2>{_html_table(head, rows)}")
        if title == "Memory and plan":
            parts.append(memory_svg(c.report, c.sram_budget))
    if c.code_size:
        parts.append("<h2>Code size</h2><pre>" + e("\n".join(c.code_size)) + "</pre>")
    if c.validation:
        parts.append("<h2>Validation</h2><pre>" + e("\n".join(c.validation)) + "</pre>")
    head, rows = _layers(c)
    parts.append("<h2>Layers</h2><p>Numbered as the model is; a patch stage's or a fused block's ops are counted "
                 f"under the layer they come from.</p>{_html_table(head, rows)}")
    parts += [f"<p>{e(n)}</p>" for n in c.notes]
    return "".join(parts) + "</body></html>\n"


def write_report(path: str | os.PathLike, content: ReportContent) -> list[Path]:
    """Writes the report (HTML or markdown by the suffix; each file whole or not at all); returns the
    paths written."""
    target = check_report_path(path)
    if target.suffix.lower() in (".html", ".htm"):
        text = html_page(content)
        write_file_atomically(target, lambda f: f.write(text.encode()))
        return [target]
    svg = target.with_name(target.stem + "_memory.svg")
    svg_text = memory_svg(content.report, content.sram_budget)
    write_file_atomically(svg, lambda f: f.write(svg_text.encode()))
    text = markdown(content, svg.name)
    write_file_atomically(target, lambda f: f.write(text.encode()))
    return [target, svg]


__all__ = ["ReportContent", "REPORT_SUFFIXES", "board_rows", "check_report_path", "layer_predictions", "memory_svg",
           "write_report"]
