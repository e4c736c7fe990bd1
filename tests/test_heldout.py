"""Held-out sets: .npz in either layout, MNIST IDX files, a folder holding one; checked and hashed."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from grader.courseworks.assignment import DataSpec
from grader.courseworks.heldout import load_heldout, write_images
from grader.errors import HeldoutError

from .conftest import DEMO_HELDOUT

SPEC = DataSpec()


def sample(count: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), rng.integers(0, 10, count).astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


def test_demo_heldout_is_mnist_shaped() -> None:
    """The committed demo set loads: 3,000 uint8 28x28 images with labels 0-9."""
    heldout = load_heldout(DEMO_HELDOUT, SPEC)
    assert heldout.images.shape == (3000, 28, 28) and heldout.images.dtype == np.uint8
    assert set(np.unique(heldout.labels)) == set(range(10))


@pytest.mark.parametrize("keys", [("x", "y"), ("x_test", "y_test")])
def test_npz_layouts(tmp_path: Path, keys: tuple[str, str]) -> None:
    """Both x/y and keras's x_test/y_test layouts load, with identical hashes for identical data."""
    x, y = sample()
    path = tmp_path / "set.npz"
    np.savez(path, **{keys[0]: x, keys[1]: y})
    heldout = load_heldout(path, SPEC)
    assert heldout.size == 20
    other = tmp_path / "other.npz"
    np.savez_compressed(other, x=x, y=y)
    assert load_heldout(other, SPEC).sha256 == heldout.sha256  # content, not file bytes


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_files(tmp_path: Path, suffix: str) -> None:
    """MNIST IDX pairs (plain or gzipped) load from either file of the pair."""
    x, y = sample()
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", x)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", y)
    heldout = load_heldout(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", SPEC)
    assert np.array_equal(heldout.images, x) and np.array_equal(heldout.labels, y)
    assert load_heldout(tmp_path, SPEC).sha256 == heldout.sha256


def test_labels_change_the_set_hash_but_not_the_images_hash(tmp_path: Path) -> None:
    """Predictions depend on the images only: a label fix keeps the images hash."""
    x, y = sample()
    np.savez(tmp_path / "a.npz", x=x, y=y)
    np.savez(tmp_path / "b.npz", x=x, y=(y + 1) % 10)
    a, b = load_heldout(tmp_path / "a.npz", SPEC), load_heldout(tmp_path / "b.npz", SPEC)
    assert a.images_sha256 == b.images_sha256 and a.sha256 != b.sha256


def test_worker_file_holds_images_only(tmp_path: Path) -> None:
    """The file a worker reads holds the images and nothing else: no labels cross to the worker."""
    x, y = sample()
    np.savez(tmp_path / "set.npz", x=x, y=y)
    written = write_images(load_heldout(tmp_path / "set.npz", SPEC), tmp_path)
    loaded = np.load(written, allow_pickle=False)
    assert isinstance(loaded, np.ndarray) and np.array_equal(loaded, x)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((5, 28, 28), np.float32), "y": np.zeros(5, np.uint8)}, "images are float32"),
        ({"x": np.zeros((5, 32, 32), np.uint8), "y": np.zeros(5, np.uint8)}, r"shape \(5, 32, 32\)"),
        ({"x": np.zeros((5, 28, 28), np.uint8), "y": np.full(5, 10, np.uint8)}, "labels run from 10 to 10"),
        ({"x": np.zeros((5, 28, 28), np.uint8), "y": np.zeros(4, np.uint8)}, r"\(4,\) labels for 5 images"),
        ({"images": np.zeros((5, 28, 28), np.uint8)}, "needs arrays x and y"),
    ],
)
def test_bad_heldout_sets_are_refused(tmp_path: Path, arrays: dict, message: str) -> None:
    """Every way a held-out set can be wrong stops the run with a message that says which."""
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(HeldoutError, match=message):
        load_heldout(tmp_path / "bad.npz", SPEC)


def test_folder_must_hold_exactly_one_set(tmp_path: Path) -> None:
    """An empty folder, or one with two sets, is an error that says what to do."""
    with pytest.raises(HeldoutError, match="holds no held-out set"):
        load_heldout(tmp_path, SPEC)
    x, y = sample()
    np.savez(tmp_path / "a.npz", x=x, y=y)
    np.savez(tmp_path / "b.npz", x=x, y=y)
    with pytest.raises(HeldoutError, match="holds 2 held-out sets .*remove the demo set"):
        load_heldout(tmp_path, SPEC)
    with pytest.raises(HeldoutError, match="no held-out set here"):
        load_heldout(tmp_path / "missing.npz", SPEC)
