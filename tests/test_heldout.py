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


COLOUR = DataSpec(image_shape=(32, 32, 3), classes=10)


def python_batch(path: Path, images: np.ndarray, labels: np.ndarray, protocol: int | str = 2) -> None:
    """CIFAR-10's python batch layout: a pickled dict, each image's red, green and blue planes in turn.
    protocol 'python2' writes it as the real files were written, by Python 2's cPickle: byte strings as
    Python 2 str opcodes, and numpy's old module path numpy.core.multiarray."""
    import io
    import pickle
    import struct

    planes = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in labels], b"data": planes}
    if protocol != "python2":
        path.write_bytes(pickle.dumps(batch, protocol=int(protocol)))
        return

    class Python2Pickler(pickle._Pickler):  # type: ignore[misc,name-defined]
        dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

        def save_str(self, obj: bytes) -> None:
            size = len(obj)
            opcode = (
                pickle.SHORT_BINSTRING + bytes([size]) if size < 256 else pickle.BINSTRING + struct.pack("<i", size)
            )
            self.write(opcode + obj)
            self.memoize(obj)

        dispatch[bytes] = save_str

    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(batch)
    path.write_bytes(buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))


def colour_sample(count: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, count)


@pytest.mark.parametrize("protocol", ["python2", 2, 4])
def test_cifar_python_batch_reads_as_keras_does(tmp_path: Path, protocol: int | str) -> None:
    """A `test_batch` (the dict of R, G, B planes keras's cifar10.load_data reads) gives (N, 32, 32, 3) images
    in keras's channel order, equal to the same set as an .npz, in a folder or as the file itself."""
    images, labels = colour_sample()
    python_batch(tmp_path / "test_batch", images, labels, protocol)
    np.savez(tmp_path / "same.npz", x=images, y=labels)
    batch = load_heldout(tmp_path / "test_batch", COLOUR)
    assert np.array_equal(batch.images, images) and np.array_equal(batch.labels, labels)
    assert batch.sha256 == load_heldout(tmp_path / "same.npz", COLOUR).sha256
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes((tmp_path / "test_batch").read_bytes())
    assert load_heldout(folder, COLOUR).sha256 == batch.sha256


class Payload:
    """What a hostile pickle builds: a call to os.system, which a data batch never needs."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.canary}",))


def test_a_pickle_that_builds_an_object_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    """A 'test_batch' that asks the unpickler to call os.system is refused before the call: the error names
    what it asked for, and the canary the call would have made is never there."""
    import pickle

    canary = tmp_path / "canary"
    images, labels = colour_sample()
    hostile = {b"data": Payload(canary), b"labels": [int(v) for v in labels]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(hostile, protocol=2))
    with pytest.raises(
        HeldoutError,
        match=r"not a CIFAR-10 python batch that can be read safely \(it asks to build "
        r"(posix|os)\.system",
    ):
        load_heldout(tmp_path / "test_batch", COLOUR)
    assert not canary.exists()


def test_a_batch_of_objects_or_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    """An array of Python objects (not numbers) is refused while unpickling; data of the wrong size and a
    grey set for a colour part are refused with what was expected and what was found."""
    import pickle

    objects = {b"data": np.array([[1, "two"]], dtype=object), b"labels": [0]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(objects, protocol=2))
    with pytest.raises(HeldoutError, match="holds an array of object, not numbers"):
        load_heldout(tmp_path / "test_batch", COLOUR)
    odd = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(odd, protocol=2))
    with pytest.raises(HeldoutError, match=r"'data' has shape \(2, 100\); CIFAR batches hold N x \(3 x side x side\)"):
        load_heldout(tmp_path / "test_batch", COLOUR)
    with pytest.raises(
        HeldoutError, match=r"images have shape \(3000, 28, 28\); this assignment needs \(N, 32, 32, 3\)"
    ):
        load_heldout(DEMO_HELDOUT, COLOUR)


def test_each_part_finds_its_held_out_set(tmp_path: Path) -> None:
    """With parts: a set named for a part serves it, one named for a data set serves every part judged on
    it, and a part left out is looked for in <root>/<part>/, else <root>/<data set>/."""
    from grader.courseworks.assignment import load_assignment
    from grader.courseworks.heldout import heldout_paths

    parts = list(load_assignment("uva-lab1").parts)  # mlp and cnn judged on mnist, cifar10 on cifar10
    given = heldout_paths(parts, {"mnist": "m.npz", "cnn": "c.npz", "cifar10": "b"}, single=False)
    assert given == {"mlp": Path("m.npz"), "cnn": Path("c.npz"), "cifar10": Path("b")}
    (tmp_path / "mnist").mkdir()
    (tmp_path / "cnn").mkdir()
    found = heldout_paths(parts, tmp_path, single=False)
    assert found == {"mlp": tmp_path / "mnist", "cnn": tmp_path / "cnn", "cifar10": tmp_path / "cifar10"}
    with pytest.raises(HeldoutError, match="--heldout names svhn, which this assignment has no part or data set"):
        heldout_paths(parts, {"svhn": "x.npz"}, single=False)
