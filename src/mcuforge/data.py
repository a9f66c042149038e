"""Data sets for calibration, training and evaluation; nothing here downloads anything.

- `load_digits`: scikit-learn's bundled 8x8 handwritten digits (it ships inside the package), as a
  train/test `Split` in the IR's layout (float32 NHWC in [0, 1], int64 labels).
- `load_arrays`: the user's own `.npy` / `.npz` arrays.
- `load_image_folder`: a folder with one sub-folder of images per class (needs Pillow).

scikit-learn and Pillow are imported only when a loader needs them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import McuforgeError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"})


class DataError(McuforgeError):
    """A data file or folder is missing, malformed or inconsistent."""


@dataclass(frozen=True, eq=False)
class Split:
    """Train and test samples: x float32 NHWC, y int64 class indices."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class Arrays(NamedTuple):
    x: np.ndarray  # float32
    y: np.ndarray | None  # int64, one label per sample of x


class ImageFolder(NamedTuple):
    x: np.ndarray  # float32 [N, H, W, C] in [0, 1]
    y: np.ndarray  # int64 [N], indices into classes
    classes: tuple[str, ...]  # sub-folder names, sorted


def _require(module: str, package: str, purpose: str) -> Any:
    """Imports `module`, or raises an ImportError that says what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{purpose} needs {package}: pip install {package}") from e


# ---------------------------------------------------------------- digits


def shuffled_batches(n: int, batch_size: int, key: tuple[int, ...]) -> list[np.ndarray]:
    """range(n) shuffled by a generator seeded with `key`, cut into whole batches (a last partial one dropped):
    one training epoch's batch order, the same on every run and on a resumed one."""
    order = np.random.default_rng(key).permutation(n)
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded shuffle of range(n) cut into (train, test) index arrays."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(max(round(n * test_fraction), 1), n - 1)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Split:
    """scikit-learn's 1797 8x8 handwritten digits as x [N, 8, 8, 1] in [0, 1] and y in 0..9."""
    datasets = _require("sklearn.datasets", "scikit-learn", "load_digits")
    bunch = datasets.load_digits()
    x = (np.asarray(bunch.images, np.float32) / np.float32(16.0))[..., None]
    y = np.asarray(bunch.target, np.int64)
    train, test = split_indices(len(y), test_fraction, seed)
    return Split(x[train], y[train], x[test], y[test])


# ---------------------------------------------------------------- user arrays


def _load_array(path: Path, key: str) -> np.ndarray:
    """One array from a .npy file, or from a .npz file (the array named `key`, or its only array)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(f"{path}: unknown array format '{path.suffix}' (expected .npy or .npz)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read it as {suffix}: {e}") from None
    if suffix == ".npy":
        return loaded
    with loaded:
        names = list(loaded.files)
        if key in names:
            return loaded[key]
        if len(names) == 1:
            return loaded[names[0]]
        raise DataError(f"{path}: holds arrays {names}; name the {key} array '{key}'")


def load_arrays(x_path: str | os.PathLike, y_path: str | os.PathLike | None = None) -> Arrays:
    """Samples (float32) and labels (int64) from .npy/.npz files.

    With no `y_path`, an .npz `x_path` may hold both, as arrays named 'x' and 'y'."""
    x_file = Path(x_path)
    x = _load_array(x_file, "x").astype(np.float32)
    y: np.ndarray | None = None
    if y_path is not None:
        y = _load_array(Path(y_path), "y")
    elif x_file.suffix.lower() == ".npz":
        with np.load(x_file, allow_pickle=False) as both:
            y = both["y"] if "y" in both.files else None
    if y is None:
        return Arrays(x, None)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"labels of shape {list(y.shape)} do not give one label per sample of x {list(x.shape)}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"labels must be integers, got {y.dtype}")
    return Arrays(x, y.astype(np.int64))


# ---------------------------------------------------------------- image folders


def _class_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.name)
    if not folders:
        raise DataError(f"{root}: no class sub-folders (expected one sub-folder of images per class)")
    return folders


def _images_in(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _read_image(image_module: Any, path: Path, size: tuple[int, int], grayscale: bool) -> np.ndarray:
    """One image as float32 [H, W, C] in [0, 1], resized to `size` (height, width)."""
    try:
        with image_module.open(path) as img:
            img = img.convert("L" if grayscale else "RGB")
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), image_module.BILINEAR)
            pixels = np.asarray(img, np.float32) / np.float32(255.0)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the image: {e}") from None
    return pixels[..., None] if grayscale else pixels


def load_image_folder(root: str | os.PathLike, size: tuple[int, int] = (32, 32),
                      grayscale: bool = False) -> ImageFolder:
    """Images under root/<class>/*.png|jpg|..., resized to size (height, width); classes sorted by name."""
    image_module = _require("PIL.Image", "pillow", "load_image_folder")
    height, width = (int(v) for v in size)
    if min(height, width) < 1:
        raise ValueError(f"size must be positive (height, width), got {tuple(size)}")
    classes = _class_folders(Path(root))
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for label, folder in enumerate(classes):
        for path in _images_in(folder):
            xs.append(_read_image(image_module, path, (height, width), grayscale))
            ys.append(label)
    return ImageFolder(np.stack(xs).astype(np.float32), np.asarray(ys, np.int64), tuple(p.name for p in classes))
