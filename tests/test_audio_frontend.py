"""The fixed-point audio front-end: numpy codes close to the float64 log-mel of the same definition, the
generated C equal to numpy bit for bit (host, sanitizers, Cortex-M4 in QEMU), bad configs refused in one line,
and the files dropping into a compiled library."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
from oracle import MODELS, SHARED

from mcuforge.audio import (
    FrontendConfig,
    emit_frontend_c,
    features,
    frontend_library,
    log_mel_float,
    to_float,
    write_frontend,
)
from mcuforge.audio.emit import scratch_bytes, table_bytes
from mcuforge.audio.fixed import frame_features
from mcuforge.audio.tables import tables
from mcuforge.targets.host import (
    WARNINGS,
    HostModel,
    build_executable,
    compiler,
    run_executable,
)

SPEECH = SHARED / "datasets" / "speech_commands8.npz"
DEFAULT = FrontendConfig()
OTHERS = [  # 8 kHz up to Nyquist with no zero padding; an odd window with a 1024-point FFT and 64 mels
    FrontendConfig(sample_rate=8000, window_ms=32, stride_ms=16, fft_size=256, mels=20, low_hz=60, high_hz=None),
    FrontendConfig(window_ms=30.0625, stride_ms=10, fft_size=1024, mels=64, low_hz=0, high_hz=8000),
]
# Codes vs float64 (natural log): the output step is ln(2)/1024 = 0.00068, so rounding alone gives 0.00034;
# the rest is the 30-bit block normalisation of the windowed frame before the FFT (each sample rounded to
# about 2^-21 of the frame's L1 norm), which shows only where a full-scale tone leaves a band at the 2^-20
# floor (up to 0.003 on pure tones and square waves); on speech it stays below 0.001.
TOLERANCE = 0.005
TOLERANCE_SPEECH = 0.002


def speech(n: int, split: str = "x_train") -> np.ndarray:
    if not SPEECH.exists():
        pytest.skip(f"{SPEECH} is missing")
    with np.load(SPEECH) as data:
        return data[split][:n]


def synthetic(samples: int, seed: int = 0) -> list[np.ndarray]:
    """Random noise, silence, full-scale square waves (clipping at both rails), DC at the rails, a full-scale
    chirp, an impulse train and near-silence."""
    rng = np.random.default_rng(seed)
    n = np.arange(samples)
    chirp = np.sin(2 * np.pi * (50 * n / 16000 + 3950 * (n / 16000) ** 2 / 2))
    clips = [rng.integers(-32768, 32768, samples), np.zeros(samples), np.full(samples, -32768),
             np.full(samples, 32767), np.where(n % 2, 32767, -32768), np.round(32767 * chirp),
             (n % 331 == 0) * 32767, rng.integers(-2, 3, samples)]
    clips += [np.where((n // k) % 2 == 0, 32767, -32768) for k in (3, 7, 40, 101)]
    return [np.asarray(c).astype(np.int16) for c in clips]


def test_shapes_and_batches():
    assert DEFAULT.window_samples == 480 and DEFAULT.stride_samples == 320
    assert DEFAULT.frames(16000) == 49 and DEFAULT.shape(16000) == (49, 40)
    assert DEFAULT.frames(479) == 0 and DEFAULT.frames(480) == 1 and DEFAULT.frames(800) == 2
    clips = speech(3)
    batch = features(clips, DEFAULT)
    assert batch.shape == (3, 49, 40) and batch.dtype == np.int16
    for clip, row in zip(clips, batch):
        np.testing.assert_array_equal(features(clip, DEFAULT), row)
    assert features(clips[0][:479], DEFAULT).shape == (0, 40)
    assert features(clips[:0], DEFAULT).shape == (0, 49, 40)
    assert to_float(batch).dtype == np.float32
    with pytest.raises(ValueError, match="int16"):
        features(clips.astype(np.float32), DEFAULT)
    with pytest.raises(ValueError, match="one clip"):
        features(clips[None], DEFAULT)


def test_close_to_float_on_speech():
    clips = speech(40)
    error = np.abs(to_float(features(clips, DEFAULT), np.float64) - log_mel_float(clips, DEFAULT))
    assert error.max() < TOLERANCE_SPEECH, error.max()


@pytest.mark.parametrize("config", [DEFAULT, *OTHERS], ids=["default", "8khz-256", "odd-1024"])
def test_close_to_float_on_synthetic(config):
    clips = np.stack(synthetic(config.sample_rate))
    error = np.abs(to_float(features(clips, config), np.float64) - log_mel_float(clips, config))
    assert error.max() < TOLERANCE, error.max()
    silence = features(np.zeros(config.sample_rate, np.int16), config)
    assert (silence == -20 * 1024).all()  # exactly the floor: log2(2^-20)


def plain_frame(x: np.ndarray, config: FrontendConfig) -> list[int]:
    """fixed.py's definition for one frame in Python integers (unbounded, loops): vectorised numpy int64 must
    give the same codes (no silent overflow), and the C's int32 stores must hold every value (asserted)."""
    t = tables(config)
    n, half = config.fft_size, config.fft_size // 2
    p = [int(a) * int(w) for a, w in zip(x, t.window.tolist())]
    r = max(sum(abs(v) for v in p).bit_length() - 30, 0)
    xn = [(v + ((1 << r) >> 1)) >> r for v in p] + [0] * (n - len(p))
    re, im = [xn[2 * j] for j in t.bitrev.tolist()], [xn[2 * j + 1] for j in t.bitrev.tolist()]
    h = 1
    while h < half:
        for b in range(0, half, 2 * h):
            for j in range(b, b + h):
                c, s = int(t.fft_cos[(j - b) * half // (2 * h)]), int(t.fft_sin[(j - b) * half // (2 * h)])
                tr = (re[j + h] * c + im[j + h] * s + (1 << 29)) >> 30
                ti = (im[j + h] * c - re[j + h] * s + (1 << 29)) >> 30
                re[j], im[j], re[j + h], im[j + h] = re[j] + tr, im[j] + ti, re[j] - tr, im[j] - ti
                assert max(abs(re[j]), abs(im[j]), abs(re[j + h]), abs(im[j + h])) < 2 ** 31
        h *= 2
    power = []
    for i, k in enumerate(range(t.first_bin, t.first_bin + t.bins)):
        kr, ki, mr, mi = re[k % half], im[k % half], re[(half - k) % half], im[(half - k) % half]
        ar, ai, br, bi = kr + mr, ki - mi, kr - mr, ki + mi  # Z[k] + conj Z[M-k], Z[k] - conj Z[M-k]
        c, s = int(t.split_cos[i]), int(t.split_sin[i])
        xr, xi = (ar * 2 ** 30 + c * bi - s * br + 2 ** 30) >> 31, (ai * 2 ** 30 - c * br - s * bi + 2 ** 30) >> 31
        assert abs(xr) < 2 ** 31 and abs(xi) < 2 ** 31
        power.append(xr * xr + xi * xi)
    codes, pos, table = [], 0, t.log2_table.tolist()
    for start, count in zip(t.mel_start.tolist(), t.mel_count.tolist()):
        weights = t.mel_weights[pos:pos + count].tolist()
        pos += count
        units = 107 - 2 * r  # E = mel * 2^units
        v = sum(power[start - t.first_bin + i] * w for i, w in enumerate(weights)) + (1 << (units - 20))
        e = v.bit_length() - 1
        u = v >> (e - 31) if e >= 31 else v << (31 - e)
        idx, frac = (u >> 25) & 63, (u >> 9) & 0xFFFF
        log = table[idx] + (((table[idx + 1] - table[idx]) * frac + (1 << 15)) >> 16)  # log2(u / 2^31), Q15
        codes.append(round_half_up(((e - units) << 15) + log, 5))
    return codes


def round_half_up(value: int, bits: int) -> int:
    return (value + (1 << (bits - 1))) >> bits


@pytest.mark.parametrize("config", [DEFAULT, *OTHERS, FrontendConfig(window_ms=256, stride_ms=128, fft_size=4096,
                                    mels=128, high_hz=None), FrontendConfig(window_ms=1, stride_ms=1, fft_size=16,
                                    mels=2, low_hz=0, high_hz=None)], ids=["default", "8khz-256", "odd-1024",
                                                                             "4096", "16"])
def test_numpy_equals_plain_integers_at_the_limits(config):
    """Frames built to reach the bounds: every windowed sample at the same magnitude (|x| ~ 1/w, the largest L1
    norm a frame can have after normalisation), the rails, alternating rails (Nyquist), noise."""
    size, rng = config.window_samples, np.random.default_rng(4)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)
    inverse = np.clip(np.round(0.9 * window[1] / np.maximum(window, 1e-12) * 32767), 0, 32767) * (window > 0)
    frames = np.array([inverse, -inverse, np.full(size, -32768), np.where(np.arange(size) % 2, 32767, -32768),
                       rng.integers(-32768, 32768, size), rng.integers(-1, 2, size)]).astype(np.int16)
    got = frame_features(frames, config)
    for frame, row in zip(frames, got):
        assert plain_frame(frame, config) == row.tolist()


@pytest.mark.parametrize("config", [DEFAULT, *OTHERS], ids=["default", "8khz-256", "odd-1024"])
def test_c_equals_numpy(config):
    model = HostModel.build(frontend_library(config, "fe"))
    clips = synthetic(config.sample_rate, seed=1) + [c[:config.sample_rate] for c in speech(4, "x_test")]
    for clip in clips:
        np.testing.assert_array_equal(model.run([clip])[0], features(clip, config))


def test_c_under_sanitizers():
    lib = frontend_library(DEFAULT, "fe_asan")
    exe = build_executable(lib, sanitize=True)
    for clip in synthetic(16000, seed=2)[:3] + list(speech(1)):
        np.testing.assert_array_equal(run_executable(lib, exe, [clip])[0], features(clip, DEFAULT))


def test_c_streaming_and_short_clips(tmp_path):
    """frame by frame equals the whole clip; a clip shorter than a window gives 0 frames; NULL gives -1."""
    files = emit_frontend_c(DEFAULT, "kws")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "main.c").write_text("""#include <stdio.h>
#include <string.h>
#include "kws_frontend.h"
static int16_t clip[16000], whole[49 * 40], row[40];
int main(void) {
    int i, f;
    for (i = 0; i < 16000; ++i) clip[i] = (int16_t)((i * 7919) % 65536 - 32768);
    if (kws_frontend(clip, 16000, whole) != KWS_FRONTEND_FRAMES(16000)) return 1;
    for (f = 0; f < 49; ++f) {
        if (kws_frontend_frame(clip + f * KWS_FRONTEND_STRIDE, row) != 0) return 2;
        if (memcmp(row, whole + f * KWS_FRONTEND_MELS, sizeof row) != 0) return 3;
    }
    if (kws_frontend(clip, KWS_FRONTEND_WINDOW - 1, whole) != 0) return 4;
    if (kws_frontend(0, 16000, whole) != -1) return 5;
    fwrite(whole, 1, sizeof whole, stdout);
    return 0;
}
""")
    exe = tmp_path / "stream"
    subprocess.run([compiler(), *WARNINGS, "-pedantic", "-O2", "-o", str(exe), "main.c", "kws_frontend.c"],
                   cwd=tmp_path, check=True, capture_output=True)
    proc = subprocess.run([str(exe)], capture_output=True, check=False)
    assert proc.returncode == 0, proc.returncode
    clip = ((np.arange(16000, dtype=np.int64) * 7919) % 65536 - 32768).astype(np.int16)
    np.testing.assert_array_equal(np.frombuffer(proc.stdout, np.int16).reshape(49, 40), features(clip, DEFAULT))


def test_sizes():
    header = emit_frontend_c(DEFAULT, "kws")["kws_frontend.h"]
    assert scratch_bytes(DEFAULT) == 4 * 512 + 8 * 127  # complex FFT + the power of the 127 bins in use
    assert f"#define KWS_FRONTEND_SCRATCH_BYTES {scratch_bytes(DEFAULT)}\n" in header
    assert f"#define KWS_FRONTEND_TABLE_BYTES {table_bytes(DEFAULT)}\n" in header


def test_cortex_m4_equals_numpy():
    """QEMU runs the C as built for a Cortex-M4; its instructions per second of audio and its RAM and flash
    are those docs/audio.md reports."""
    from mcuforge.targets.cortex_m import CortexMModel, toolchain_missing

    missing = toolchain_missing()
    if missing:
        pytest.skip(f"needs the Arm toolchain and QEMU ({missing})")
    lib = frontend_library(DEFAULT, "fe")
    model = CortexMModel.build(lib, "cortex-m4", "-O2")
    clips = list(speech(2, "x_test")) + synthetic(16000, seed=3)[:2]
    counts, outs = model.count_instructions_batch([[c] for c in clips])
    for clip, out in zip(clips, outs):
        np.testing.assert_array_equal(out[0], features(clip, DEFAULT))
    assert all(1_000_000 < c < 6_000_000 for c in counts), counts  # about 2.7 M at -O2
    size = model.size_report()
    assert size.const_bytes == table_bytes(DEFAULT)
    assert size.bss_bytes == scratch_bytes(DEFAULT) + 2 * 16000 + 2 * 49 * 40  # + the harness's clip and features


BAD = [
    ({"sample_rate": 0}, "sample_rate"), ({"sample_rate": 16000.5}, "sample_rate"),
    ({"window_ms": 0}, "window_ms"), ({"window_ms": float("nan")}, "window_ms"),
    ({"window_ms": 30.01}, "whole number of samples"), ({"stride_ms": -10}, "stride_ms"),
    ({"fft_size": 500}, "power of two"), ({"fft_size": 256}, "does not fit fft_size"),
    ({"fft_size": 8192}, "fft_size"), ({"mels": 0}, "mels"), ({"mels": 2.5}, "mels"),
    ({"low_hz": -1}, "low_hz"), ({"high_hz": 9000}, "high_hz"), ({"low_hz": 4000}, "high_hz"),
    ({"mels": 128}, "covers no FFT bin"), ({"high_hz": "4k"}, "high_hz"),
]


@pytest.mark.parametrize("kwargs,words", BAD, ids=[next(iter(k)) + "=" + str(next(iter(k.values()))) for k, _ in BAD])
def test_bad_config(kwargs, words):
    with pytest.raises(ValueError, match=words) as info:
        FrontendConfig(**kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith("FrontendConfig: ")


def test_bad_prefix():
    for prefix in ("1kws", "mcu_kws", "kws-fe", ""):
        with pytest.raises(ValueError, match="C identifier"):
            emit_frontend_c(DEFAULT, prefix)


def test_write_frontend_into_a_compiled_library(tmp_path):
    """Beside `mcuforge compile`'s files: listed in its CMake files once, and the whole folder builds with
    strict flags and links into one program with the model."""
    from mcuforge.pipeline import compile_model, load_model, write_library

    kws = MODELS / "mlperf_kws_dscnn_int8.tflite"
    if not kws.exists():
        pytest.skip(f"{kws} is missing")
    folder = tmp_path / "kws"
    write_library(compile_model(load_model(kws), "kws").lib, folder)
    for _ in range(2):  # twice: the source is listed once
        paths = write_frontend(folder, DEFAULT, "kws")
    assert [p.name for p in paths] == ["kws_frontend.h", "kws_frontend.c"]
    assert (folder / "CMakeLists.txt").read_text().count("    kws_frontend.c\n") == 1
    assert (folder / "zephyr" / "CMakeLists.txt").read_text().count("_DIR}/kws_frontend.c\n") == 1
    (tmp_path / "app.c").write_text("""#include "kws.h"
#include "kws_frontend.h"
static int16_t clip[16000], mel[KWS_FRONTEND_FRAMES(16000) * KWS_FRONTEND_MELS];
int main(void) { return kws_frontend(clip, 16000, mel) == 49 && kws_invoke() == 0 ? 0 : 1; }
""")
    sources = sorted(str(p) for p in folder.glob("*.c")) + [str(tmp_path / "app.c")]
    subprocess.run([compiler(), *WARNINGS, "-pedantic", "-O1", f"-I{folder}", "-o", str(tmp_path / "app"), *sources],
                   check=True, capture_output=True)
    assert subprocess.run([str(tmp_path / "app")], check=False).returncode == 0
    with pytest.raises(ValueError, match="not a folder"):
        write_frontend(tmp_path / "missing", DEFAULT, "kws")
