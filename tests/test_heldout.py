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

from .conftest import DEMO_HELDOUT, SHARED

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


def digits(count: int = 20) -> tuple[np.ndarray, np.ndarray]:
    with np.load(DEMO_HELDOUT) as data:
        return data["x"][:count], data["y"][:count]


def save(image: np.ndarray, path: Path, mode: str | None = None) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(image)
    (picture.convert(mode) if mode else picture).save(path)


def test_a_folder_of_class_folders_reads_as_the_pixels_and_labels(tmp_path: Path) -> None:
    """PNG (grey, RGB, RGBA) and JPEG digits in class folders: grey 28x28 images in path order, each labelled by
    its folder, the PNGs' pixels exactly as saved; names kept for reports; hidden files left out."""
    images, labels = digits()
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        mode = (None, "RGB", "RGBA")[index % 3]
        save(image, tmp_path / str(label) / f"d{index:02d}.png", mode)
    save(images[0], tmp_path / str(labels[0]) / ".hidden.png")
    heldout = load_heldout(tmp_path, DataSpec())
    order = sorted(range(len(labels)), key=lambda i: f"{labels[i]}/d{i:02d}.png")
    assert heldout.names == tuple(f"{labels[i]}/d{i:02d}.png" for i in order)
    assert np.array_equal(heldout.labels, labels[order])
    assert np.array_equal(heldout.images, images[order])
    assert len(heldout.notes) == 1 and heldout.notes[0].startswith("6 images had transparency, laid over black")


def test_labels_from_a_file_name_pattern(tmp_path: Path) -> None:
    """With [data] label_pattern, the class comes from the file name ('7_mine.png'), folders or not."""
    images, labels = digits(5)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        save(image, tmp_path / ("sub" if index % 2 else ".") / f"{label}_mine_{index}.png")
    heldout = load_heldout(tmp_path, DataSpec(label_pattern=r"^(?P<label>[0-9])_"))
    assert sorted(heldout.labels.tolist()) == sorted(labels.tolist())
    with pytest.raises(HeldoutError, match=r"does not match \[data\] label_pattern"):
        save(images[0], tmp_path / "unnamed.png")
        load_heldout(tmp_path, DataSpec(label_pattern=r"^(?P<label>[0-9])_"))


def test_class_names_label_colour_images(tmp_path: Path) -> None:
    """Colour images in folders named for CIFAR-10's classes are read as RGB with those labels."""
    rng = np.random.default_rng(0)
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    for name in ("cat", "ship"):
        save(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), tmp_path / name / "a.png")
    heldout = load_heldout(tmp_path, DataSpec(image_shape=(32, 32, 3), class_names=names))
    assert heldout.images.shape == (2, 32, 32, 3) and heldout.labels.tolist() == [3, 8]


def test_images_of_another_size_are_an_error_unless_resizing_is_asked(tmp_path: Path) -> None:
    """A 32x32 drawing is refused with the sizes found and the fix; with resize = true it is scaled to 28x28."""
    from PIL import Image

    images, labels = digits(2)
    save(images[0], tmp_path / str(labels[0]) / "ok.png")
    save(np.asarray(Image.fromarray(images[1]).resize((32, 32))), tmp_path / str(labels[1]) / "big.png")
    with pytest.raises(HeldoutError, match=r"1 of 2 images are not 28x28 \(.*big.png \(32x32\)\); .*resize = true"):
        load_heldout(tmp_path, DataSpec())
    heldout = load_heldout(tmp_path, DataSpec(resize=True))
    assert heldout.images.shape == (2, 28, 28) and "1 images were resized to 28x28" in heldout.notes[0]


def test_dark_digits_on_white_are_pointed_out(tmp_path: Path) -> None:
    """Digits drawn black on white (the exercise asks for white on black) are read, and named in a note."""
    images, labels = digits(4)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        save(255 - image if index < 2 else image, tmp_path / str(label) / f"d{index}.png")
    notes = load_heldout(tmp_path, DataSpec()).notes
    assert len(notes) == 1 and notes[0].startswith("2 of 4 images look like dark digits on a light background")
    assert "white digits on a black background" in notes[0]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"loose.png": "7"}, "cannot tell its class: it is not in a class folder"),
        ({"12/a.png": "7"}, "'12' is not a class of this assignment"),
        ({"3/broken.png": "not an image"}, "not an image Pillow can read"),
    ],
)
def test_folders_whose_classes_or_images_cannot_be_read(tmp_path: Path, layout: dict, message: str) -> None:
    """An image outside a class folder, a folder that is no class, and a file that is no image: errors naming it."""
    images, _ = digits(1)
    for name, content in layout.items():
        if content == "not an image":
            (tmp_path / name).parent.mkdir(parents=True)
            (tmp_path / name).write_text("hello")
        else:
            save(images[0], tmp_path / name)
    with pytest.raises(HeldoutError, match=message):
        load_heldout(tmp_path, DataSpec())


def test_sixteen_bit_grey_pngs_are_scaled_not_clipped(tmp_path: Path) -> None:
    """A 16-bit grey PNG (some editors export them) is read as its 8-bit values, not clipped at 255."""
    from PIL import Image

    images, labels = digits(1)
    image, label = images[0], int(labels[0])
    (tmp_path / str(label)).mkdir()
    Image.fromarray(image.astype(np.uint16) * 257).save(tmp_path / str(label) / "wide.png")
    heldout = load_heldout(tmp_path, DataSpec())
    assert np.array_equal(heldout.images[0], image)


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("public", "file", "part"), [("mnist", "mnist.npz", "mlp"), ("cifar10", "cifar10_test.npz", "cifar10")]
)
def test_a_public_test_set_given_as_a_file_is_named_by_its_hash(public: str, file: str, part: str) -> None:
    """`grade check --data FILE` names the data "MNIST test set" or "CIFAR-10 test set" when the file holds that
    set (its images and labels hash to the set's, grader.courseworks.datasets.SHA256), whatever the file's name;
    any other file is named by its file name."""
    from grader.checking import describe_data
    from grader.courseworks.assignment import load_assignment

    path = SHARED / "data" / file
    if not path.exists():
        pytest.skip(f"{path} is absent: the corpus tests need ../shared")
    spec = load_assignment("uva-lab1").part(part)
    heldout = load_heldout(path, spec.data)
    named = describe_data(heldout, path, spec, downloaded=False)
    assert named == {"mnist": "MNIST test set", "cifar10": "CIFAR-10 test set"}[public] + " (10,000 images)"
    demo = load_heldout(DEMO_HELDOUT, load_assignment("uva-lab1").part("mlp").data)
    assert describe_data(demo, DEMO_HELDOUT, spec, downloaded=False) == f"{DEMO_HELDOUT.name} (3,000 images)"
