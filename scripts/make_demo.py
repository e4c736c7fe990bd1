"""Regenerate the demo cohort in submissions/ and the demo held-out set in heldout/.

    python scripts/make_demo.py                                  # MNIST from keras's loader (online)
    python scripts/make_demo.py --mnist ../shared/data/mnist.npz # or a local copy in keras's layout

Small real models trained on MNIST's training set, saved as Moodle's "Download all submissions" lays
them out (`Full Name_123456_assignsubmission_file_/file`). The held-out set is the last 3,000 images of
MNIST's test set: digits the models never saw, and the harder half of that set (written by students
rather than Census employees), so scores sit a little lower, as on the coursework's "my testset".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HELDOUT_FILE = "demo-mnist-test-3000.npz"
TRAIN_IMAGES = 20_000


def load_mnist(path: str | None) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    if path:
        with np.load(path, allow_pickle=False) as data:
            return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])
    import keras

    return keras.datasets.mnist.load_data()


def folder(name: str, participant: int) -> Path:
    """A student's folder, named as Moodle names it."""
    path = ROOT / "submissions" / f"{name}_{participant}_assignsubmission_file_"
    path.mkdir(parents=True)
    return path


def train(model, x: np.ndarray, y: np.ndarray, epochs: int = 2):  # type: ignore[no-untyped-def]
    import keras

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=model.layers[-1].activation.__name__ == "linear")
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=128, verbose=0)
    return model


def save(model, path: Path) -> None:  # type: ignore[no-untyped-def]
    # Without optimizer state: a third of the size, and what the grader loads (compile=False) anyway.
    model.save(path, include_optimizer=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", help="local mnist.npz in keras's layout (default: keras's loader)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_mnist(args.mnist)
    x = x_train[:TRAIN_IMAGES].astype("float32") / 255
    y = y_train[:TRAIN_IMAGES]

    heldout = ROOT / "heldout"
    heldout.mkdir(exist_ok=True)
    np.savez_compressed(heldout / HELDOUT_FILE, x=x_test[7000:], y=y_test[7000:].astype(np.uint8))

    shutil.rmtree(ROOT / "submissions", ignore_errors=True)
    x_flat, x_image = x.reshape(-1, 784), x.reshape(-1, 28, 28, 1)

    mlp = train(
        keras.Sequential(
            [keras.Input((784,)), layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")]
        ),
        x_flat,
        y,
    )
    save(mlp, folder("Ada Lovelace", 100001) / "mlp_model.h5")

    cnn = train(
        keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(8, 3, activation="relu"),
                layers.MaxPooling2D(),
                layers.Conv2D(16, 3, activation="relu"),
                layers.MaxPooling2D(),
                layers.Flatten(),
                layers.Dense(10, activation="softmax"),
            ]
        ),
        x_image,
        y,
    )
    save(cnn, folder("Alan Turing", 100002) / "turing_cnn.h5")

    flat = train(
        keras.Sequential(
            [
                keras.Input((28, 28)),
                layers.Flatten(),
                layers.Dense(48, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        ),
        x,
        y,
    )
    save(flat, folder("Grace Hopper", 100003) / "hopper.h5")

    logits = train(
        keras.Sequential([keras.Input((784,)), layers.Dense(32, activation="relu"), layers.Dense(10)]), x_flat, y
    )
    save(logits, folder("Katherine Johnson", 100004) / "johnson_logits.h5")

    shannon = folder("Claude Shannon", 100005)
    first = train(keras.Sequential([keras.Input((784,)), layers.Dense(10, activation="softmax")]), x_flat, y, 1)
    save(first, shannon / "model_v1.h5")
    second = train(
        keras.Sequential(
            [keras.Input((784,)), layers.Dense(96, activation="relu"), layers.Dense(10, activation="softmax")]
        ),
        x_flat,
        y,
    )
    save(second, shannon / "model_v2.h5")

    # Not a model: weights alone, saved with save_weights.
    mlp.save_weights(folder("Edsger Dijkstra", 100006) / "dijkstra.weights.h5")

    # A Lambda layer carries Python code: refused before anything loads it.
    lam = keras.Sequential(
        [keras.Input((784,)), layers.Lambda(lambda t: t * 1.0), layers.Dense(10, activation="softmax")]
    )
    save(train(lam, x_flat, y, 1), folder("Barbara Liskov", 100007) / "liskov_lambda.h5")

    # The Keras 3 zip format instead of .h5.
    cnn.save(folder("Donald Knuth", 100008) / "knuth.keras")

    manifest = {
        str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((ROOT / "submissions").rglob("*"))
        if p.is_file()
    }
    manifest[f"heldout/{HELDOUT_FILE}"] = hashlib.sha256((heldout / HELDOUT_FILE).read_bytes()).hexdigest()
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
