"""Build a demo cohort for Oxford's Practical 3 and a folder of handwritten digits for KIT's exercise 9.

    python scripts/make_demo_oxford.py --mnist ../shared/data/mnist.npz --digits ../shared/data/usps_test.npz

writes demo/oxford-practical3/submissions/ (one Moodle folder per student: the practical's network trained on
MNIST to about 99%, the same network spelled with activation layers, then one with stride 1, 'valid' padding in
the second convolution, 32 filters, no dropout, an extra dense layer, and the exact network trained badly),
demo/oxford-practical3/heldout/mnist-test.npz (MNIST's 10,000 test digits), and demo/kit-ex9/my_digits/ (USPS
digits, written by other people than MNIST's, as PNGs in one folder per class, two of them inverted to dark on
light), with demo/kit-ex9/model.h5 (a small CNN trained on MNIST / 255). Then:

    grade demo/oxford-practical3/submissions --assignment oxford-practical3 \\
        --heldout demo/oxford-practical3/heldout/mnist-test.npz --out demo/oxford-practical3/reports
    grade check demo/kit-ex9/model.h5 --assignment kit-ex9 --data demo/kit-ex9/my_digits
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.build_architectures import MEAN, STD, oxford, oxford_spelled  # noqa: E402 (after the path)

# Folder -> (network, epochs, training images); an epoch count of 0 means a few steps only (trained badly).
COHORT = {
    "Ada Lovelace_400001_assignsubmission_file_": ("exact", 2, 60000),
    "Alan Turing_400002_assignsubmission_file_": ("spelled", 2, 60000),
    "Grace Hopper_400003_assignsubmission_file_": ("stride1", 1, 20000),
    "Edsger Dijkstra_400004_assignsubmission_file_": ("valid2", 1, 20000),
    "Barbara Liskov_400005_assignsubmission_file_": ("filters32", 1, 20000),
    "Donald Knuth_400006_assignsubmission_file_": ("nodropout", 1, 20000),
    "Frances Allen_400007_assignsubmission_file_": ("extra_dense", 1, 20000),
    "Ken Thompson_400008_assignsubmission_file_": ("exact", 0, 1280),
}
CHANGES = {
    "exact": {},
    "stride1": {"strides1": 1},
    "valid2": {"padding2": "valid"},
    "filters32": {"filters1": 32},
    "nodropout": {"dropout": False},
    "extra_dense": {"extra_dense": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", required=True, help="MNIST in keras's layout (x_train, y_train, x_test, y_test)")
    parser.add_argument("--digits", required=True, help="digits by other writers, .npz with x (N, 28, 28) and y")
    parser.add_argument("--out", default="demo", help="where to write (default: demo/)")
    args = parser.parse_args()
    import keras

    keras.utils.set_random_seed(7)
    out = Path(args.out)
    with np.load(args.mnist) as data:
        x_train, y_train, x_test, y_test = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    normalised = ((x_train.astype("float32") / 255 - MEAN) / STD)[..., None]
    heldout = out / "oxford-practical3" / "heldout"
    heldout.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(heldout / "mnist-test.npz", x=x_test, y=y_test)
    for folder, (network, epochs, images) in COHORT.items():
        model = (
            oxford_spelled(keras, keras.layers)
            if network == "spelled"
            else oxford(keras, keras.layers, **CHANGES[network])
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        model.fit(normalised[:images], y_train[:images], epochs=max(epochs, 1), batch_size=64, verbose=0)
        target = out / "oxford-practical3" / "submissions" / folder
        target.mkdir(parents=True, exist_ok=True)
        model.save(target / "model.h5", include_optimizer=False)
        trained = f"{epochs} epoch(s)" if epochs else f"one epoch ({images // 64} steps)"
        print(f"{folder}: {network}, {trained} on {images:,} images")
    kit = kit_model(keras)
    kit.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    kit.fit((x_train.astype("float32") / 255)[..., None], y_train, epochs=2, batch_size=128, verbose=0)
    (out / "kit-ex9").mkdir(parents=True, exist_ok=True)
    kit.save(out / "kit-ex9" / "model.h5", include_optimizer=False)
    print(f"wrote {out / 'kit-ex9' / 'model.h5'}: a small CNN trained on MNIST / 255")
    write_digits(Path(args.digits), out / "kit-ex9" / "my_digits")


def kit_model(keras):  # type: ignore[no-untyped-def]
    """A small CNN of the kind KIT's train.py defines (convolution, pooling, dense; its code is not in the seed)."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(32, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )


def write_digits(source: Path, folder: Path, count: int = 100) -> None:
    """The first `count` digits of another writer's set as PNGs, one folder per class; two inverted."""
    from PIL import Image

    with np.load(source) as data:
        images, labels = data["x"][:count], data["y"][:count]
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        shown = 255 - image if index < 2 else image
        Image.fromarray(shown).save(folder / str(label) / f"digit_{index:03d}.png")
    print(f"wrote {count} PNG digits to {folder} (two of them dark on light)")


if __name__ == "__main__":
    main()
