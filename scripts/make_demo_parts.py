"""Build demo cohorts for the assignments with parts: UvA Lab 1 (an MNIST MLP, an MNIST CNN, a CIFAR-10 CNN) and
SYDE 522 A4 (an MNIST network on (28, 28) images, a CIFAR-10 CNN), from the same trained networks.

    python scripts/make_demo_parts.py                              # MNIST and CIFAR-10 from keras's loaders
    python scripts/make_demo_parts.py --mnist ../shared/data/mnist.npz \\
        --cifar10-train ../shared/data/cifar10_train_20k.npz --cifar10-test ../shared/data/cifar10_test.npz

Writes demo/uva-lab1/submissions/ (five Moodle folders of small real models, trained for an epoch or two
and each student's copy perturbed so every file differs) and demo/uva-lab1/heldout/{mnist,cifar10}/ (the
last 3,000 MNIST test digits; 2,000 CIFAR-10 test images), then grade it with:

    grade demo/uva-lab1/submissions --assignment uva-lab1 --out demo/uva-lab1/reports \\
        --heldout mnist=demo/uva-lab1/heldout/mnist --heldout cifar10=demo/uva-lab1/heldout/cifar10

Nothing here is committed (demo/ is ignored by git): CIFAR-10 states no licence, so neither its images nor
models trained on them are shipped. The cohort covers what part matching meets: files named for their
questions, files named nothing helpful (matched by their input shape), a file whose name fits two parts,
a missing part, and a model built with another input than its question asks.

It also writes demo/syde522-a4/ (four students, the same held-out images), graded with:

    grade demo/syde522-a4/submissions --assignment syde522-a4 --out demo/syde522-a4/reports \\
        --heldout mnist=demo/syde522-a4/heldout/mnist --heldout cifar10=demo/syde522-a4/heldout/cifar10
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo" / "uva-lab1"
SYDE_OUT = ROOT / "demo" / "syde522-a4"


def load(path: str | None, loader: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split ('train' or 'test') from a local .npz in keras's layout, else from keras's own loader."""
    if path:
        with np.load(path, allow_pickle=False) as data:
            return data[f"x_{split}"], data[f"y_{split}"].reshape(-1)
    import keras

    (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, loader).load_data()
    return (x_train, y_train.reshape(-1)) if split == "train" else (x_test, y_test.reshape(-1))


def models(keras):  # type: ignore[no-untyped-def]
    """The three models the lab asks for, small enough to train in a minute: Q5's MLP on 784 values, Q12's
    CNN on 28x28x1, Q16's CNN on 32x32x3 as the lab prescribes it."""
    layers = keras.layers
    mlp = keras.Sequential(
        [keras.Input((784,)), layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax")]
    )
    cnn = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    # Question 16's network (seed 004, lines 245-258), which the assignment file's architecture checks.
    cifar = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    flat = keras.Sequential(
        [
            keras.Input((28, 28)),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    return {"mlp": mlp, "cnn": cnn, "cifar": cifar, "flat": flat}


def perturbed(keras, model, seed: int, scale: float = 0.01):  # type: ignore[no-untyped-def]
    """A copy of a trained model with its weights nudged, so every student's file differs."""
    rng = np.random.default_rng(seed)
    copy = keras.models.clone_model(model)
    copy.set_weights(
        [w + rng.normal(0, scale * (np.std(w) or 1), w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", help="mnist.npz in keras's layout (default: keras's loader)")
    parser.add_argument("--cifar10-train", help="CIFAR-10 training images, .npz with x_train/y_train")
    parser.add_argument("--cifar10-test", help="CIFAR-10 test images, .npz with x_test/y_test")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--syde-out", type=Path, default=SYDE_OUT, help="where SYDE 522 A4's cohort goes")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(522)
    mnist_x, mnist_y = load(args.mnist, "mnist", "train")
    mnist_test_x, mnist_test_y = load(args.mnist, "mnist", "test")
    cifar_x, cifar_y = load(args.cifar10_train, "cifar10", "train")
    cifar_test_x, cifar_test_y = load(args.cifar10_test, "cifar10", "test")
    shutil.rmtree(args.out, ignore_errors=True)
    for name, x, y in (
        ("mnist", mnist_test_x[-3000:], mnist_test_y[-3000:]),
        ("cifar10", cifar_test_x[:2000], cifar_test_y[:2000]),
    ):
        (args.out / "heldout" / name).mkdir(parents=True)
        np.savez_compressed(args.out / "heldout" / name / f"{name}-test.npz", x=x, y=y)

    trained = models(keras)
    digits = mnist_x[:20000].astype("float32") / 255
    order = np.random.default_rng(0).permutation(len(cifar_x))
    colour = cifar_x[order].astype("float32") / 255
    feeds = {"mlp": digits.reshape(-1, 784), "cnn": digits[..., None], "flat": digits, "cifar": colour}
    labels = {"mlp": mnist_y[:20000], "cnn": mnist_y[:20000], "flat": mnist_y[:20000], "cifar": cifar_y[order]}
    for name, model in trained.items():
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(feeds[name], labels[name], epochs=4 if name == "cifar" else 2, batch_size=128, verbose=0)

    cohort = {
        # Named for their questions.
        ("Ada Lovelace", 200101): {"mlp": "q5_mlp.h5", "cnn": "q12_cnn.h5", "cifar": "q16_cifar.h5"},
        # Named nothing helpful: matched to parts by their input shapes.
        ("Alan Turing", 200102): {"mlp": "model_a.h5", "cnn": "model_b.h5", "cifar": "model_c.h5"},
        # 'cifar_cnn' fits two parts' patterns (cnn and cifar10): its shape decides.
        ("Grace Hopper", 200103): {"mlp": "mlp.h5", "cnn": "mnist_cnn.h5", "cifar": "cifar_cnn.h5"},
        # The CIFAR-10 network is missing.
        ("Edsger Dijkstra", 200104): {"mlp": "dijkstra_mlp.h5", "cnn": "dijkstra_cnn.h5"},
        # The MLP part is a (28, 28) Flatten model: graded as it declares, and flagged.
        ("Barbara Liskov", 200105): {"flat": "liskov_mlp.h5", "cnn": "liskov_cnn.h5", "cifar": "liskov_cifar.h5"},
    }
    write_cohort(keras, trained, cohort, args.out)
    print(f"wrote {args.out}/submissions ({len(cohort)} students) and {args.out}/heldout/{{mnist,cifar10}}")

    # The same networks serve SYDE 522 A4: question 7's MNIST model takes (28, 28) as the notebook's does (seed
    # 003, line 78), question 10's is a CIFAR-10 CNN; the same held-out images.
    syde = {
        # Named for their questions.
        ("Ada Lovelace", 300101): {"flat": "q7_mnist.h5", "cifar": "q10_cifar.h5"},
        # Named nothing helpful: matched to parts by their input shapes.
        ("Alan Turing", 300102): {"flat": "model_a.h5", "cifar": "model_b.h5"},
        ("Grace Hopper", 300103): {"flat": "digits.h5", "cifar": "cifar_best.h5"},
        # The CIFAR-10 network is missing.
        ("Edsger Dijkstra", 300104): {"flat": "mnist.h5"},
    }
    shutil.rmtree(args.syde_out, ignore_errors=True)
    shutil.copytree(args.out / "heldout", args.syde_out / "heldout")
    write_cohort(keras, trained, syde, args.syde_out)
    print(f"wrote {args.syde_out}/submissions ({len(syde)} students) and {args.syde_out}/heldout/{{mnist,cifar10}}")


def write_cohort(keras, trained, cohort, out: Path) -> None:  # type: ignore[no-untyped-def]
    """One Moodle folder per student, each model a perturbed copy of the trained one (every file differs)."""
    for (name, participant), files in cohort.items():
        folder = out / "submissions" / f"{name}_{participant}_assignsubmission_file_"
        folder.mkdir(parents=True)
        for kind, file_name in files.items():
            perturbed(keras, trained[kind], participant).save(folder / file_name, include_optimizer=False)


if __name__ == "__main__":
    main()
