"""Human-readable reports (rich tables) for the CLI."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import shown

from ..pipeline import MemoryReport
from ..verify import VerifyResult


def _name(text: str) -> str:
    """A model's name for a title: escaped for the terminal (no control characters) and for rich markup."""
    return escape(shown(text)[1:-1])


def kib(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KiB)"


def print_memory(report: MemoryReport, console: Console) -> None:
    peak = report.peak_model_layer
    ratio = report.arena_bytes / report.lower_bound_bytes if report.lower_bound_bytes else 1.0
    t = Table(title=f"{_name(report.model)}: memory", show_header=False, title_justify="left")
    t.add_row("peak SRAM (arena, scratch included)", kib(report.sram_bytes)
              + ("  (input in your buffer, not counted)" if report.external_inputs else ""))
    if report.state_bytes:
        t.add_row("of which state kept between invokes", kib(report.state_bytes))
    t.add_row("lower bound (largest live set)", f"{kib(report.lower_bound_bytes)}  plan/bound = {ratio:.3f}")
    t.add_row("peak set by", f"layer {peak.index} {peak.kind} {escape(shown(peak.name))}"
              + (f" ({escape(report.peak_layer.kind)}, op {report.peak_step} of the {len(report.layers)} run)"
                 if len(report.layers) != len(report.model_layers) and report.model_layers else ""))
    t.add_row("execution", escape(report.schedule))
    if report.plan_choice:
        t.add_row("plan chosen for", escape(report.plan_choice["reason"]))
    t.add_row("flash: weights, biases, requant constants", kib(report.flash_weights_bytes))
    packed = {fmt: row for fmt, row in report.weight_formats.items() if fmt != "int8"}
    if packed:
        t.add_row("of which weights by format", "; ".join(
            f"{fmt}: {row['tensors']} tensors, {row['bytes']:,} B (as int8 {row['int8_bytes']:,} B)"
            for fmt, row in sorted(packed.items())))
    if report.flash_code_bytes is not None:
        t.add_row("flash: model code and its tables", f"{kib(report.flash_code_bytes)}  ({report.flash_code_build}, "
                  "arm-none-eabi-size)")
        t.add_row("flash in all", kib(report.flash_bytes))
    else:
        t.add_row("flash: model code", "not counted (compile --target cortex-m7, or --board, measures it)")
    t.add_row("MACs", f"{report.macs:,}" + (f" (+{100 * report.extra_macs_ratio:.1f} % recomputed halos)"
                                            if report.extra_macs_ratio else ""))
    inplace = sum(r.inplace for r in report.layers)
    if report.model_layers and len(report.model_layers) != len(report.layers):
        t.add_row("layers", f"{len(report.model_layers)} in the model, {len(report.layers)} ops run ({inplace} in place)")
    else:
        t.add_row("layers", f"{len(report.layers)} ({inplace} in place)")
    console.print(t)


def print_layers(report: MemoryReport, console: Console) -> None:
    """The model's own layers, numbered as the model is; a patch stage's or a fused block's ops are
    counted under the layer they come from."""
    if not report.model_layers:
        return print_ops(report, console)
    peak = report.source[report.peak_step]
    t = Table(title=f"{_name(report.model)}: layers ({escape(report.schedule)})", title_justify="left")
    for col in ("#", "op", "output shape", "MACs run", "params", "live bytes", "ops run", "note"):
        t.add_column(col, justify="right" if col in ("#", "MACs run", "params", "live bytes", "ops run") else "left")
    for r in report.model_layers:
        note = ["[bold red]peak[/]"] if r.index == peak else []
        note += [escape(r.how)] if r.how else []
        t.add_row(str(r.index), r.kind, "x".join(map(str, r.out_shape)) or "scalar", f"{r.macs:,}",
                  f"{r.params:,}", f"{r.live_bytes:,}", str(r.ops), ", ".join(note))
    console.print(t)


def print_ops(report: MemoryReport, console: Console) -> None:
    """Every op run, in the order it runs (a patch stage's layers once per patch)."""
    t = Table(title=f"{_name(report.model)}: ops run", title_justify="left")
    cols = ("#", "layer", "op", "output shape", "MACs", "params", "live bytes", "note")
    for col in cols:
        t.add_column(col, justify="right" if col in ("#", "layer", "MACs", "params", "live bytes") else "left")
    for r in report.layers:
        note = []
        if r.index == report.peak_step:
            note.append("[bold red]peak[/]")
        if r.inplace:
            note.append("in place")
        layer = str(report.source[r.index]) if report.source else str(r.index)
        t.add_row(str(r.index), layer, r.kind, "x".join(map(str, r.out_shape)) or "scalar", f"{r.macs:,}",
                  f"{r.params:,}", f"{r.live_bytes:,}", ", ".join(note))
    console.print(t)


def print_verify(result: VerifyResult, console: Console) -> None:
    engines = "C, reference" + (" and TFLM" if result.tflm_checked else " (TFLM not installed: pip install tflite-micro)")
    if result.ok:
        console.print(f"[green]bit-exact[/]: {engines} agree on all {result.samples} inputs")
        return
    console.print(f"[red]MISMATCH[/]: {len(result.mismatches)} difference(s) over {result.samples} inputs ({engines})")
    for m in result.mismatches[:10]:
        console.print(f"  input {m.sample}: {m.engines}: first differing layer {escape(m.layer)}, "
                      f"max |diff| {m.max_abs_diff:g}")
