"""Data loaders: bundled digits, user arrays, image folders (nothing downloads)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mcuforge.data import DataError, Split, load_arrays, load_digits, load_image_folder, split_indices

HAVE_PILLOW = importlib.util.find_spec("PIL") is not None


def test_digits_shapes_ranges_and_labels():
    pytest.importorskip("sklearn")
    split = load_digits()
    assert isinstance(split, Split)
    n = len(split.x_train) + len(split.x_test)
    assert n == 1797 and len(split.x_test) == round(0.25 * 1797)
    for x, y in ((split.x_train, split.y_train), (split.x_test, split.y_test)):
        assert x.dtype == np.float32 and x.shape[1:] == (8, 8, 1) and len(x) == len(y)
        assert y.dtype == np.int64 and set(np.unique(y)) <= set(range(10))
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert split.x_train.max() == 1.0
    assert len(np.unique(split.y_test)) == 10


def test_digits_split_is_deterministic_and_disjoint():
    pytest.importorskip("sklearn")
    a, b, other = load_digits(seed=3), load_digits(seed=3), load_digits(seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, other.y_test)
    train, test = split_indices(1797, 0.25, seed=3)
    assert not set(train) & set(test) and len(train) + len(test) == 1797
    from sklearn.datasets import load_digits as sk_digits

    images = sk_digits().images.astype(np.float32) / 16
    np.testing.assert_array_equal(a.x_test[..., 0], images[test])
    np.testing.assert_array_equal(a.x_train[..., 0], images[train])
    assert len(load_digits(test_fraction=0.1).x_test) == round(0.1 * 1797)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.0)


def test_load_arrays_npy_and_npz(tmp_path):
    x = np.arange(24, dtype=np.uint8).reshape(3, 2, 2, 2)
    y = np.array([2, 0, 1], np.int32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    got = load_arrays(tmp_path / "x.npy", tmp_path / "y.npy")
    assert got.x.dtype == np.float32 and got.y.dtype == np.int64
    np.testing.assert_array_equal(got.x, x)
    np.testing.assert_array_equal(got.y, y)
    assert load_arrays(tmp_path / "x.npy").y is None

    np.savez(tmp_path / "both.npz", x=x, y=y)
    xs, ys = load_arrays(tmp_path / "both.npz")
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)
    np.savez(tmp_path / "only.npz", data=x)
    assert load_arrays(tmp_path / "only.npz").x.shape == x.shape


def test_load_arrays_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 4)))
    np.save(tmp_path / "y.npy", np.zeros(2, np.int64))
    np.save(tmp_path / "yf.npy", np.zeros(3, np.float32))
    np.savez(tmp_path / "two.npz", a=np.zeros(1), b=np.zeros(1))
    (tmp_path / "x.csv").write_text("1,2\n")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="one label per sample"):
        load_arrays(tmp_path / "x.npy", tmp_path / "y.npy")
    with pytest.raises(DataError, match="integers"):
        load_arrays(tmp_path / "x.npy", tmp_path / "yf.npy")
    with pytest.raises(DataError, match="no such file"):
        load_arrays(tmp_path / "missing.npy")
    with pytest.raises(DataError, match="expected .npy or .npz"):
        load_arrays(tmp_path / "x.csv")
    with pytest.raises(DataError, match="name the x array 'x'"):
        load_arrays(tmp_path / "two.npz")
    with pytest.raises(DataError, match="cannot read"):
        load_arrays(tmp_path / "bad.npy")


def _write_images(root, classes: dict[str, list[np.ndarray]]) -> None:
    from PIL import Image

    for name, images in classes.items():
        (root / name).mkdir(parents=True)
        for k, pixels in enumerate(images):
            Image.fromarray(pixels).save(root / name / f"{k}.png")


@pytest.mark.skipif(not HAVE_PILLOW, reason="Pillow is not installed")
def test_image_folder(tmp_path):
    white = np.full((6, 4, 3), 255, np.uint8)
    red = np.zeros((6, 4, 3), np.uint8)
    red[..., 0] = 255
    gray = np.full((5, 5), 51, np.uint8)
    _write_images(tmp_path, {"zebra": [white], "apple": [red, red], "mango": [gray]})
    (tmp_path / "notes.txt").write_text("not a class")
    (tmp_path / "apple" / "readme.md").write_text("not an image")

    data = load_image_folder(tmp_path, size=(3, 2))
    assert data.classes == ("apple", "mango", "zebra")
    assert data.x.shape == (4, 3, 2, 3) and data.x.dtype == np.float32
    np.testing.assert_array_equal(data.y, [0, 0, 1, 2])
    np.testing.assert_allclose(data.x[0], np.broadcast_to([1.0, 0.0, 0.0], (3, 2, 3)))
    np.testing.assert_allclose(data.x[2], 0.2, atol=1e-6)
    np.testing.assert_allclose(data.x[3], 1.0)

    x, y, classes = load_image_folder(tmp_path, size=(4, 4), grayscale=True)
    assert x.shape == (4, 4, 4, 1) and 0.0 <= x.min() and x.max() <= 1.0
    assert classes == data.classes and np.array_equal(y, data.y)


@pytest.mark.skipif(not HAVE_PILLOW, reason="Pillow is not installed")
def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(DataError, match="no class sub-folders"):
        load_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_image_folder(tmp_path)
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read the image"):
        load_image_folder(tmp_path)


def test_missing_pillow_says_what_to_install(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        load_image_folder(tmp_path)
