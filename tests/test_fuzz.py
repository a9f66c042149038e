"""Issue 12's promise under fuzzing: for any input file, read + compile(strategy="auto") either refuses
with one clean line (exit 2) or gives C equal bit for bit to the reference, clean under ASan/UBSan.

(a) fresh mutants (byte-level, in-place flatbuffer fields, IR-level, combinations) of small seed models,
    new ones whenever MCUFORGE_FUZZ_SEED changes; (b) the regression corpus in ../shared/fuzz.
See docs/fuzz.md; bench/fuzz.py runs the same at scale.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcuforge.testing.cbuild import Builder
from mcuforge.testing.fuzz import Accepted, Outcome, compare, front, summary
from mcuforge.testing.mutate import Mutant, Mutator
from mcuforge.testing.seeds import built_seeds, file_seeds
from oracle import MODELS, SHARED

BASE_SEED = int(os.environ.get("MCUFORGE_FUZZ_SEED", "20261207"))
SEED_MODELS = ("tflm_hello_world_int8", "tflm_micro_speech_int8", "st_har_gmp_wl24_wisdm_int8_floatio",
               "mlperf_kws_dscnn_int8", "ambiq_har_conv1d_int8", "mlperf_ic_resnet8_int8")
# fewer mutants of the seeds whose C costs most to build and whose reference is slowest
SEED_WEIGHTS = {"mlperf_ic_resnet8_int8": 0.5, "ambiq_har_conv1d_int8": 0.7, "fz_tiny_mobilenet": 0.7}
CHUNKS, PER_CHUNK = 15, 200  # 3,000 mutants
CORPUS = SHARED / "fuzz"
CORPUS_CHUNKS = 4
INPUT_TIMEOUT = 60.0  # seconds per input (read, compile, reference); the C run has its own limit


@pytest.fixture(scope="module")
def mutator() -> Mutator:
    seeds = file_seeds(MODELS, SEED_MODELS) + built_seeds()  # raises (fails) when ../shared is missing
    return Mutator(seeds, weights=SEED_WEIGHTS)


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    """One sanitizer build folder for the module: objects are shared by content between tests."""
    b = Builder(tmp_path_factory.mktemp("fuzz-build"), sanitize=True, run_timeout=120)
    yield b
    b.close()


def _outcome(data: bytes, name: str, builder: Builder, seed: int) -> Outcome:
    out = front(data, name, samples=2, seed=seed, timeout=INPUT_TIMEOUT)
    return compare(out, builder.run(out.lib, out.samples)) if isinstance(out, Accepted) else out


def _report(bad: list[tuple[str, Outcome]], total: int, outcomes: list[Outcome], saved: Path | None) -> str:
    lines = [f"{len(bad)} of {total} inputs broke the promise ({summary(outcomes)}); "
             f"base seed {BASE_SEED}" + (f", inputs saved in {saved}" if saved else "") + ":"]
    lines += [f"  {what}\n      -> {o.line()}" for what, o in bad[:40]]
    if len(bad) > 40:
        lines.append(f"  ... and {len(bad) - 40} more")
    return "\n".join(lines)


def _save(tmp_path: Path, bad: list[tuple[Mutant, Outcome]]) -> Path | None:
    if not bad:
        return None
    for m, o in bad:
        (tmp_path / f"{m.index:05d}_{o.cls}_{m.seed}.tflite").write_bytes(m.data)
    return tmp_path


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_fresh_mutants_refuse_cleanly_or_match_the_reference(chunk, mutator, builder, tmp_path):
    mutants = [mutator.mutant(i, BASE_SEED) for i in range(chunk * PER_CHUNK, (chunk + 1) * PER_CHUNK)]
    outcomes = [_outcome(m.data, m.seed, builder, m.index) for m in mutants]
    bad = [(m, o) for m, o in zip(mutants, outcomes) if not o.clean]
    if bad:
        pytest.fail(_report([(f"#{m.index} {m.seed} [{m.family}] {m.desc[:200]}", o) for m, o in bad],
                            len(mutants), outcomes, _save(tmp_path, bad)), pytrace=False)
    assert "refused" in summary(outcomes) and "accepted_equal" in summary(outcomes), summary(outcomes)


def test_mutants_are_reproducible_and_varied(mutator):
    a, b = mutator.mutant(17, BASE_SEED), mutator.mutant(17, BASE_SEED)
    assert a.data == b.data and a.family == b.family and a.desc == b.desc
    families = {f.split(":")[0] for i in range(300) for f in mutator.mutant(i, BASE_SEED).families}
    assert families == {"bytes", "fb", "ir"}


def _corpus() -> list[Path]:
    files = sorted(CORPUS.rglob("*.tflite"))
    assert files, f"no fuzz corpus in {CORPUS} (../shared/fuzz must be present)"
    return files


@pytest.mark.parametrize("chunk", range(CORPUS_CHUNKS))
def test_corpus_refuses_cleanly_or_matches_the_reference_under_sanitizers(chunk, builder):
    files = _corpus()[chunk::CORPUS_CHUNKS]
    outcomes = [_outcome(p.read_bytes(), p.stem, builder, 0) for p in files]
    bad = [(str(p.relative_to(CORPUS)), o) for p, o in zip(files, outcomes) if not o.clean]
    if bad:
        pytest.fail(_report(bad, len(files), outcomes, None), pytrace=False)
