"""Latency and code-size oracles of the NAS: measure random MCUNet networks on Cortex-M4/M7, fit, evaluate.

    python bench/latency.py measure  [--set train|eval] [--n N] [--seed S] [--jobs 2] [--core ...]
    python bench/latency.py fit      [--n N] [--seed S]            -> src/mcuforge/nas/*_table.json
    python bench/latency.py evaluate [--n 30] [--seed S]           -> docs/latency.md
    python bench/latency.py all      (measure train and eval, fit, evaluate)

A network set is `--n` random networks of MCUNet's search space (mcuforge.nas.mcunet), drawn from
`--seed`: two thirds 2-D images (W in 0.2..1.0, R in 48..224, 3 channels, 1000 or 10 classes), one third
1-D signals (W in 0.2..1.0, 6 sensor channels, 128..512 samples, 10 or 5 classes); a draw whose flash or
peak SRAM (nas.estimate) would not fit QEMU's 4 MiB MPS2 memories is drawn again. The training set
(seed 1) and the evaluation set (seed 2) never share a network.

Each network goes through compile_model(to_graph(spec)) (strategy "layer") and, per core, the normal
-O2 build (bench.SPEED_OPT: instructions of one <name>_invoke counted by the QEMU plugin, and its code
size) and the -Os build (code size) with arm-none-eabi-gcc; training networks also get the trace build at
-O2, whose per-layer marks give each layer's instructions. Every network runs on the same seeded random
input (bench.SEED). Measurements are appended to out/latency/measurements.jsonl, one JSON line per
network, and reused by every later command (a killed run resumes; delete the file to measure again).
Building dominates: about a minute per training network and half that per evaluation network on one
core; --jobs runs networks in parallel.

`fit` fits nas.latency's per-layer coefficients (non-negative least squares per kernel class on the trace
builds' per-layer counts; see `weight`) and nas.codesize's (non-negative least squares on the networks'
.text, relative errors), and writes the tables the package loads. `evaluate` predicts the evaluation set
from its layer records alone and writes docs/latency.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mcuforge.nas.layers import Layer  # noqa: E402

OUT = ROOT / "out" / "latency"
CACHE = OUT / "measurements.jsonl"
DOC = ROOT / "docs" / "latency.md"
CORES = ("cortex-m4", "cortex-m7")
OPTS = ("-Os", "-O2")
SETS = {"train": 1, "eval": 2}  # default seed of each set
DEFAULT_N = {"train": 48, "eval": 30}
TRACED_SETS = ("train",)  # sets measured layer by layer too (a trace build per core)
MAX_BYTES = 3 * 1024 * 1024  # flash and peak SRAM a network may take (QEMU's MPS2: 4 MiB each)
IMAGE_CLASSES = (1000, 1000, 10)
SIGNAL_CLASSES = (10, 5)
SIGNAL_CHANNELS = 6
SIGNAL_SAMPLES = tuple(range(128, 513, 32))


# ------------------------------------------------------------------------------------ the networks

def draw(seed: int, index: int):
    """Network `index` of the set drawn from `seed`: (a description dict, the NetworkSpec)."""
    from mcuforge.nas.cost import estimate
    from mcuforge.nas.mcunet import RESOLUTIONS, WIDTHS, SearchSpace

    rng = random.Random(seed * 1_000_003 + index)
    signal = index % 3 == 2
    while True:
        width = rng.choice(WIDTHS)
        if signal:
            space = SearchSpace(width, rng.choice(SIGNAL_SAMPLES), channels=SIGNAL_CHANNELS,
                                classes=rng.choice(SIGNAL_CLASSES), signal=True)
        else:
            space = SearchSpace(width, rng.choice(RESOLUTIONS), classes=rng.choice(IMAGE_CLASSES))
        arch = space.sample(rng)
        spec = space.network(arch)
        est = estimate(spec)
        if est.flash_bytes <= MAX_BYTES and est.peak_sram_bytes <= MAX_BYTES:
            break
    desc = {"width": space.width, "resolution": space.resolution, "channels": space.channels,
            "classes": space.classes, "signal": space.signal, "depths": list(arch.depths),
            "kernels": list(arch.kernels), "expands": list(arch.expands), "macs": est.macs}
    return desc, spec


def name_of(desc: dict) -> str:
    kind = "1d" if desc["signal"] else "2d"
    return f"{kind}-w{desc['width']:g}-r{desc['resolution']}-c{desc['classes']}-d{''.join(map(str, desc['depths']))}"


# ---------------------------------------------------------------------------------------- measuring

_CALL = re.compile(r"/\* (\d+): [A-Z_0-9]+ [^\n]*?\*/\n\s*(?:\{\s*)?([a-z_0-9]+)\(")


def _kernel_calls(source: str, n_layers: int) -> list[str]:
    """The kernel function each layer calls in the generated <name>.c (diagnostics only)."""
    calls = [""] * n_layers
    for m in _CALL.finditer(source):
        i = int(m.group(1))
        if i < n_layers and not calls[i]:
            calls[i] = m.group(2)
    return calls


def measure_one(set_name: str, seed: int, index: int, cores: tuple[str, ...]) -> dict:
    """Every measurement of one network (the build folders are removed afterwards)."""
    from mcuforge.targets.bench import SEED, SPEED_OPT
    from mcuforge.nas.layers import layers_of
    from mcuforge.nas.space import to_graph
    from mcuforge.pipeline import compile_model
    from mcuforge.targets.cortex_m import CortexMModel
    from mcuforge.verify import random_inputs

    start = time.time()
    desc, spec = draw(seed, index)
    compiled = compile_model(to_graph(spec))
    layers = layers_of(compiled.graph, compiled.plan)
    inputs = random_inputs(compiled.graph, 1, seed=SEED)[0]
    record = {"set": set_name, "seed": seed, "index": index, "name": name_of(desc), "desc": desc,
              "macs": compiled.report.macs, "arena_bytes": compiled.report.arena_bytes,
              "layers": [asdict(layer) for layer in layers],
              "calls": _kernel_calls(compiled.lib.files[f"{compiled.lib.name}.c"], len(layers)), "cores": {}}
    for core in cores:
        out: dict = {}
        builds = []
        if set_name in TRACED_SETS:
            trace = CortexMModel.build(compiled.lib, core, SPEED_OPT, trace=True)
            builds.append(trace)
            out["layers"] = trace.count_layer_instructions(inputs)
            if len(out["layers"]) != len(layers):
                raise RuntimeError(f"{record['name']}: {len(out['layers'])} layer marks for {len(layers)} layers")
        normal = CortexMModel.build(compiled.lib, core, SPEED_OPT)
        builds.append(normal)
        out["total"] = normal.count_instructions(inputs)
        out["size"] = {SPEED_OPT: normal.size_report().as_json()}
        small = CortexMModel.build(compiled.lib, core, "-Os")
        builds.append(small)
        out["size"]["-Os"] = small.size_report().as_json()
        for b in builds:
            shutil.rmtree(b.artifact.folder, ignore_errors=True)
        record["cores"][core] = out
    record["seconds"] = round(time.time() - start, 1)
    return record


def load(cache: Path = CACHE) -> dict[tuple[str, int, int], dict]:
    records: dict[tuple[str, int, int], dict] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                records[(r["set"], r["seed"], r["index"])] = r
    return records


def measured(set_name: str, seed: int, n: int, cache: Path = CACHE) -> list[dict]:
    """The set's first n networks from the cache (missing ones are an error: run `measure` first)."""
    records = load(cache)
    missing = [i for i in range(n) if (set_name, seed, i) not in records]
    if missing:
        raise SystemExit(f"{len(missing)} of the {n} '{set_name}' networks (seed {seed}) are not measured yet: "
                         f"python bench/latency.py measure --set {set_name} --seed {seed} --n {n}")
    return [records[(set_name, seed, i)] for i in range(n)]


def measure(set_name: str, seed: int, n: int, jobs: int, cores: tuple[str, ...], cache: Path = CACHE) -> None:
    done = load(cache)
    todo = [i for i in range(n) if (set_name, seed, i) not in done]
    print(f"{set_name} (seed {seed}): {n - len(todo)} of {n} networks cached, measuring {len(todo)} "
          f"with {jobs} jobs", flush=True)
    if not todo:
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with ProcessPoolExecutor(jobs) as pool, cache.open("a") as f:
        futures = {pool.submit(measure_one, set_name, seed, i, cores): i for i in todo}
        for k, fut in enumerate(as_completed(futures), 1):
            record = fut.result()
            f.write(json.dumps(record) + "\n")
            f.flush()
            print(f"  [{k}/{len(todo)}] #{record['index']} {record['name']}: {len(record['layers'])} layers, "
                  f"{record['macs']:,} MACs, {record['seconds']} s ({time.time() - start:.0f} s in all)", flush=True)


def layers_from(record: dict) -> list[Layer]:
    return [Layer(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}) for d in record["layers"]]


def cores_in(records: list[dict]) -> tuple[str, ...]:
    """The cores every record was measured on (`measure --core` can leave one out)."""
    return tuple(c for c in CORES if records and all(c in r["cores"] for r in records))


def records_iter(records: list[dict], core: str) -> Iterator[tuple[dict, list[Layer], dict]]:
    for r in records:
        if core in r["cores"]:
            yield r, layers_from(r), r["cores"][core]


# ------------------------------------------------------------------------------------------ fitting

MIN_SUPPORT = 5  # layers in which a feature must be nonzero for a class to fit its own coefficient
MIN_ROWS = 12  # layers a class needs to get coefficients of its own (else its parent's serve)


def _nnls(x, y, w):
    """Non-negative least squares of w * (x @ c - y), columns scaled for conditioning."""
    import numpy as np
    from scipy.optimize import nnls

    if x.shape[1] == 0:
        return np.zeros(0)
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls((x / scale) * w[:, None], y * w, maxiter=50 * x.shape[1] + 1000)
    return coef / scale


def _fit_level(rows: list[tuple], parent=None):
    """Coefficients for one class: features with enough support are fitted, the others take `parent`'s."""
    import numpy as np

    x = np.array([r[0] for r in rows], float)
    y = np.array([r[1] for r in rows], float)
    w = np.array([r[2] for r in rows], float)
    support = (x != 0).sum(axis=0)
    free = support >= (MIN_SUPPORT if parent is not None else 1)
    coef = np.zeros(x.shape[1]) if parent is None else np.array(parent, float)
    coef[free] = 0.0
    rest = y - x[:, ~free] @ coef[~free]
    coef[free] = _nnls(x[:, free], rest, w)
    return coef


def _round(c: float) -> float:
    return float(f"{c:.7g}")


def weight(count: int, total: int) -> float:
    """A layer's weight in the least squares: 1 / sqrt(its count x its network's total), between equal
    relative errors per layer (1 / count) and per network (1 / total; cross-validation on the training set
    gave the lowest worst and mean error of the totals with this one)."""
    return 1.0 / (max(count, 1) * total) ** 0.5


def fit_latency(records: list[dict]) -> dict:
    """nas.latency's table: per core, the trace-to-normal build scale and per class its coefficients."""
    from collections import defaultdict

    from mcuforge.nas import latency as lat

    out = {"about": "Cortex-M instructions per layer, fitted by bench/latency.py on the QEMU plugin's "
                    "per-layer counts of -O2 builds (docs/latency.md)",
           "networks": len(records), "features": lat.FEATURES, "cores": {}}
    for core in cores_in(records):
        by_key: dict[str, list[tuple]] = defaultdict(list)
        generic: list[tuple] = []
        ratios = []
        for r, layers, m in records_iter(records, core):
            total = sum(m["layers"])
            ratios.append(m["total"] / total)
            for layer, spent, n in zip(layers, lat.spent_flags(layers), m["layers"]):
                _, feats = lat.features(layer, spent)
                row = (feats, n, weight(n, total))
                for key in lat.class_keys(layer):
                    by_key[key].append(row)
                generic.append((lat.generic_features(layer), n, weight(n, total)))
        classes = {"generic": [_round(c) for c in _fit_level(generic)]}
        for pipes in (0, 1, 3):  # path, path|activation, path|activation|window|stride
            for key, rows in sorted(by_key.items()):
                if key.count("|") != pipes or key in classes:
                    continue
                parent = classes.get(key.rsplit("|", 1 if pipes == 1 else 2)[0]) if pipes else None
                if pipes and (parent is None or len(rows) < MIN_ROWS):
                    continue
                classes[key] = [_round(c) for c in _fit_level(rows, parent)]
        out["cores"][core] = {"scale": statistics.fmean(ratios), "classes": classes}
    return out


def fit_codesize(records: list[dict]) -> dict:
    """nas.codesize's table: per core and -O level, the coefficients of its network features."""
    import numpy as np

    from mcuforge.nas import codesize as cs

    out = {"about": "Cortex-M .text of the model's code, fitted by bench/latency.py on arm-none-eabi-size "
                    "reports (docs/latency.md)", "networks": len(records), "cores": {}}
    for core in cores_in(records):
        out["cores"][core] = {}
        for opt in cs.OPTS:
            x, y = [], []
            for r, layers, m in records_iter(records, core):
                x.append(cs.network_features(layers, opt))
                y.append(m["size"]["-" + opt]["code_bytes"])
            x, y = np.array(x, float), np.array(y, float)
            coef = _nnls(x, y, 1.0 / y)
            out["cores"][core][opt] = [_round(c) for c in coef]
    out["features"] = {opt: cs.feature_names(opt) for opt in cs.OPTS}
    return out


def _write_json(path: Path, data: dict) -> None:
    """Indented JSON with each innermost list on one line (a coefficient row, a feature list)."""
    text = json.dumps(data, indent=1)
    text = re.sub(r"\[\s*([^\[\]{}]*?)\s*\]", lambda m: "[" + ", ".join(
        v.strip() for v in m.group(1).split(",\n")) + "]", text)
    path.write_text(text + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


def fit_all(records: list[dict]) -> None:
    from mcuforge.nas import codesize
    from mcuforge.nas import latency as lat

    nas = ROOT / "src" / "mcuforge" / "nas"
    _write_json(nas / lat.TABLE, fit_latency(records))
    _write_json(nas / codesize.TABLE, fit_codesize(records))
    lat.clear_caches()
    codesize.table.cache_clear()
    for core in cores_in(records):
        errs = [e for e, *_ in _latency_errors(records, core)]
        print(f"{core}: in-sample error of the totals: worst {max(map(abs, errs)):.2%}, "
              f"mean |error| {statistics.fmean(map(abs, errs)):.2%}")


# ---------------------------------------------------------------------------------------- evaluating

def _latency_errors(records: list[dict], core: str) -> list[tuple[float, dict, int, int]]:
    """(relative error, record, predicted, measured) of each network's total on `core`."""
    from mcuforge.nas.latency import predict_instructions

    rows = []
    for r, layers, m in records_iter(records, core):
        pred = predict_instructions(layers, core)
        rows.append((pred / m["total"] - 1, r, pred, m["total"]))
    return rows


def _size_errors(records: list[dict], core: str, opt: str) -> list[tuple[float, dict, int, int]]:
    from mcuforge.nas.codesize import code_bytes

    rows = []
    for r, layers, m in records_iter(records, core):
        meas = m["size"]["-" + opt]["code_bytes"]
        pred = code_bytes(layers, core, opt)
        rows.append((pred / meas - 1, r, pred, meas))
    return rows


def _per_path_errors(records: list[dict], core: str) -> list[tuple[str, int, float, float, float]]:
    """Per kernel path on per-layer (trace) data: (path, layers, share of instructions, error of the
    path's sum, mean |error| per layer weighted by instructions)."""
    from collections import defaultdict

    from mcuforge.nas import latency as lat

    acc: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    everything = 0
    for r, layers, m in records_iter(records, core):
        if "layers" not in m:
            continue
        for layer, spent, n in zip(layers, lat.spent_flags(layers), m["layers"]):
            p = lat.layer_prediction(layer, core, spent)
            a = acc[lat.kernel_path(layer)]
            a[0] += 1
            a[1] += n
            a[2] += p
            a[3] += abs(p - n)
            everything += n
    return [(path, int(a[0]), a[1] / everything, a[2] / a[1] - 1, a[3] / a[1])
            for path, a in sorted(acc.items(), key=lambda kv: -kv[1][1])]


def _summary(errs: list[float]) -> str:
    worst = max(errs, key=abs)
    return f"worst {worst:+.2%}, mean |error| {statistics.fmean(map(abs, errs)):.2%}"


def evaluate_all(records: list[dict], train: list[dict] | None = None, doc: Path = DOC) -> dict:
    """Errors on the evaluation set (and in-sample on `train`), printed and written to docs/latency.md."""
    from mcuforge.nas import codesize

    result: dict = {"latency": {}, "size": {}}
    for core in cores_in(records):
        rows = _latency_errors(records, core)
        errs = [e for e, *_ in rows]
        result["latency"][core] = rows
        print(f"{core} instructions, {len(rows)} networks: {_summary(errs)}")
        for opt in codesize.OPTS:
            srows = _size_errors(records, core, opt)
            result["size"][(core, opt)] = srows
            print(f"{core} code -{opt}, {len(srows)} networks: {_summary([e for e, *_ in srows])}")
    doc.write_text(_markdown(records, result, train))
    print(f"wrote {doc.relative_to(ROOT)}")
    return result


# ------------------------------------------------------------------------------------------ the doc

def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("--:" if a == "r" else "---" for a in align) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _versions() -> str:
    import subprocess

    out = []
    for cmd in (["arm-none-eabi-gcc", "--version"], ["qemu-system-arm", "--version"]):
        try:
            out.append(subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.splitlines()[0])
        except (OSError, IndexError):
            out.append(f"{cmd[0]}: not installed")
    return "; ".join(out)


def _set_line(records: list[dict]) -> str:
    two = [r for r in records if not r["desc"]["signal"]]
    one = [r for r in records if r["desc"]["signal"]]
    macs = sorted(r["macs"] for r in records)
    layers = sorted(len(r["layers"]) for r in records)
    return (f"{len(records)} networks ({len(two)} 2-D, {len(one)} 1-D), {macs[0] / 1e6:.1f} to "
            f"{macs[-1] / 1e6:.0f} M MACs, {layers[0]} to {layers[-1]} layers")


def _markdown(records: list[dict], result: dict, train: list[dict] | None) -> str:
    from mcuforge.nas import codesize

    lines = [
        "# Latency and code-size oracles of the NAS",
        "",
        "Generated by `python bench/latency.py evaluate` (measure and fit first: `python bench/latency.py all`). "
        "The NAS predicts, from a network's layer records alone (`nas.layers.Layer`: kind, shapes, window, stride, "
        "activation, the kernel variant the planner chose, in place, MACs), what the engine's code does on a "
        "Cortex-M4 or Cortex-M7:",
        "",
        "- `nas.latency.predict_instructions(layers, core)`: instructions of one inference of the -O2 build "
        "(`bench.SPEED_OPT`), as the QEMU plugin counts them inside `<name>_invoke`; "
        "`layer_instructions(layers, core)` per layer; `estimate_ms(layers, board)` divides by the board's "
        "clock (one cycle per instruction: an estimate, as the CLI's board estimate says).",
        "- `nas.codesize.code_bytes(layers, core, opt='Os')`: `.text` of the model's code (`SizeReport.code_bytes`: "
        "the `<name>.c` invoke function with its layer bodies and the kernels it pulls in; not the weights) "
        "as linked (the linker map), at -Os (what firmware builds often use) or -O2.",
        "",
        "## How",
        "",
        "Each layer is mapped to the kernel path the engine runs (`nas.latency.kernel_path`: the pointwise GEMM, "
        "im2col, the depthwise plane kernel, the row-by-row depthwise kernel, the plain in-place depthwise "
        "kernel, ADD, pooling, fully connected, softmax, aliases) and to counts of that path's work, computed "
        "from the shapes the way the kernel's loops run (`nas.latency.FEATURES`): e.g. for a pointwise "
        "convolution the pixels that go three or four at a time through the column GEMM (and the rest, in "
        "pairs, with or without the column: without the planner's scratch the column borrows the output's "
        "unwritten end), the SMLAD steps and inner-loop iterations over the depth, the filters "
        "requantized; for the depthwise plane kernel the padded plane, the channel copies, the output blocks of up "
        "to 8 and the plane words each block's window rows load. Instructions are linear in those counts "
        "with non-negative coefficients per class (path, activation, window, stride; a class with too few "
        "layers, or a count a class never exercised, takes its path's pooled coefficients; an operator "
        "outside these paths a generic MACs-and-elements model), fitted by non-negative least squares on "
        "the per-layer counts of trace builds (a hook after every layer), each layer weighted by "
        "1 / sqrt(its count x its network's total); one factor per core (the mean ratio of the "
        "normal build's total to the trace build's, 0.996 to 1.004 per network) turns them into counts of "
        "the normal build. Predicting a network takes about a millisecond in Python (layers memoised).",
        "",
        "Code size: at -O2 and at -Os alike every layer gets its own inlined, shape-specialised copy of its "
        "kernels (runtime/mcu_build.h keeps them specialised at -Os; -Os compiles the copies for size), so the "
        "model is a fixed part, a part per kernel path used once or more than once, and per layer a part that "
        "follows what the compiler keeps and unrolls: which of the pointwise kernel's pixel loops run at all "
        "(literal trip counts let it drop the others), its depth remainder, the depthwise plane kernel's "
        "distinct output blocks and window rows; and the pointwise kernel's spent-input and borrowed-column "
        "loops when some layer needs them. The size is what the linker keeps (the map's input sections). "
        "Fitted by non-negative least squares on the networks' totals, relative errors, one set of "
        "coefficients per level. (-DMCU_SMALL_CODE, one shared copy of each kernel, is not modelled.)",
        "",
        "Networks: random architectures of MCUNet's search space (`nas.mcunet.SearchSpace.sample`): two "
        "thirds 2-D images (W in 0.2..1.0, R in 48..224, 1000 or 10 classes), one third 1-D signals (W in "
        f"0.2..1.0, {SIGNAL_CHANNELS} channels, 128..512 samples, 10 or 5 classes), compiled with "
        "`compile_model(to_graph(spec))` (strategy \"layer\"), all run on the same seeded random input "
        "(`bench.SEED`); draws whose flash or peak SRAM exceeds 3 MiB (QEMU's MPS2 memories are 4 MiB) are "
        "drawn again.",
        "",
    ]
    if train:
        lines += [f"- fitted on: {_set_line(train)} (seed {train[0]['seed']});"]
    lines += [f"- evaluated on: {_set_line(records)} (seed {records[0]['seed']}), none of them used for fitting.",
              f"- tools: {_versions()}.", ""]
    spent = [(name, sum(r["seconds"] for r in rs), len(rs)) for name, rs in (("training", train or []),
                                                                             ("evaluation", records)) if rs]
    lines += ["Measuring (compile, three or two builds per core, QEMU) took " + ", ".join(
        f"{sec / 60:.0f} min for the {n} {name} networks" for name, sec, n in spent)
        + " of one core's time, about half that in wall time with `--jobs 2` on a 2-core machine; "
        "refits and evaluations read the cached measurements.", ""]

    lines += ["## Instructions: the evaluation set", "",
              "Predicted total against the QEMU plugin's count of the normal -O2 build, per network. "
              "Target: every network within 10 %, mean |error| at most 5 %.", ""]
    cores = tuple(result["latency"])
    summary = []
    for core in cores:
        errs = [e for e, *_ in result["latency"][core]]
        within = sum(abs(e) <= 0.10 for e in errs)
        summary.append([core, str(len(errs)), f"{max(errs, key=abs):+.2%}", f"{statistics.fmean(map(abs, errs)):.2%}",
                        f"{within} of {len(errs)}"])
    lines += _table(["core", "networks", "worst error", "mean abs error", "within 10 %"], summary, "lrrrr") + [""]
    by_core = {c: {r["index"]: (e, p, m) for e, r, p, m in result["latency"][c]} for c in cores}
    rows = []
    for r in records:
        row = [r["name"], f"{r['macs'] / 1e6:.1f}", str(len(r["layers"]))]
        for c in cores:
            e, p, m = by_core[c][r["index"]]
            row += [f"{m:,}", f"{p:,}", f"{e:+.2%}"]
        rows.append(row)
    short = [c.replace("cortex-", "").upper() for c in cores]
    lines += _table(["network", "M MACs", "layers",
                     *(f"{s} {what}" for s in short for what in ("measured", "predicted", "error"))],
                    rows, "lrr" + "rrr" * len(cores)) + [""]

    if train:
        lines += ["## Instructions: the training set, per kernel path", "",
                  "In sample, on the trace builds' per-layer counts: each path's share of all instructions, the "
                  "error of its summed prediction and the mean |error| per layer, weighted by instructions.", ""]
        for core in cores_in(train):
            prow = [[core, path, str(n), f"{share:.1%}", f"{err:+.2%}", f"{mae:.2%}"]
                    for path, n, share, err, mae in _per_path_errors(train, core)]
            lines += _table(["core", "path", "layers", "share", "error of the sum", "mean abs layer error"], prow,
                            "llrrrr") + [""]
        ins = []
        for core in cores_in(train):
            errs = [e for e, *_ in _latency_errors(train, core)]
            ins.append([core, f"{max(errs, key=abs):+.2%}", f"{statistics.fmean(map(abs, errs)):.2%}"])
        lines += ["Totals in sample (training set against the normal builds):", ""]
        lines += _table(["core", "worst error", "mean abs error"], ins, "lrr") + [""]

    lines += ["## Code size: the evaluation set", "",
              "Predicted `.text` of the model's code against arm-none-eabi-size. Aim: within 10 %.", ""]
    summary = []
    for core in cores:
        for opt in codesize.OPTS:
            errs = [e for e, *_ in result["size"][(core, opt)]]
            within = sum(abs(e) <= 0.10 for e in errs)
            summary.append([core, f"-{opt}", str(len(errs)), f"{max(errs, key=abs):+.2%}",
                            f"{statistics.fmean(map(abs, errs)):.2%}", f"{within} of {len(errs)}"])
    lines += _table(["core", "opt", "networks", "worst error", "mean abs error", "within 10 %"], summary, "llrrrr")
    lines += [""]
    cols = [(core, opt) for core in cores for opt in codesize.OPTS]
    by = {k: {r["index"]: (e, p, m) for e, r, p, m in result["size"][k]} for k in cols}
    rows = []
    for r in records:
        row = [r["name"]]
        for k in cols:
            e, p, m = by[k][r["index"]]
            row.append(f"{m:,} / {p:,} ({e:+.1%})")
        rows.append(row)
    lines += _table(["network", *(f"{c.replace('cortex-', '').upper()} -{o}: measured / predicted" for c, o in cols)],
                    rows, "lrrrr") + [""]
    lines += ["## Limits", "", *NOTES, ""]
    return "\n".join(lines)


NOTES = [
    "- The counts are those of one inference on one seeded random input: requantization, softmax and the "
    "ADD kernel take data-dependent branches (ADD layers cost 66 to 75 instructions per element on these "
    "networks, and that spread is most of the ADD path's per-layer error).",
    "- Instructions are not cycles: `estimate_ms` takes one cycle per instruction at the board's maximum "
    "clock, as the CLI does; flash wait states, caches and the M7's dual issue move real cycles either way.",
    "- The features follow the kernels of the DSP build (Cortex-M4/M7, `__ARM_FEATURE_DSP`); a core "
    "without the DSP extension (Cortex-M0+) has no table. A change to a kernel's loops, to the planner's "
    "variant choices or to the compiler needs a new `measure` and `fit`.",
    "- The layer record does not say whether a pointwise convolution without the planner's column may put "
    "its column over its spent input (`input_spent` in the generated call, several times faster for a "
    "small output); `nas.latency.spent_flags` infers it from the layer list as a chain: the input dies "
    "unless a residual ADD within the next three layers adds it back. A `Layer` field set by "
    "`layers_of` would make that exact for other graphs.",
    "- Paths the random networks never took have no coefficients of their own: the row-by-row depthwise "
    "kernel (`dw_rows`: every depthwise layer here got the plane kernel or, where even that did not fit, "
    "the plain in-place kernel) falls back to the generic MACs-and-elements model, as does any operator "
    "outside these paths.",
    "- -O2 code size is the roughest of the three: every layer carries its own specialised copy, and how "
    "much of it the compiler keeps, unrolls or peels changes from layer to layer (on trace builds split at "
    "the layer hooks, single layers' code is off by about 10 % on average), and the fit sees only network "
    "totals; small 1-D networks, with the fewest layers to average over, have the largest errors.",
    "- Per layer the model is rougher than per network: the compiler's register allocation differs "
    "between layers of the same shape class (e.g. two 7x7 depthwise layers of the same network, 13x13 with "
    "384 and 480 channels, cost nearly the same), so single layers can be off by 10 to 30 % while the "
    "totals stay within a few percent.",
]


# ------------------------------------------------------------------------------------------- CLI

def _seed(args: argparse.Namespace, set_name: str) -> int:
    return args.seed if args.seed is not None and args.stage != "all" else SETS[set_name]


def _n(args: argparse.Namespace, set_name: str) -> int:
    return args.n if args.n and args.stage != "all" else DEFAULT_N[set_name]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=("measure", "fit", "evaluate", "all"))
    ap.add_argument("--set", choices=tuple(SETS), default="train", help="measure: which network set")
    ap.add_argument("--n", type=int, help="networks in the set (train {train}, eval {eval})".format(**DEFAULT_N))
    ap.add_argument("--seed", type=int, help="the set's seed (train {train}, eval {eval})".format(**SETS))
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel measurements")
    ap.add_argument("--core", choices=CORES, action="append", help="measure: cores (default both)")
    ap.add_argument("--cache", type=Path, default=CACHE, help=f"measurements file (default {CACHE})")
    args = ap.parse_args(argv)
    cores = tuple(args.core or CORES)
    stages = ("measure", "fit", "evaluate") if args.stage == "all" else (args.stage,)
    sets = tuple(SETS) if args.stage == "all" else (args.set,)
    for stage in stages:
        if stage == "measure":
            for s in sets:
                measure(s, _seed(args, s) if args.stage != "all" else SETS[s], _n(args, s), args.jobs, cores,
                        args.cache)
        elif stage == "fit":
            fit_all(measured("train", _seed(args, "train"), _n(args, "train"), args.cache))
        else:
            train = measured("train", SETS["train"], DEFAULT_N["train"], args.cache)
            evaluate_all(measured("eval", _seed(args, "eval"), _n(args, "eval"), args.cache), train)


if __name__ == "__main__":
    main()
