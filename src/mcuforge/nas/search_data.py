"""The data `mcuforge search` takes, as channels-first float32 samples with int labels.

    data = load_search_data("digits")                  # built in (scikit-learn's digits)
    data = load_search_data("fashion_mnist.npz")       # x_train, y_train, x_test, y_test
    data = load_search_data("photos/")                 # one sub-folder of images per class

Images are (N, H, W) or (N, H, W, C) (uint8 scaled to [0, 1]); signals (N, C, L) with signal=True; raw audio
(N, samples) of int16 goes through the fixed-point log-mel front-end (mcuforge.audio, at the file's
`sample_rate`, 16 kHz when absent) and becomes a 1-D signal of `mels` channels over the frames: what the
generated C computes on the device from the same samples. Bad data is refused with one UsageError line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError, shown

MIN_PER_CLASS = 2


@dataclass(frozen=True, eq=False)
class SearchData:
    """Samples channels first (NCHW images, NCL signals), float32; int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    signal: bool
    classes: int
    source: str
    frontend: object = None  # audio.FrontendConfig for raw audio: the network sees its features
    test_clips: np.ndarray | None = None  # raw audio: the test split's int16 samples, for the C end to end


def _as_samples(x: np.ndarray, signal: bool, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "uif":
        raise UsageError(f"{what} holds {x.dtype} values: give numbers")
    scale = np.float32(255.0) if x.dtype == np.uint8 else np.float32(1.0)
    x = x.astype(np.float32) / scale
    if signal:
        if x.ndim != 3:
            raise UsageError(f"{what} has shape {list(x.shape)}: signals are (N, channels, length)")
        return x
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, H, W, C) -> NCHW
    raise UsageError(f"{what} has shape {list(x.shape)}: images are (N, H, W) or (N, H, W, C)")


FOLDER_SIZE = (64, 64)  # images of a class-folder dataset are resized to this (height, width)
FOLDER_TEST_FRACTION = 0.2


def _audio(arrays: dict, sample_rate: int | None) -> tuple[object, dict]:
    """Raw audio (N, samples) int16 -> the front-end's features as NCL signals (channels: mels)."""
    from ..audio import FrontendConfig, features
    from ..audio.glue import network_input

    for key in ("x_train", "x_test"):
        if arrays[key].dtype != np.int16:
            raise UsageError(f"{key} looks like raw audio (N, samples) but holds {arrays[key].dtype}: give int16 "
                             "samples (or images (N, H, W), signals (N, C, L))")
    try:
        config = FrontendConfig(sample_rate=int(sample_rate or 16000))
    except ValueError as e:
        raise UsageError(f"sample_rate: {e}") from None
    if arrays["x_train"].shape[1] != arrays["x_test"].shape[1] or config.frames(arrays["x_train"].shape[1]) < 32:
        raise UsageError(f"clips of {arrays['x_train'].shape[1]} and {arrays['x_test'].shape[1]} samples: give clips "
                         f"of one length, at least {32 * config.stride_samples + config.window_samples} samples")
    out = dict(arrays)
    for key in ("x_train", "x_test"):
        out[key] = np.ascontiguousarray(network_input(features(arrays[key], config)).transpose(0, 2, 1))
    return config, out


def load_search_data(source: str, signal: bool = False) -> SearchData:
    """"digits" (scikit-learn's, built in), an .npz with x_train, y_train, x_test, y_test, or a folder with
    one sub-folder of images per class (resized to FOLDER_SIZE; a seeded fifth held back as the test split)."""
    sample_rate = None
    if source == "digits":
        from ..data import load_digits

        d = load_digits()
        arrays = {"x_train": d.x_train, "y_train": d.y_train, "x_test": d.x_test, "y_test": d.y_test}
    elif Path(source).is_dir() and not signal:
        from ..data import load_image_folder, split_indices

        try:
            folder = load_image_folder(source, FOLDER_SIZE)
        except ImportError as e:
            raise UsageError(str(e)) from None
        if len(folder.y) < 2:
            raise UsageError(f"--data {shown(source)}: {len(folder.y)} image(s); a search needs many per class")
        train, test = split_indices(len(folder.y), FOLDER_TEST_FRACTION, seed=0)
        arrays = {"x_train": folder.x[train], "y_train": folder.y[train], "x_test": folder.x[test],
                  "y_test": folder.y[test]}
    else:
        path = Path(source)
        if not path.is_file() or path.suffix.lower() != ".npz":
            raise UsageError(f"--data {shown(source)}: give an .npz with x_train, y_train, x_test, y_test, or 'digits'")
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
            if missing:
                raise UsageError(f"{shown(source)} has no {', '.join(missing)}: save x_train, y_train, x_test, y_test")
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            sample_rate = int(f["sample_rate"]) if "sample_rate" in f.files else None
    frontend, test_clips = None, None
    if np.asarray(arrays["x_train"]).ndim == 2:  # raw audio (N, samples)
        test_clips = np.asarray(arrays["x_test"])
        frontend, arrays = _audio(arrays, sample_rate)
        signal = True
    x_train = _as_samples(arrays["x_train"], signal, "x_train")
    x_test = _as_samples(arrays["x_test"], signal, "x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UsageError(f"x_train samples {list(x_train.shape[1:])} and x_test samples {list(x_test.shape[1:])} "
                         "differ")
    ys = []
    for name, y, x in (("y_train", arrays["y_train"], x_train), ("y_test", arrays["y_test"], x_test)):
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
            raise UsageError(f"{name} must hold one integer label per sample ({len(x)}), not {y.dtype} "
                             f"{list(y.shape)}")
        ys.append(y.astype(np.int64))
    classes = int(ys[0].max()) + 1
    if ys[0].min() < 0 or ys[1].min() < 0 or ys[1].max() >= classes:
        raise UsageError(f"labels must be 0..{classes - 1} (from y_train), in y_train and y_test")
    counts = np.bincount(ys[0], minlength=classes)
    if classes < 2 or counts.min() < MIN_PER_CLASS:
        raise UsageError(f"every class needs at least {MIN_PER_CLASS} training samples; class {int(counts.argmin())} "
                         f"has {int(counts.min())}")
    return SearchData(x_train, ys[0], x_test, ys[1], signal, classes, source, frontend, test_clips)


def resolutions_for(data: SearchData) -> tuple[int, ...]:
    """Input resolutions stage 1 may pick: from 32 up to twice the data's own size (at least 64); for audio
    only the front-end's frames (the device computes the features, nothing resizes them)."""
    size = data.x_train.shape[-1]
    if data.frontend is not None:
        return (size,)
    top = max(64, 2 * size)
    return tuple(r for r in range(32, top + 1, 16))


def validation_split(n: int, classes: int, seed: int, max_train: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices) of n training samples: a seeded permutation, cut to `max_train`,
    a tenth (at least one per class) held out for validation; the test split is never touched."""
    order = np.random.default_rng(seed).permutation(n)
    if max_train:
        order = order[:max_train]
    n_val = max(classes, len(order) // 10)
    return order[n_val:], order[:n_val]


def resize(x: np.ndarray, resolution: int, signal: bool) -> np.ndarray:
    """Samples resampled to `resolution` (bilinear; linear for signals); unchanged at their own size."""
    if x.shape[-1] == resolution and (signal or x.shape[-2] == resolution):
        return np.ascontiguousarray(x, np.float32)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(x)
    if signal:
        out = F.interpolate(t, size=resolution, mode="linear", align_corners=False)
    else:
        out = F.interpolate(t, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return out.numpy().astype(np.float32)




__all__ = ["SearchData", "load_search_data", "resize", "resolutions_for", "validation_split"]
