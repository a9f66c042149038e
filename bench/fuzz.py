"""Fuzz the reader, planner and code generator with fresh mutants of the dev models (issue 12).

    python bench/fuzz.py --n 10000 --seed S --jobs 2 --sanitize --save DIR

Every mutant is read and compiled (strategy "auto") in a worker process under a time limit (a hang
is an outcome); accepted ones are built (with --sanitize under ASan/UBSan) and compared with the
reference on random inputs; a sample also goes through the real CLI (`mcuforge compile`). Counts per
outcome and per mutation family go to the terminal and to docs/fuzz.md (--report); failing inputs
(a few per distinct defect) are saved to --save with an index.json. See docs/fuzz.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from multiprocessing import get_context
from multiprocessing.connection import wait
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK_START, MARK_END = "<!-- fuzz results: start -->", "<!-- fuzz results: end -->"


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000, help="number of mutants (default 10000)")
    p.add_argument("--seed", type=int, default=1, help="base seed: mutant i is a function of (seed, i)")
    p.add_argument("--start", type=int, default=0, help="first mutant index (to resume or split a run)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--sanitize", action="store_true", help="build accepted models with ASan/UBSan")
    p.add_argument("--profile", choices=("fast", "release"), default="fast",
                   help="C flags: fast (-O0, no forced inlining) or release (-O2 as users build)")
    p.add_argument("--save", type=Path, help="folder for failing inputs and index.json")
    p.add_argument("--save-per-signature", type=int, default=3, help="inputs saved per distinct defect")
    p.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models", help="seed models")
    p.add_argument("--no-built", action="store_true", help="leave out the builder-made seed graphs")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per input to read+compile+reference")
    p.add_argument("--samples", type=int, default=2, help="random inputs per accepted model")
    p.add_argument("--cli-rate", type=float, default=0.03,
                   help="fraction of mutants also run through the CLI (evil names always are)")
    p.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit of a worker (0: none)")
    p.add_argument("--chunk", type=int, default=10, help="mutants per task")
    p.add_argument("--report", type=Path, default=ROOT / "docs" / "fuzz.md",
                   help="markdown file whose results section is rewritten ('-' for none)")
    return p.parse_args(argv)


# ---------------------------------------------------------------- worker


def _worker(conn, seeds, opts: dict) -> None:
    import random

    from mcuforge.testing.cbuild import Builder
    from mcuforge.testing.fuzz import Accepted, cli_outcome, compare, front
    from mcuforge.testing.mutate import Mutator

    if opts["memory"]:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (opts["memory"], resource.getrlimit(resource.RLIMIT_AS)[1]))
    mutator = Mutator(seeds)
    builder = Builder(opts["work"], sanitize=opts["sanitize"], profile=opts["profile"])
    while True:
        task = conn.recv()
        if task is None:
            return
        for idx in task:
            conn.send(("phase", idx, "front"))
            m = mutator.mutant(idx, opts["seed"])
            t0 = time.time()
            out = front(m.data, m.seed, samples=opts["samples"], seed=idx, timeout=opts["timeout"])
            if isinstance(out, Accepted):
                conn.send(("phase", idx, "build"))
                out = compare(out, builder.run(out.lib, out.samples))
            cli = None
            if "ir:evil_name" in m.families or random.Random(idx * 7919 + opts["seed"]).random() < opts["cli_rate"]:
                conn.send(("phase", idx, "cli"))
                cli = cli_outcome(m.data, m.seed, out, memory_limit=opts["memory"])
            bad = not out.clean or (cli is not None and cli.cls != "cli_ok")
            conn.send(("done", dict(index=idx, seed=m.seed, family=m.family, desc=m.desc, cls=out.cls,
                                    stage=out.stage, exc=out.exc, msg=out.message, frame=out.frame,
                                    signature=out.signature, seconds=round(time.time() - t0, 3),
                                    cli=None if cli is None else cli.cls,
                                    cli_detail=None if cli is None else f"{cli.exc} {cli.message}".strip(),
                                    data=m.data if bad else None)))
        conn.send(("idle",))


# ---------------------------------------------------------------- pool with a watchdog


class Pool:
    """Worker processes fed chunks of mutant indices; a worker stuck past its phase's limit is killed,
    its input recorded as a hang and the rest of its chunk queued again."""

    def __init__(self, jobs: int, seeds, opts: dict) -> None:
        self.ctx = get_context("fork")
        self.seeds, self.opts = seeds, opts
        self.limits = {"front": opts["timeout"] * 2 + 30, "build": 900.0, "cli": 300.0}
        self.workers = [self._spawn() for _ in range(jobs)]

    def _spawn(self) -> dict:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(child, self.seeds, self.opts), daemon=True)
        proc.start()
        child.close()
        return {"proc": proc, "conn": parent, "task": None, "phase": None}

    def run(self, indices: list[int], chunk: int, on_record) -> None:
        todo = deque(indices[i:i + chunk] for i in range(0, len(indices), chunk))
        while todo or any(w["task"] is not None for w in self.workers):
            for w in self.workers:
                if w["task"] is None and todo:
                    w["task"] = list(todo.popleft())
                    w["conn"].send(w["task"])
            busy = {w["conn"]: w for w in self.workers if w["task"] is not None}
            for conn in wait(list(busy), timeout=1.0):
                self._drain(busy[conn], on_record, todo)
            now = time.time()
            for k, w in enumerate(self.workers):
                ph = w["phase"]
                if w["task"] is not None and ph and now - ph[2] > self.limits[ph[1]]:
                    self._replace(k, w, on_record, todo, "hang", f"worker stuck in {ph[1]} for {now - ph[2]:.0f} s")

    def _drain(self, w, on_record, todo) -> None:
        try:
            while w["conn"].poll():
                msg = w["conn"].recv()
                if msg[0] == "phase":
                    w["phase"] = (msg[1], msg[2], time.time())
                elif msg[0] == "done":
                    on_record(msg[1])
                    w["task"].remove(msg[1]["index"])
                    w["phase"] = None
                elif msg[0] == "idle":
                    w["task"], w["phase"] = None, None
        except (EOFError, OSError):
            code = w["proc"].exitcode
            k = self.workers.index(w)
            self._replace(k, w, on_record, todo, "exception", f"worker process died (exit {code})")

    def _replace(self, k: int, w, on_record, todo, cls: str, why: str) -> None:
        w["proc"].kill()
        w["proc"].join()
        task = w["task"] or []
        if task:
            idx = w["phase"][0] if w["phase"] else task[0]
            stage = w["phase"][1] if w["phase"] else "front"
            on_record(dict(index=idx, cls=cls, stage=stage, exc="" if cls == "hang" else "WorkerDied", msg=why,
                           frame="", signature=f"{cls} {stage} {why.split(' for ')[0]}", regenerate=True))
            rest = [i for i in task if i != idx]
            if rest:
                todo.appendleft(rest)
        self.workers[k] = self._spawn()

    def close(self) -> None:
        for w in self.workers:
            try:
                w["conn"].send(None)
            except OSError:
                pass
            w["proc"].join(timeout=5)
            if w["proc"].is_alive():
                w["proc"].kill()


# ---------------------------------------------------------------- report


def _git() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return f"{head}{' + uncommitted changes' if dirty else ''}"
    except OSError:
        return "unknown"


def _engine_hash() -> str:
    """A hash of the engine's sources (not the fuzzer's): a run whose engine changed midway mixes versions."""
    import hashlib

    h = hashlib.sha256()
    src = ROOT / "src" / "mcuforge"
    for p in sorted(src.rglob("*")):
        if p.is_file() and p.suffix in (".py", ".h", ".c") and "testing" not in p.relative_to(src).parts:
            h.update(str(p.relative_to(src)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return out


def report(records: list[dict], args, seeds: list[str], seconds: float, saved: dict[str, list[str]]) -> str:
    from mcuforge.testing.fuzz import CLEAN, DEFECTS

    classes = [c for c in (*CLEAN, *DEFECTS) if any(r["cls"] == c for r in records)]
    counts = Counter(r["cls"] for r in records)
    cmd = " ".join(["python bench/fuzz.py", *sys.argv[1:]]) if sys.argv[1:] else "python bench/fuzz.py"
    changed = args.engine_hash != _engine_hash()
    lines = [f"`{cmd}`: {len(records)} mutants (base seed {args.seed}, indices {args.start}.."
             f"{args.start + args.n - 1}) of {len(seeds)} seed models, {time.strftime('%Y-%m-%d %H:%M')}, "
             f"engine at {_git()}; {'ASan/UBSan' if args.sanitize else 'plain'} {args.profile} builds, "
             f"{args.jobs} jobs, {seconds / 60:.1f} min."
             + (" **The engine's sources changed during the run: the results mix versions.**" if changed else ""),
             "", "Outcomes:", ""]
    lines += _table(["outcome", "count", "share"], [[c, counts[c], f"{counts[c] / max(len(records), 1):.1%}"]
                                                    for c in classes])
    fam: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        for f in r["family"].split("+"):
            fam[f][r["cls"]] += 1
    lines += ["", "Per mutation family (a combined mutant counts once for each of its families):", ""]
    lines += _table(["family", "mutants", *classes],
                    [[f, sum(c.values()), *(c[k] or "" for k in classes)] for f, c in sorted(fam.items())])
    cli = Counter(r["cli"] for r in records if r.get("cli"))
    if cli:
        lines += ["", f"CLI sample (`mcuforge compile FILE -o DIR`, {sum(cli.values())} inputs): "
                  + ", ".join(f"{k} {v}" for k, v in sorted(cli.items()))]
    sigs: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r["cls"] not in CLEAN:
            sigs[r["signature"]].append(r)
        if r.get("cli") not in (None, "cli_ok"):
            sigs[f"{r['cli']} {r['cli_detail'][:60]}"].append(r)
    if sigs:
        lines += ["", f"Distinct defects ({len(sigs)}):", ""]
        rows = []
        for sig, rs in sorted(sigs.items(), key=lambda kv: -len(kv[1])):
            r = rs[0]
            fams = Counter(f for x in rs for f in x["family"].split("+")).most_common(2)
            rows.append([sig[:90], len(rs), ", ".join(f for f, _ in fams), f"{r['seed']}: {r['desc'][:80]}",
                         (r.get("cli_detail") if sig.startswith("cli_") else r["msg"])[:100],
                         ", ".join(saved.get(sig, [])[:1])])
        lines += _table(["signature", "count", "families", "example", "message", "saved"], rows)
    else:
        lines += ["", "No defects."]
    return "\n".join(lines)


def _write_report(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else f"# Fuzzing\n\n## Latest results\n\n{MARK_START}\n{MARK_END}\n"
    if MARK_START not in old:
        old += f"\n## Latest results\n\n{MARK_START}\n{MARK_END}\n"
    head, rest = old.split(MARK_START, 1)
    tail = rest.split(MARK_END, 1)[1] if MARK_END in rest else "\n"
    path.write_text(f"{head}{MARK_START}\n{text}\n{MARK_END}{tail}")


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    args = _args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    from mcuforge.testing.fuzz import CLEAN
    from mcuforge.testing.mutate import Mutator
    from mcuforge.testing.seeds import built_seeds, file_seeds

    args.engine_hash = _engine_hash()
    seeds = file_seeds(args.models) + ([] if args.no_built else built_seeds())
    mutator = Mutator(seeds)
    work = tempfile.mkdtemp(prefix="mcuforge-fuzz-")
    opts = dict(seed=args.seed, sanitize=args.sanitize, profile=args.profile, samples=args.samples,
                timeout=args.timeout, cli_rate=args.cli_rate, work=work,
                memory=int(args.memory_gb * (1 << 30)) if args.memory_gb else None)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    saved: dict[str, list[str]] = defaultdict(list)
    t0 = last = time.time()
    tty = sys.stderr.isatty()

    def on_record(rec: dict) -> None:
        nonlocal last
        if rec.pop("regenerate", False):
            m = mutator.mutant(rec["index"], args.seed)
            rec.update(seed=m.seed, family=m.family, desc=m.desc, data=m.data, cli=None, cli_detail=None)
        data = rec.pop("data", None)
        sigs = [rec["signature"]] if rec["cls"] not in CLEAN else []
        if rec.get("cli") not in (None, "cli_ok"):
            sigs.append(f"{rec['cli']} {rec['cli_detail'][:60]}")
        if args.save and data is not None and any(len(saved[s]) < args.save_per_signature for s in sigs):
            name = f"{rec['index']:05d}_{(rec['cls'] if rec['cls'] not in CLEAN else rec['cli'])}_{rec['seed']}.tflite"
            (args.save / name).write_bytes(data)
            rec["file"] = name
            for s in sigs:
                saved[s].append(str(args.save / name))
        records.append(rec)
        now = time.time()
        if now - last > (1 if tty else 15) or len(records) == args.n:
            last = now
            c = Counter(r["cls"] for r in records)
            bad = sum(v for k, v in c.items() if k not in CLEAN)
            rate = len(records) / max(now - t0, 1e-9)
            line = (f"{len(records)}/{args.n} {rate:.1f}/s eta {(args.n - len(records)) / max(rate, 1e-9) / 60:.1f} min"
                    f" | refused {c['refused']} accepted_equal {c['accepted_equal']} defects {bad}"
                    f" ({len(saved)} distinct saved)")
            print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    pool = Pool(max(args.jobs, 1), seeds, opts)
    try:
        pool.run(list(range(args.start, args.start + args.n)), args.chunk, on_record)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting what finished", file=sys.stderr)
    finally:
        pool.close()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    if tty:
        print(file=sys.stderr)
    records.sort(key=lambda r: r["index"])
    text = report(records, args, [s.name for s in seeds], time.time() - t0, saved)
    print(text)
    if args.save:
        (args.save / "index.json").write_text(json.dumps([r for r in records if r["cls"] not in CLEAN or r.get(
            "cli") not in (None, "cli_ok")], indent=1))
    if str(args.report) != "-":
        _write_report(args.report, text)
    return 1 if any(r["cls"] not in CLEAN for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
