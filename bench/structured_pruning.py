"""Structured channel pruning, trained: what compress.channel_selection's modes cost and save on a CNN that
learned Fashion-MNIST, measured on the compiled C.

The baseline (compress.sweep's "tiny_cnn": three 3x3 convolutions of 32-64-128 channels, batch norm, ReLU,
global average pooling, a linear classifier) trains on a seeded subset of the training split and is
captured as a float IR graph. Each (amount, mode) prunes that graph (l1 importance), fine-tunes it with
quantization-aware training (Adam, lr 1e-3 on a cosine to 0, batches of 64; once per fine-tuning seed),
converts it to int8 and compiles it for the Cortex-M7 at -Os, layer by layer. The unpruned graph is
fine-tuned the same way. Measured: the test accuracy of the host build of the C on the whole test split
(mean over the fine-tuning seeds), MACs, parameters, peak SRAM (the compiled arena), flash (compile_model's
report, and the model as linked for the M7) and the Cortex-M7 instructions of one inference (QEMU plugin,
exact; needs arm-none-eabi-gcc and qemu-system-arm, else "-"), each also as a ratio of the unpruned
model's. --out writes the table and its reading as markdown.

    python bench/structured_pruning.py --out docs/structured_pruning.md   # ~18 minutes on 2 cores
    python bench/structured_pruning.py --quick                            # a smoke run, seconds
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mcuforge.compress.channel_selection import MODES, prune_channels  # noqa: E402
from mcuforge.compress.channels import channel_groups, param_count  # noqa: E402
from mcuforge.compress.sweep import baseline_network  # noqa: E402
from mcuforge.frontends.torch_capture import from_torch  # noqa: E402
from mcuforge.ir import Graph  # noqa: E402
from mcuforge.nas.deploy import Recipe, ir_layout, train_network  # noqa: E402
from mcuforge.nas.search_data import load_search_data  # noqa: E402
from mcuforge.pipeline import compile_model  # noqa: E402
from mcuforge.quant.ptq import quantize_input  # noqa: E402
from mcuforge.quant.qat import convert, prepare_qat  # noqa: E402
from mcuforge.targets.host import HostModel  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "fashion_mnist.npz"
CALIBRATION = 512  # training samples that seed the QAT ranges
FINE_TUNE_LR = 1e-3
BATCH = 64


@dataclass(frozen=True)
class Settings:
    train: int = 10_000  # training samples (a seeded subset)
    test: int | None = None  # test samples (None: the whole split)
    epochs: int = 10  # baseline training (SGD, cosine; nas.deploy.train_network)
    fine_tune: int = 2  # QAT epochs of every model, the unpruned one included
    seeds: tuple[int, ...] = (0, 1, 2)  # fine-tuning seeds (batch order)
    amounts: tuple[float, ...] = (0.25, 0.5, 0.75)
    modes: tuple[str, ...] = ("params", "flops", "memory", "uniform")
    seed: int = 0  # the training subset and the baseline's training


QUICK = Settings(train=256, test=128, epochs=1, fine_tune=1, seeds=(0,), amounts=(0.5,))


@dataclass
class Row:
    amount: float
    mode: str
    reached: float
    channels: tuple[int, ...]  # kept per prunable channel group
    accuracies: list[float] = field(default_factory=list)
    macs: int = 0
    params: int = 0
    sram: int = 0
    flash: int = 0  # compile_model's report
    elf_flash: int | None = None  # the model's code and constants as linked for the M7
    m7: int | None = None

    @property
    def aligned(self) -> bool:
        return all(c % 4 == 0 for c in self.channels)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.accuracies))


def fine_tune(graph: Graph, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> Graph:
    """QAT of a float graph on IR-layout samples (Adam, lr FINE_TUNE_LR decayed to 0 on a cosine); the int8
    graph."""
    torch.manual_seed(seed)
    qat = prepare_qat(graph, calibration=x[:CALIBRATION])
    optimizer = torch.optim.Adam(qat.parameters(), lr=FINE_TUNE_LR)
    xt, yt = torch.from_numpy(x), torch.from_numpy(np.asarray(y, np.int64))
    qat.train()
    steps, step = epochs * -(-len(x) // BATCH), 0
    for epoch in range(epochs):
        order = torch.from_numpy(np.random.default_rng((seed, epoch)).permutation(len(x)))
        for start in range(0, len(x), BATCH):
            idx = order[start:start + BATCH]
            for group in optimizer.param_groups:  # cosine decay to 0: the last steps settle the weights
                group["lr"] = 0.5 * FINE_TUNE_LR * (1 + math.cos(math.pi * step / steps))
            step += 1
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(qat(xt[idx]), yt[idx]).backward()
            optimizer.step()
    return convert(qat.eval())


def c_accuracy(int8: Graph, lib, x: np.ndarray, y: np.ndarray) -> float:
    outs = HostModel.build(lib).run_batch([[quantize_input(int8, s[None])] for s in x])
    return float(np.mean(np.array([int(np.argmax(o[0])) for o in outs]) == y))


def measure(row: Row, graph: Graph, data: dict, settings: Settings, target: str) -> Row:
    row.params = param_count(graph)
    for seed in settings.seeds:
        int8 = fine_tune(graph, data["x"], data["y"], settings.fine_tune, seed)
        compiled = compile_model(int8, "model", target=target, opt="-Os")
        row.accuracies.append(c_accuracy(int8, compiled.lib, data["x_test"], data["y_test"]))
        if seed == settings.seeds[0]:
            report = compiled.report
            row.macs, row.sram, row.flash = report.macs, report.sram_bytes, report.flash_bytes
            if target != "host":
                from mcuforge.targets.cortex_m import CortexMModel

                sample = quantize_input(int8, data["x_test"][0][None])
                model = CortexMModel.build(compiled.lib, "cortex-m7", "-Os")
                row.m7 = model.count_instructions_batch([[sample]])[0][0]
                size = model.size_report()
                row.elf_flash = size.code_bytes + size.const_bytes + size.weights_bytes + size.data_bytes
    return row


def ratio(value: int | None, base: int | None) -> str:
    return "-" if value is None or not base else f"{value / base:.3f}"


def cell(value: int | None, base: int | None) -> str:
    return "-" if value is None else f"{value:,} ({ratio(value, base)})"


def accuracy_cell(row: Row) -> str:
    each = " / ".join(f"{100 * a:.2f}" for a in row.accuracies)
    return f"{100 * row.accuracy:.2f}" + (f" ({each})" if len(row.accuracies) > 1 else "")


def table(base: Row, rows: list[Row]) -> list[str]:
    out = ["| amount | mode | channels | reached | test acc. % | Δ acc. pp | MACs | params | peak SRAM B | flash B "
           "(report) | flash B (M7 ELF) | M7 instructions |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in [base, *rows]:
        out.append(f"| {r.amount:.2f} | {r.mode} | {'-'.join(map(str, r.channels))} | {r.reached:.1%} | "
                   f"{accuracy_cell(r)} | {100 * (r.accuracy - base.accuracy):+.2f} | " + " | ".join(
                       cell(getattr(r, k), getattr(base, k)) for k in ("macs", "params", "sram", "flash", "elf_flash",
                                                                       "m7")) + " |")
    return out


def compare(a: Row, b: Row, error: float) -> int:
    """-1 / 1 when a is less / more accurate than b beyond the noise, else 0. With several fine-tuning seeds
    each: every seed of one below every seed of the other; with one: a gap over twice the binomial standard
    error `error` (0..1)."""
    if len(a.accuracies) > 1 and len(b.accuracies) > 1:
        return -1 if max(a.accuracies) < min(b.accuracies) else 1 if min(a.accuracies) > max(b.accuracies) else 0
    gap = a.accuracy - b.accuracy
    return 0 if abs(gap) <= 2 * error else int(np.sign(gap))


def per_mac_finding(base: Row, rows: list[Row]) -> list[str]:
    counted = [r for r in rows if r.m7 is not None and base.m7]
    if not counted:
        return []
    per_mac = {id(r): (r.m7 / r.macs) / (base.m7 / base.macs) for r in counted}
    out = ["- M7 instructions per MAC, relative to the unpruned model's: " + ", ".join(
        f"{r.mode} {r.amount:.2f} {per_mac[id(r)]:.2f}" for r in counted) + "."
           + (" In every pruned model M7 instructions fall less than MACs." if min(per_mac.values()) > 1 else "")]
    for k in (8, 4, 2):  # the coarsest channel multiple that separates fast models from slow ones
        fast = [per_mac[id(r)] for r in counted if all(c % k == 0 for c in r.channels)]
        slow = [per_mac[id(r)] for r in counted if not all(c % k == 0 for c in r.channels)]
        if len(fast) > 1 and len(slow) > 1 and max(fast) + 0.05 < min(slow):
            out.append(f"  Every model whose kept channel counts are all multiples of {k} runs at {min(fast):.2f} to "
                       f"{max(fast):.2f}, every other at {min(slow):.2f} to {max(slow):.2f}: consistent with int8 "
                       f"kernels slower per MAC on channel counts that are not multiples of {k}; there M7 "
                       "instructions fall less than MACs.")
            break
    return out


def findings(base: Row, rows: list[Row], tests: int) -> list[str]:
    """What the table says, computed from it (so that a rerun cannot contradict its own text)."""
    error = float(np.sqrt(base.accuracy * (1 - base.accuracy) / max(tests, 1)))
    out = []
    quantity = {"params": ("params", "parameters"), "flops": ("macs", "MACs"), "memory": ("sram", "peak SRAM")}
    for mode, (key, name) in quantity.items():
        mine = [r for r in rows if r.mode == mode]
        if mine:
            cuts = ", ".join(f"{1 - getattr(r, key) / getattr(base, key):.1%} at amount {r.amount:.2f}" for r in mine)
            out.append(f"- Mode {mode} cuts its own quantity, {name}, by {cuts}.")
    sram_cut: dict[str, list[str]] = {}
    for r in rows:
        sram_cut.setdefault(r.mode, []).append(f"{r.sram / base.sram:.2f}")
    out.append("- Peak SRAM ratio by mode (amounts " + ", ".join(f"{a:.2f}" for a in sorted({r.amount for r in rows}))
               + "): " + "; ".join(f"{m} {', '.join(v)}" for m, v in sram_cut.items()) + ".")
    out += per_mac_finding(base, rows)
    flashes = [r for r in [base, *rows] if r.elf_flash is not None]
    if flashes:
        ratios = [r.flash / r.elf_flash for r in flashes]
        if max(ratios) - min(ratios) < 0.005 and abs(ratios[0] - 1) < 0.01:
            out.append("- Flash: compile_model's report and the model's code and constants as linked for the M7 agree "
                       f"(within {100 * max(abs(q - 1) for q in ratios):.1f} %) on every model.")
        else:
            out.append(f"- Flash: compile_model's report is {min(ratios):.2f} to {max(ratios):.2f}x the model's code "
                       "and constants as linked for the M7; the ELF column is the flash a pruned model needs.")
    gaps = [max(r.accuracies) - min(r.accuracies) for r in [base, *rows] if len(r.accuracies) > 1]
    rule = ("every fine-tuning seed of one model below every seed of the other"
            if gaps else "a gap over twice the binomial standard error")
    out.append("- Noise: " + (f"fine-tuning seeds of one model differ by up to {100 * max(gaps):.2f} pp; "
                               if gaps else "") + f"the binomial standard error of one accuracy on {tests:,} test "
               f"samples is {100 * error:.2f} pp. One model counts as more accurate than another only with {rule}; "
               "else their accuracies count as similar.")
    return out + memory_versus_params(base, rows, error)


def memory_versus_params(base: Row, rows: list[Row], error: float) -> list[str]:
    """The claim: memory mode lowers the peak more than params mode at the same accuracy."""
    out, pairs = [], []
    for amount in sorted({r.amount for r in rows}):
        by = {r.mode: r for r in rows if r.amount == amount}
        if "memory" not in by or "params" not in by:
            continue
        m, p = by["memory"], by["params"]
        pairs.append((m, p))
        lower = "lowers the peak more" if m.sram < p.sram else "does not lower the peak more"
        versus = f"{100 * m.accuracy:.2f} % vs {100 * p.accuracy:.2f} %"
        acc = {0: f"at similar accuracy ({versus})", 1: f"and is more accurate ({versus})",
               -1: f"but is less accurate ({versus}, {100 * (p.accuracy - m.accuracy):.2f} pp)"}[compare(m, p, error)]
        out.append(f"- Same amount {amount:.2f}: memory mode's peak is {m.sram:,} B ({m.sram / base.sram:.2f} of the "
                   f"unpruned), params mode's {p.sram:,} B ({p.sram / base.sram:.2f}): memory mode {lower}, {acc}.")
    params = [r for r in rows if r.mode == "params"]
    matched = []
    for m in (r for r in rows if r.mode == "memory"):
        rivals = [p for p in params if compare(p, m, error) >= 0]
        if not rivals:
            out.append(f"- Matched on accuracy: every params-mode model is less accurate than memory mode at amount "
                       f"{m.amount:.2f} ({100 * m.accuracy:.2f} %).")
            continue
        best = min(rivals, key=lambda p: p.sram)
        matched.append((m, best))
        how = "as accurate" if compare(best, m, error) == 0 else "more accurate"
        out.append(f"- Matched on accuracy: memory mode at amount {m.amount:.2f} ({100 * m.accuracy:.2f} %, "
                   f"{m.sram:,} B) against the params-mode model with the lowest peak that is at least as accurate "
                   f"(amount {best.amount:.2f}, {100 * best.accuracy:.2f} %, {how}; {best.sram:,} B): memory mode's "
                   f"peak is {m.sram / best.sram:.2f} of it.")
    for amount in sorted({r.amount for r in rows}):
        by = {r.mode: r for r in rows if r.amount == amount}
        if "memory" in by and "uniform" in by:
            m, u = by["memory"], by["uniform"]
            acc = {0: "similar accuracy", 1: "higher accuracy", -1: "lower accuracy"}[compare(m, u, error)]
            out.append(f"- Against uniform pruning at amount {amount:.2f}: memory mode's peak {m.sram:,} B vs "
                       f"{u.sram:,} B, {acc} ({100 * m.accuracy:.2f} % vs {100 * u.accuracy:.2f} %).")
    if pairs:
        out += ["", verdict(base, rows, pairs, error)]
    return out


def verdict(base: Row, rows: list[Row], pairs: list[tuple[Row, Row]], error: float) -> str:
    """One paragraph: the claim at equal amounts, then at equal accuracy (what it is about), then caveats."""
    lower = sum(m.sram < p.sram for m, p in pairs)
    costs = [100 * (p.accuracy - m.accuracy) for m, p in pairs if compare(m, p, error) < 0]
    text = [f"**Verdict.** At equal amounts memory mode lowers the engine's peak more than params mode at {lower} of "
            f"the {len(pairs)} amounts, " + (f"and is less accurate at {len(costs)} of them ({min(costs):.1f} to "
                                             f"{max(costs):.1f} pp)." if costs else "at similar or better accuracy.")]
    params = [r for r in rows if r.mode == "params"]
    similar = [(m, p) for m in rows if m.mode == "memory" for p in params if compare(m, p, error) == 0]
    if similar:
        holds = all(m.sram < p.sram for m, p in similar)
        text.append("At the same accuracy, which is what the claim is about: " + "; ".join(
            f"memory mode at amount {m.amount:.2f} and params mode at {p.amount:.2f} are similarly accurate "
            f"({100 * m.accuracy:.2f} % vs {100 * p.accuracy:.2f} %) and memory mode's peak is {m.sram / p.sram:.2f} "
            f"of params mode's ({m.sram:,} B vs {p.sram:,} B)" for m, p in similar)
            + f". The claim {'holds' if holds else 'does not hold'} on this model ({len(similar)} matched "
            f"pair{'s' if len(similar) > 1 else ''}).")
    else:
        text.append("No memory-mode model has a params-mode model of similar accuracy among those measured, so the "
                    "claim is not tested at equal accuracy.")
    lowest = min(params, key=lambda p: p.sram)
    text.append(f"Params mode's peak never falls below {lowest.sram / base.sram:.2f} of the unpruned (amount "
                f"{lowest.amount:.2f}): it keeps {min(p.channels[0] for p in params)} or more of the first "
                f"convolution's {base.channels[0]} channels, which hold few parameters but are live at the peak.")
    uniform = {r.amount: r for r in rows if r.mode == "uniform"}
    for m in (r for r in rows if r.mode == "memory"):
        u = uniform.get(m.amount)
        if u is not None and m.sram >= u.sram and compare(m, u, error) < 0:
            text.append(f"Caveat: at amount {m.amount:.2f} memory mode keeps {m.channels[0]} of the first "
                        f"convolution's {base.channels[0]} channels and is less accurate than uniform pruning at a "
                        f"peak no lower ({100 * m.accuracy:.2f} % vs {100 * u.accuracy:.2f} %): its per-group ratios "
                        "(up to MAX_RATIO) can strip the layer that sets the peak too far.")
    return " ".join(text)


def markdown(base: Row, rows: list[Row], settings: Settings, info: dict) -> str:
    seeds = ", ".join(str(s) for s in settings.seeds)
    lines = [
        "# Structured channel pruning on a trained CNN",
        "",
        "Generated by `bench/structured_pruning.py` (do not edit by hand):",
        "",
        f"    {info['command']}",
        "",
        f"Data: {info['data']}: {settings.train:,} training samples (a permutation with seed {settings.seed}), "
        f"{info['test']:,} test samples "
        f"({'the whole test split' if settings.test is None else 'the first of the test split'})."
        f" Baseline: compress.sweep's tiny_cnn (3x3 convolutions of 32-64-128 channels, batch norm, ReLU, global "
        f"average pooling, linear; initial weights of seed {settings.seed}), {settings.epochs} epoch(s) of SGD "
        f"(nas.deploy.train_network, seed {settings.seed}), "
        f"float test accuracy {100 * info['float_accuracy']:.2f} %, captured with from_torch (batch norm folded).",
        "",
        f"Each row: `prune_channels(graph, amount, mode=mode, importance=\"l1\")` on the trained float graph, then "
        f"{settings.fine_tune} epoch(s) of quantization-aware training (prepare_qat calibrated on {CALIBRATION} "
        f"training samples, Adam at lr {FINE_TUNE_LR:g} decayed to 0 on a cosine, batches of {BATCH}) per "
        f"fine-tuning seed ({seeds}), "
        f"convert to int8, compile_model(target=\"{info['target']}\", opt=\"-Os\", layer by layer). The unpruned "
        "model (amount 0) is fine-tuned the same way.",
        "",
        "Measured: test acc. = the host build of the generated C on the test samples (mean over the fine-tuning "
        "seeds; each seed in parentheses), Δ acc. = against the unpruned row; reached = the reduction of the "
        "mode's own quantity that prune_channels reports (uniform: channels); MACs, peak SRAM (the arena) and "
        "flash (weights + code at -Os) from compile_model's report; params = constants of the pruned float graph; "
        "flash (M7 ELF) = the model's code and constants as linked for the Cortex-M7 (arm-none-eabi, -Os, unused "
        "sections dropped); M7 instructions = one inference (the first test sample) counted exactly in QEMU "
        "(Cortex-M7, -Os); channels = the channels each prunable group keeps (the three convolutions). In "
        "parentheses: the ratio to the unpruned model.",
        "",
        *table(base, rows),
        "",
        "## What the numbers say",
        "",
        *findings(base, rows, info["test"]),
        "",
        f"Run time: {info['seconds'] / 60:.1f} min ({info['machine']}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA), help="an .npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--out", help="write the markdown here")
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke run")
    parser.add_argument("--seed", type=int, default=0, help="training subset and baseline training")
    parser.add_argument("--amounts", help="comma-separated (default 0.25,0.5,0.75)")
    parser.add_argument("--modes", help=f"comma-separated, of {','.join(MODES)}")
    args = parser.parse_args(argv)
    settings = replace(QUICK if args.quick else Settings(), seed=args.seed)
    if args.amounts:
        settings = replace(settings, amounts=tuple(float(a) for a in args.amounts.split(",")))
    if args.modes:
        modes = tuple(args.modes.split(","))
        if set(modes) - set(MODES):
            parser.error(f"--modes {args.modes}: choose from {', '.join(MODES)}")
        settings = replace(settings, modes=modes)
    torch.set_num_threads(1)
    start = time.time()
    target = "cortex-m7"
    from mcuforge.targets.cortex_m import toolchain_missing

    missing = toolchain_missing()
    if missing:
        print(f"no Cortex-M7 code size or instruction counts: {missing}", file=sys.stderr)
        target = "host"

    loaded = load_search_data(args.data)
    subset = np.random.default_rng(settings.seed).permutation(len(loaded.x_train))[:settings.train]
    x, y = loaded.x_train[subset], loaded.y_train[subset]
    x_test, y_test = loaded.x_test[:settings.test], loaded.y_test[:settings.test]
    print(f"seed {settings.seed}: {len(x):,} training and {len(x_test):,} test samples of {args.data}", flush=True)
    model = baseline_network("tiny_cnn", loaded, 0.35, seed=settings.seed)
    train_network(model, x, y, Recipe(epochs=settings.epochs, qat_epochs=0, seed=settings.seed))
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(x_test[i:i + 1000])) for i in range(0, len(x_test), 1000)])
    float_accuracy = float((logits.argmax(1).numpy() == y_test).mean())
    graph = from_torch(model, torch.from_numpy(x[:1]))
    data = {"x": ir_layout(x), "y": y, "x_test": ir_layout(x_test), "y_test": y_test}
    print(f"baseline trained ({settings.epochs} epochs): float test accuracy {100 * float_accuracy:.2f} % "
          f"[{time.time() - start:.0f} s]", flush=True)

    full = tuple(g.channels for g in channel_groups(graph) if g.prunable)
    base = measure(Row(0.0, "unpruned", 0.0, full), graph, data, settings, target)
    print(f"unpruned: {100 * base.accuracy:.2f} %, {base.macs:,} MACs, {base.params:,} params, peak SRAM "
          f"{base.sram:,} B, M7 {base.m7} [{time.time() - start:.0f} s]", flush=True)
    rows = []
    for amount in settings.amounts:
        for mode in settings.modes:
            pruned, report = prune_channels(graph, amount, mode=mode, importance="l1")
            kept = tuple(g.after for g in report.groups)
            row = measure(Row(amount, mode, report.reached, kept), pruned, data, settings, target)
            rows.append(row)
            print(f"{amount:.2f} {mode}: {100 * row.accuracy:.2f} %, MACs {ratio(row.macs, base.macs)}, params "
                  f"{ratio(row.params, base.params)}, SRAM {ratio(row.sram, base.sram)}, M7 {ratio(row.m7, base.m7)} "
                  f"[{time.time() - start:.0f} s]", flush=True)
    print()
    print("\n".join(table(base, rows)))
    print()
    print("\n".join(findings(base, rows, len(x_test))))
    if args.out:
        command = "python bench/structured_pruning.py " + " ".join(argv if argv is not None else sys.argv[1:])
        info = {"command": command.strip(), "data": Path(args.data).name, "test": len(x_test), "target": target,
                "float_accuracy": float_accuracy, "seconds": time.time() - start,
                "machine": f"{os.cpu_count()} cores, one torch thread"}
        Path(args.out).write_text(markdown(base, rows, settings, info))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
