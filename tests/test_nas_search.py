"""`mcuforge search` end to end on the built-in digits (tiny settings): the winner fits the budgets on the
exact compile, its C is bit-exact, and its reported test accuracy is what the reference interpreter gives
on the written model; bad data and folders are refused in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from mcuforge.cli import main  # noqa: E402
from mcuforge.engine.reference import run  # noqa: E402
from mcuforge.nas.search import Preset, load_search_data, resize, search  # noqa: E402
from mcuforge.nas.stage1 import Budgets  # noqa: E402
from mcuforge.pipeline import load_model  # noqa: E402
from mcuforge.quant.ptq import quantize_input  # noqa: E402

TINY = Preset(epochs=2, finetune_epochs=2, population=4, generations=1, stage1_samples=50, batch_size=32,
              max_train=600, qat_epochs=1)


def test_search_on_digits_gives_verified_c_within_budget(tmp_path, monkeypatch):
    data = load_search_data("digits")
    budgets = Budgets(sram_bytes=32 * 1024, flash_bytes=192 * 1024)  # stage 1: w0.2-r64
    bars: dict[str, list[int]] = {}  # description -> [total, done]

    def bar(description, total):
        bars[description] = [total, 0]
        return lambda n: bars[description].__setitem__(1, bars[description][1] + n)

    report = search(data, budgets, tmp_path / "out", TINY, bars=bar)
    assert {d.split(" ")[0] for d in bars} == {"supernet", "evolution", "fine-tuning", "from-scratch", "S-MbV2"}
    assert all(total == done > 0 for total, done in bars.values()), bars  # every bar ran to its end
    found = report["searched"]
    weights = found["weights"]  # inherited + fine-tuned, or from scratch: the better on validation is deployed
    better = max(("inherited", "scratch"), key=lambda k: weights[f"{k}_validation_accuracy"])  # ties: inherited
    assert weights["chosen"] == better
    assert found["bit_exact"] and found["peak_sram_bytes"] <= budgets.sram_bytes
    assert found["flash_bytes"] <= budgets.flash_bytes
    assert report["search"]["evaluations"] == len(report["search"]["random_history"])
    out = tmp_path / "out"
    for name in ("report.json", "report.html", "model_int8.tflite", "search.png", "search.log", "c/model.h",
                 "c/model.c"):
        assert (out / name).exists(), name
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    graph = load_model(out / "model_int8.tflite")  # the reported accuracy, recomputed by the reference
    resolution = int(report["space"].split("-r")[1])
    x = np.moveaxis(resize(data.x_test, resolution, False), 1, -1)
    predicted = [int(np.argmax(run(graph, [quantize_input(graph, s[None])])[0])) for s in x]
    assert found["test_accuracy"] == pytest.approx(np.mean(np.array(predicted) == data.y_test))
    assert found["test_accuracy"] > 0.3  # well above chance (0.1) even after one epoch
    assert "S-MbV2 w" in (out / "report.html").read_text()  # the accuracy table

    (base,) = report["baselines"]  # S-MbV2, trained from scratch, deployed the same way
    assert base["name"].startswith("S-MbV2 w") and base["bit_exact"]
    assert base["peak_sram_bytes"] <= budgets.sram_bytes and base["flash_bytes"] <= budgets.flash_bytes

    # resume: the supernet, the evaluations and the trainings come from the folder, nothing is redone
    import mcuforge.nas.search as search_module

    def no_more(*args, **kwargs):
        raise AssertionError("a resumed search evaluated an architecture again")

    monkeypatch.setattr(search_module, "subnet_accuracy", no_more)
    again = search(data, budgets, tmp_path / "out", TINY, resume=True)
    assert again["searched"]["arch"] == found["arch"] and again["search"] == report["search"]
    assert "resumed" in (out / "search.log").read_text()


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((10, 8, 8))}, "has no y_train, x_test, y_test"),
    ({"x_train": np.zeros((10, 8, 8)), "y_train": np.arange(10) % 2, "x_test": np.zeros((4, 8, 8)),
      "y_test": np.array([0, 1, 2, 0])}, "labels must be 0..1"),
    ({"x_train": np.zeros((10, 8, 8)), "y_train": np.r_[np.zeros(9), 1].astype(int), "x_test": np.zeros((4, 8, 8)),
      "y_test": np.zeros(4, int)}, "at least 2 training samples"),
    ({"x_train": np.zeros((10, 8, 8)), "y_train": np.arange(10) % 2, "x_test": np.zeros((4, 9, 9)),
      "y_test": np.zeros(4, int)}, "differ"),
    ({"x_train": np.zeros((10, 16000)), "y_train": np.arange(10) % 2, "x_test": np.zeros((4, 16000)),
      "y_test": np.zeros(4, int)}, "give int16 samples"),
    ({"x_train": np.zeros((10, 4000), np.int16), "y_train": np.arange(10) % 2, "x_test": np.zeros((4, 4000), np.int16),
      "y_test": np.zeros(4, int)}, "at least 10720 samples"),
])
def test_bad_data_is_refused_in_one_line(tmp_path, capsys, arrays, message):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    out = tmp_path / "out"
    assert main(["search", "--data", str(path), "--sram", "32K", "-o", str(out), "--preset", "quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not out.exists()


def test_output_folder_rules(tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    assert main(["search", "--data", "digits", "--sram", "32K", "-o", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err and (busy / "mine.txt").read_text() == "keep"
    assert main(["search", "--data", "digits", "--sram", "32K", "-o", str(tmp_path / "new"), "--resume"]) == 2
    assert "no search to resume" in capsys.readouterr().err
    new = tmp_path / "new"
    assert main(["search", "--data", "digits", "--sram", "32K", "-o", str(new), "--training", "progressive",
                 "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--training progressive runs on one process" in err and "\n" not in err and not new.exists()


def test_a_folder_of_images_per_class_is_data(tmp_path):
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for name, level in (("cat", 40), ("dog", 200)):
        (tmp_path / name).mkdir()
        for i in range(10):
            pixels = np.clip(rng.normal(level, 10, (20, 30, 3)), 0, 255).astype(np.uint8)
            image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    data = load_search_data(str(tmp_path))
    assert data.classes == 2 and len(data.x_train) + len(data.x_test) == 20 and len(data.x_test) == 4
    assert data.x_train.shape[1:] == (3, 64, 64)
    bright = data.x_train.mean(axis=(1, 2, 3)) > 0.5  # the labels follow the folders
    assert np.array_equal(bright, data.y_train == 1)


def test_raw_audio_is_searched_through_the_c_front_end(tmp_path):
    """Raw int16 clips: the network trains on the fixed-point front-end's features, and the output folder's C
    (front-end + quantization + network) predicts the same classes from the raw test clips."""
    rng = np.random.default_rng(0)
    t = np.arange(11_000) / 16_000

    def clips(n):
        y = rng.integers(0, 3, n)
        tone = np.sin(2 * np.pi * np.array([300.0, 1000.0, 2500.0])[y][:, None] * t)
        x = 8000 * tone + rng.normal(0, 2000, (n, len(t)))
        return np.clip(np.round(x), -32768, 32767).astype(np.int16), y

    (x_train, y_train), (x_test, y_test) = clips(120), clips(30)
    np.savez(tmp_path / "tones.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             sample_rate=16_000)
    data = load_search_data(str(tmp_path / "tones.npz"))
    assert data.signal and data.x_train.shape == (120, 40, 33)  # (N, mels, frames)
    preset = Preset(epochs=2, finetune_epochs=2, population=4, generations=1, stage1_samples=30, batch_size=16,
                    qat_epochs=1, baselines=False)
    report = search(data, Budgets(sram_bytes=32 * 1024, flash_bytes=128 * 1024), tmp_path / "out", preset)
    audio = report["audio"]
    assert audio["same_predictions"] and audio["test_accuracy"] == report["searched"]["test_accuracy"]
    assert audio["total_sram_bytes"] <= 32 * 1024 and report["network_budgets"]["sram_bytes"] < 32 * 1024
    c = tmp_path / "out" / "c"
    assert {"model_frontend.c", "model_audio.c", "model_audio.h"} <= {p.name for p in c.iterdir()}
    assert "model_audio.c" in (c / "CMakeLists.txt").read_text()


def test_search_with_two_workers_trains_ddp_and_scores_on_ray(tmp_path):
    """--workers 2: the supernet trains on two torch.distributed processes and the candidates are scored as
    Ray tasks; the memo (evaluations.json) holds every score, and the winner still deploys bit-exact."""
    pytest.importorskip("ray")
    data = load_search_data("digits")
    preset = Preset(epochs=1, finetune_epochs=1, population=4, generations=1, stage1_samples=30, batch_size=32,
                    max_train=400, qat_epochs=0, baselines=False)
    report = search(data, Budgets(sram_bytes=32 * 1024, flash_bytes=192 * 1024), tmp_path / "out", preset,
                    workers=2)
    assert report["workers"] == 2 and report["searched"]["bit_exact"]
    scores = json.loads((tmp_path / "out" / "evaluations.json").read_text())
    assert len(scores) >= report["search"]["evaluations"]
    assert max(report["search"]["evolution_history"]) in scores.values()


def test_tiny_budgets_fall_back_to_narrower_spaces(tmp_path, monkeypatch):
    """At 16 KB / 64 KB even the smallest network of the paper's widths (0.2: 65,776 B of flash for digits)
    misses: stage 1 tries widths 0.1 and 0.15 before giving up."""
    import mcuforge.nas.search as search_module

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(search_module, "train_supernet", stop)
    said: list[str] = []
    with pytest.raises(Stop):
        search(load_search_data("digits"), Budgets(sram_bytes=16 * 1024, flash_bytes=64 * 1024), tmp_path / "o",
               Preset(**{**TINY.__dict__, "stage1_samples": 300}), progress=said.append)
    assert "flash" in said[0] and said[0].endswith("trying widths 0.1, 0.15"), said
    assert said[1].startswith("stage 1: space w0.1"), said
