"""The held-out set: read it, check it against the assignment, hash it, and split images from labels.

Formats: an .npz (x/y, or keras's x_test/y_test), MNIST's IDX files (gzipped or not), CIFAR-10's
python batches (`test_batch`, a pickle: read with an unpickler that builds nothing but dicts, lists,
bytes, strings, numbers and plain numeric numpy arrays), and folders of PNG or JPEG images (a student's own
handwriting, as KIT's exercise 9 asks), labelled by class folder ('3/mine.png') or by a pattern in the file
name. Labels never leave the grading process: `write_images` gives a worker a file with the images alone.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from grader import defaults
from grader.courseworks.assignment import Assignment, DataSpec, Part
from grader.errors import GraderError, HeldoutError

NPZ_KEYS = (("x", "y"), ("x_test", "y_test"))
IDX_DTYPES = {0x08: np.uint8}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# A grey image whose border is brighter than this (0-255, median of the outermost pixels) has a light
# background: MNIST-style models learned white digits on black.
LIGHT_BACKGROUND = 127
MAX_LISTED = 5


@dataclass(frozen=True)
class HeldoutSet:
    """Labelled images, checked against the assignment's data layout."""

    images: np.ndarray
    "uint8 array of shape (N, *image_shape)."
    labels: np.ndarray
    "int64 array of shape (N,), values 0 .. classes-1."
    source: str
    "The file (or files) the set was read from."
    sha256: str
    "Hash of images and labels together: changes whenever either does."
    images_sha256: str
    "Hash of the images alone: predictions depend only on these."
    names: tuple[str, ...] = ()
    "For a folder of images: each image's path inside the folder, in the order of `images`."
    notes: tuple[str, ...] = ()
    "What a person should know about the images (light backgrounds, resized images)."

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])


def load_heldout(path: str | Path, data: DataSpec) -> HeldoutSet:
    """Read a held-out set from an .npz, a pair of IDX files, or a folder holding exactly one of them."""
    path = Path(path)
    if not path.exists():
        raise HeldoutError(
            f"{path}: no held-out set here; pass --heldout with an .npz (x/y or x_test/y_test) or MNIST IDX files"
        )
    if path.is_dir():
        return _load_from_folder(path, data)
    if path.suffix == ".npz":
        images, labels = _read_npz(path)
        return _checked(images, labels, str(path), data)
    if "idx" in path.name:
        images_path, labels_path = _idx_pair(path)
        return _checked(_read_idx(images_path), _read_idx(labels_path), _pair_name(images_path, labels_path), data)
    if _is_pickle(path):
        images, labels = _read_python_batch(path)
        return _checked(images, labels, str(path), data)
    raise HeldoutError(
        f"{path}: not a held-out set; give an .npz file, MNIST IDX files, CIFAR-10's test_batch or a folder"
    )


def write_images(heldout: HeldoutSet, folder: Path, name: str = "images") -> Path:
    """Write the images alone (no labels) as .npy, for workers to memory-map."""
    target = folder / f"{name}.npy"
    np.save(target, np.ascontiguousarray(heldout.images, dtype=np.uint8))
    return target


def heldout_paths(parts: list[Part], given: str | Path | Mapping[str, str | Path], single: bool) -> dict[str, Path]:
    """Where each part's held-out set is. One part: `given` itself (a path). Several: `given` maps a part's
    name, or the data set it is judged on (its public set, such as 'mnist', which serves every part judged
    on MNIST), to a path; a part it leaves out is looked for in heldout/<part>/, else heldout/<data set>/.
    A plain path is a folder holding those <part>/ or <data set>/ folders. Code parts have none."""
    parts = [part for part in parts if part.code is None]
    if single:
        if isinstance(given, Mapping):
            if len(given) != 1:
                raise HeldoutError("this assignment has one part: give one --heldout PATH")
            given = next(iter(given.values()))
        return {parts[0].name: Path(given)}
    mapping = given if isinstance(given, Mapping) else {}
    root = Path(defaults.HELDOUT) if isinstance(given, Mapping) else Path(given)
    keys = {part.name for part in parts} | {part.data.public for part in parts if part.data.public}
    unknown = sorted(set(mapping) - keys)
    if unknown:
        raise HeldoutError(
            f"--heldout names {', '.join(unknown)}, which this assignment has no part or data set of; its parts "
            f"are {', '.join(part.name for part in parts)}, judged on "
            f"{', '.join(sorted({part.data.public for part in parts if part.data.public})) or 'their own sets'}"
        )
    paths = {}
    for part in parts:
        named = mapping.get(part.name) or (mapping.get(part.data.public) if part.data.public else None)
        if named is not None:
            paths[part.name] = Path(named)
        elif not (root / part.name).exists() and part.data.public and (root / part.data.public).exists():
            paths[part.name] = root / part.data.public
        else:
            paths[part.name] = root / part.name
    return paths


def _load_from_folder(folder: Path, data: DataSpec) -> HeldoutSet:
    npz = sorted(folder.glob("*.npz"))
    idx_images = sorted(p for p in folder.iterdir() if "idx3" in p.name or "images-idx" in p.name)
    batches = sorted(p for p in folder.iterdir() if p.name == "test_batch")
    found = [str(p.name) for p in npz] + [str(p.name) for p in idx_images] + [str(p.name) for p in batches]
    if not found:
        pictures = _image_files(folder)
        if pictures:
            return _read_image_folder(folder, pictures, data)
        raise HeldoutError(
            f"{folder}: holds no held-out set (.npz with x/y, MNIST IDX files, CIFAR-10's test_batch, or PNG/JPEG "
            "images in one folder per class); add one or pass --heldout"
        )
    if len(found) > 1:
        raise HeldoutError(
            f"{folder}: holds {len(found)} held-out sets ({', '.join(found)}); keep one there "
            "(remove the demo set when you add your own) or pass --heldout FILE"
        )
    return load_heldout((npz or idx_images or batches)[0], data)


def _image_files(folder: Path) -> list[Path]:
    """Every PNG or JPEG under a folder (hidden files and folders left out), in path order."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _read_image_folder(folder: Path, paths: list[Path], data: DataSpec) -> HeldoutSet:
    """Images read with Pillow: grey (or RGB for colour data), checked to be the data's size (or resized when
    the assignment says so), each labelled by its class folder or the assignment's file-name pattern."""
    from PIL import Image, UnidentifiedImageError

    height, width = data.image_shape[:2]
    mode = "L" if data.channels == 1 else "RGB"
    images, labels, names = [], [], []
    wrong_size: list[str] = []
    resized: list[str] = []
    transparent: list[str] = []
    for path in paths:
        name = path.relative_to(folder).as_posix()
        labels.append(_label_for(name, data, folder))
        try:
            with Image.open(path) as opened:
                picture: Image.Image = opened
                if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
                    # A transparent background becomes black: these courseworks' digits are white on black.
                    background = Image.new("RGBA", picture.size, (0, 0, 0, 255))
                    picture = Image.alpha_composite(background, picture.convert("RGBA"))
                    transparent.append(name)
                if picture.mode.startswith("I;16") or picture.mode == "I":
                    # 16-bit grey (some editors' PNG export): Pillow's convert would clip it at 255.
                    wide = np.asarray(picture, dtype=np.float64)
                    picture = Image.fromarray(np.rint(wide * 255 / 65535).clip(0, 255).astype(np.uint8))
                picture = picture.convert(mode)
                if picture.size != (width, height):
                    if not data.resize:
                        wrong_size.append(f"{name} ({picture.size[0]}x{picture.size[1]})")
                        continue
                    picture = picture.resize((width, height), Image.Resampling.LANCZOS)
                    resized.append(name)
                images.append(np.asarray(picture, dtype=np.uint8))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as error:
            raise HeldoutError(f"{folder / name}: not an image Pillow can read ({error})") from None
        names.append(name)
    if wrong_size:
        raise HeldoutError(
            f"{folder}: {len(wrong_size)} of {len(paths)} images are not {width}x{height} "
            f"({_listed(wrong_size)}); make them {width}x{height} pixels, or set [data] resize = true in the "
            "assignment file"
        )
    notes = []
    if resized:
        notes.append(f"{len(resized)} images were resized to {width}x{height} ({_listed(resized)})")
    if transparent:
        notes.append(f"{len(transparent)} images had transparency, laid over black ({_listed(transparent)})")
    if mode == "L":
        light = [name for name, image in zip(names, images, strict=True) if _border(image) > LIGHT_BACKGROUND]
        if light:
            notes.append(
                f"{len(light)} of {len(names)} images look like dark digits on a light background "
                f"({_listed(light)}); models trained on MNIST expect white digits on a black background: "
                "invert them"
            )
    checked = _checked(np.stack(images), np.asarray(labels, dtype=np.int64), str(folder), data)
    return replace(checked, names=tuple(names), notes=tuple(notes))


def _label_for(name: str, data: DataSpec, folder: Path) -> int:
    """The class of an image: from the assignment's file-name pattern, else from its class folder."""
    names = data.names
    if data.label_pattern:
        found = re.search(data.label_pattern, name.rsplit("/", 1)[-1])
        text = None
        if found:
            text = found.groupdict().get("label") or found.group(1)
        where = f"its name does not match [data] label_pattern {data.label_pattern!r}"
    else:
        text = name.split("/")[0] if "/" in name else None
        where = "it is not in a class folder"
    if text is None:
        raise HeldoutError(
            f"{folder / name}: cannot tell its class: {where}; put each image in a folder named for its class "
            f"({names[0]}/, {names[1]}/, ...)"
            + ("" if data.label_pattern else " or give [data] label_pattern in the assignment file")
        )
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < data.classes:
        return int(text)
    raise HeldoutError(
        f"{folder / name}: {text!r} is not a class of this assignment ({', '.join(names[:10])}"
        f"{', ...' if len(names) > 10 else ''})"
    )


def _border(image: np.ndarray) -> float:
    """The median of a grey image's outermost pixels: its background, for a centred digit."""
    frame = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    return float(np.median(frame))


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


# What a CIFAR-10 python batch may build while it is unpickled: numpy's own array reconstruction, and
# the codec Python uses for bytes in old pickle protocols. Nothing else: a pickle naming any other
# callable is refused before it is called.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}
# numpy array kinds a batch may hold: booleans, integers, unsigned integers and floats (never objects).
_PLAIN_KINDS = "biuf"


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR-10's python batches that builds no arbitrary object."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"it asks to build {module}.{name}, which a data batch never needs")
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        if name == "dtype":
            return _plain_dtype
        return super().find_class(module, name)


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("it encodes text in an unexpected way")
    return text.encode("latin1")


def _plain_dtype(spec: Any, *args: Any) -> np.dtype:
    dtype = np.dtype(spec.decode() if isinstance(spec, bytes) else spec)
    if dtype.kind not in _PLAIN_KINDS:
        raise pickle.UnpicklingError(f"it holds an array of {dtype}, not numbers")
    return dtype


def _is_pickle(path: Path) -> bool:
    with open(path, "rb") as stream:
        head = stream.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's `test_batch` (a dict with b'data', N x 3072 bytes in R, G, B planes, and b'labels'), as
    keras's cifar10.load_data reads it: images (N, 32, 32, 3), labels (N,)."""
    try:
        with open(path, "rb") as stream:
            batch = _BatchUnpickler(stream, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise HeldoutError(f"{path}: not a CIFAR-10 python batch that can be read safely ({error})") from None
    if not isinstance(batch, dict):
        raise HeldoutError(f"{path}: a CIFAR-10 python batch is a dict, this pickle holds a {type(batch).__name__}")
    entries = {key.decode() if isinstance(key, bytes) else str(key): value for key, value in batch.items()}
    data = entries.get("data")
    labels = entries.get("labels", entries.get("fine_labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise HeldoutError(f"{path}: needs 'data' (an array) and 'labels'; it holds {', '.join(sorted(entries))}")
    if data.ndim != 2 or data.shape[1] % 3 or int(round((data.shape[1] // 3) ** 0.5)) ** 2 != data.shape[1] // 3:
        raise HeldoutError(f"{path}: 'data' has shape {data.shape}; CIFAR batches hold N x (3 x side x side) bytes")
    side = int(round((data.shape[1] // 3) ** 0.5))
    images = data.reshape(data.shape[0], 3, side, side).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        # allow_pickle=False: an .npz can carry pickled objects, and this file may come from anywhere.
        with np.load(path, allow_pickle=False) as archive:
            for x_key, y_key in NPZ_KEYS:
                if x_key in archive and y_key in archive:
                    return archive[x_key], archive[y_key]
            keys = ", ".join(archive.files) or "none"
    except (OSError, ValueError) as error:
        raise HeldoutError(f"{path}: cannot read this .npz ({error})") from None
    raise HeldoutError(f"{path}: needs arrays x and y (or x_test and y_test); it holds: {keys}")


def _idx_pair(path: Path) -> tuple[Path, Path]:
    name = path.name
    if "labels" in name or "idx1" in name:
        labels_path = path
        images_path = path.with_name(name.replace("labels", "images").replace("idx1", "idx3"))
    else:
        images_path = path
        labels_path = path.with_name(name.replace("images", "labels").replace("idx3", "idx1"))
    for needed in (images_path, labels_path):
        if not needed.exists():
            raise HeldoutError(f"{path}: IDX images need their labels file beside them; {needed.name} is missing")
    return images_path, labels_path


def _pair_name(images_path: Path, labels_path: Path) -> str:
    return f"{images_path} + {labels_path.name}"


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST distribution format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            blob = stream.read()
    except OSError as error:
        raise HeldoutError(f"{path}: cannot read this IDX file ({error})") from None
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] not in IDX_DTYPES:
        raise HeldoutError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    rank = blob[3]
    header = 4 + 4 * rank
    shape = struct.unpack(f">{rank}I", blob[4:header])
    count = int(np.prod(shape))
    if len(blob) - header != count:
        raise HeldoutError(f"{path}: header declares {shape} but the file holds {len(blob) - header} bytes")
    return np.frombuffer(blob, dtype=np.uint8, offset=header).reshape(shape)


def _checked(images: np.ndarray, labels: np.ndarray, source: str, data: DataSpec) -> HeldoutSet:
    expected = tuple(data.image_shape)
    if images.dtype != np.uint8:
        raise HeldoutError(
            f"{source}: images are {images.dtype}; grader feeds uint8 pixels 0-255 scaled by 1/{data.scale} "
            "as the official script does (store x as uint8)"
        )
    if images.ndim != len(expected) + 1 or images.shape[1:] != expected:
        raise HeldoutError(
            f"{source}: images have shape {images.shape}; this assignment needs (N, {', '.join(map(str, expected))})"
        )
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise HeldoutError(f"{source}: {labels.shape} labels for {images.shape[0]} images")
    if images.shape[0] == 0:
        raise HeldoutError(f"{source}: the held-out set is empty")
    if not np.issubdtype(labels.dtype, np.integer):
        raise HeldoutError(f"{source}: labels are {labels.dtype}; they must be integers 0-{data.classes - 1}")
    if labels.min() < 0 or labels.max() >= data.classes:
        raise HeldoutError(
            f"{source}: labels run from {labels.min()} to {labels.max()}; "
            f"this assignment has classes 0-{data.classes - 1}"
        )
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    images_sha256 = _hash(images)
    return HeldoutSet(
        images=images,
        labels=labels,
        source=source,
        sha256=hashlib.sha256(f"{images_sha256}:{_hash(labels)}".encode()).hexdigest(),
        images_sha256=images_sha256,
    )


def _hash(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and C-order bytes."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data.cast("B"))
    return digest.hexdigest()


def run_heldout(run: dict[str, Any], rules: Assignment, part: Part, given: Path | None = None) -> HeldoutSet:
    """The held-out set a run graded a part with (from where the run read it, or `given`), checked by hash."""
    recorded = run["options"].get("heldout", {}).get(part.name) if not rules.single else None
    source = given or Path((recorded or {}).get("source") or run["heldout_source"].split(" + ")[0])
    expected = recorded["sha256"] if recorded else run["heldout_sha256"]
    heldout = load_heldout(source, part.data)
    if heldout.sha256 != expected:
        raise GraderError(
            f"{source} is not the held-out set this run graded with (sha256 differs); pass --heldout with that set"
        )
    return heldout
