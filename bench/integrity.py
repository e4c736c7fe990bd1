"""Measure integrity evidence's false alarms on networks trained apart, and its reach on planted copies.

    python bench/integrity.py --students 40        # needs ../shared/data/mnist.npz

Trains N networks apart (MLPs and CNNs in turn, each from its own seed, on its own 6,000 training images, for
1-3 epochs), then plants: one fine-tuned one epoch from student 0, one with student 1's hidden units
re-ordered and fine-tuned, one with student 2's weights plus 1% noise, and two networks answering '1' for
everything. Prints, from grader.marking.integrity's own functions: every finding, the highest matched-kernel
cosine among same-architecture pairs trained apart, and how close the closest pair trained apart comes to
its shared-mistakes allowance. Measured on this machine (40 students, MNIST test set): see README.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from grader.formats.fingerprint import read_kernels, summarise  # noqa: E402
from grader.marking import integrity  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mnist.npz")
    args = parser.parse_args()
    import keras
    from keras import layers

    with np.load(args.data) as data:
        x, y = data["x_train"].astype("float32") / 255, data["y_train"]
        test_x, test_y = data["x_test"].astype("float32") / 255, data["y_test"]

    def mlp() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((28, 28)),
                layers.Flatten(),
                layers.Dense(128, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )

    def cnn() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(16, 3, activation="relu"),
                layers.MaxPooling2D(),
                layers.Conv2D(32, 3, activation="relu"),
                layers.MaxPooling2D(),
                layers.Flatten(),
                layers.Dense(64, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )

    rng = np.random.default_rng(1)

    def fit(model: keras.Model, epochs: int, count: int = 6000) -> keras.Model:
        chosen = rng.choice(len(x), count, replace=False)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x[chosen], y[chosen], epochs=epochs, batch_size=64, verbose=0)
        return model

    def copy_of(model: keras.Model, weights: list[np.ndarray]) -> keras.Model:
        clone = keras.models.clone_model(model)
        clone.set_weights(weights)
        return clone

    nets = []
    for index in range(args.students):
        keras.utils.set_random_seed(100 + index)
        nets.append((f"s{index}", fit(mlp() if index % 2 == 0 else cnn(), int(rng.integers(1, 4)))))
    nets.append(("fine_tuned_from_s0", fit(copy_of(nets[0][1], nets[0][1].get_weights()), 1)))
    w = nets[1][1].get_weights()
    p1, p2, p3 = rng.permutation(16), rng.permutation(32), rng.permutation(64)
    shuffled = [
        w[0][..., p1],
        w[1][p1],
        w[2][:, :, p1][..., p2],
        w[3][p2],
        w[4].reshape(25, 32, 64)[:, p2][:, :, p3].reshape(800, 64),
        w[5][p3],
        w[6][p3],
        w[7],
    ]
    nets.append(("shuffled_from_s1", fit(copy_of(nets[1][1], shuffled), 1, 3000)))
    noisy = [v + rng.normal(0, 0.01 * np.std(v) + 1e-9, v.shape).astype(v.dtype) for v in nets[2][1].get_weights()]
    nets.append(("noisy_copy_of_s2", copy_of(nets[2][1], noisy)))
    for name in ("answers_1_a", "answers_1_b"):
        weights = [np.zeros_like(v) for v in nets[3][1].get_weights()]
        weights[-1][1] = 5.0
        nets.append((name, copy_of(nets[3][1], weights)))
    networks = []
    for key, model in nets:
        summary = summarise(
            [
                (layer.name, [np.asarray(v) for v in layer.get_weights()])
                for layer in model.layers
                if layer.get_weights()
            ]
        )
        blob = base64.b64decode(summary.pop("kernels"))
        inputs = test_x if len(model.input_shape) == 3 else test_x[..., None]
        given = np.argmax(model.predict(inputs, batch_size=1000, verbose=0), axis=1)
        networks.append(
            integrity.Network(
                key, key, key, weights=summary, kernels=(lambda b=blob: read_kernels(b)), predictions=given
            )
        )
    started = time.perf_counter()
    found = integrity.find_evidence(networks, test_y, 10)
    print(f"{len(networks)} networks compared in {time.perf_counter() - started:.1f} s; {len(found)} findings")
    for finding in found:
        print(f"  {finding.kind}: {finding.first} ~ {finding.second}: {finding.summary[:160]}")
    apart = [n for n in networks if n.key[1:].isdigit()]
    cosines = [
        integrity._weighted(integrity.align(a.kernels(), b.kernels()))  # type: ignore[misc]
        for a, b in combinations(apart, 2)
        if integrity._kernel_shapes(a) == integrity._kernel_shapes(b)
    ]
    print(f"trained apart: {len(cosines)} same-architecture pairs, matched-kernel cosine at most {max(cosines):.3f}")
    integrity.SHARED_MARGIN, integrity.FALSE_ALARM = 1.0, 1.0
    closest = max(
        (f.numbers["identical_wrong"] / f.numbers["expected"] for f in integrity.shared_mistakes(apart, test_y, 10)),
        default=0.0,
    )
    print(f"trained apart: the closest pair reaches {closest:.2f} of its shared-mistakes allowance (flagged from 1.3)")


if __name__ == "__main__":
    main()
