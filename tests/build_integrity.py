"""Build the integrity test cohort's networks: real trainings, copies and derivations. Run in a subprocess:

    python tests/build_integrity.py OUT_DIR HELDOUT.npz

so that the test process itself never imports TensorFlow. Writes OUT_DIR/<name>.h5:
- base.h5: an MLP trained from its own random start; base_keras2.h5: the same weights saved by tf_keras (Keras 2);
- finetuned.h5: base trained one more epoch on other images; permuted.h5: base with its hidden units
  re-ordered, then trained one more epoch;
- public.h5: another network (the "downloaded" one); public_retrained.h5: public with its last layer
  re-initialised and retrained, the others frozen;
- independent_<k>.h5: networks trained apart (their own seeds and images), MLPs like base and small CNNs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
INDEPENDENT = 10


def main(out: Path, heldout: Path) -> None:
    import keras
    from keras import layers

    with np.load(heldout) as data:
        x, y = data["x"].astype("float32") / 255, data["y"].astype("int64")
    rng = np.random.default_rng(0)

    def mlp() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((28, 28)),
                layers.Flatten(),
                layers.Dense(48, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )

    def cnn() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(8, 3, activation="relu"),
                layers.MaxPooling2D(),
                layers.Flatten(),
                layers.Dense(10, activation="softmax"),
            ]
        )

    def train(model: keras.Model, seed: int, epochs: int = 2) -> keras.Model:
        chosen = np.random.default_rng(seed).choice(len(x), 2000, replace=False)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        inputs = x[chosen] if len(model.input_shape) == 3 else x[chosen][..., None]
        model.fit(inputs, y[chosen], epochs=epochs, batch_size=32, verbose=0)
        return model

    keras.utils.set_random_seed(1)
    base = train(mlp(), 1)
    base.save(out / "base.h5")

    import tf_keras

    again = tf_keras.Sequential(
        [
            tf_keras.layers.InputLayer((28, 28)),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(48, activation="relu"),
            tf_keras.layers.Dense(10, activation="softmax"),
        ]
    )
    again.set_weights(base.get_weights())
    again.save(out / "base_keras2.h5")

    finetuned = mlp()
    finetuned.set_weights(base.get_weights())
    train(finetuned, 2, epochs=1).save(out / "finetuned.h5")

    kernel, bias, last, last_bias = base.get_weights()
    order = rng.permutation(kernel.shape[1])
    permuted = mlp()
    permuted.set_weights([kernel[:, order], bias[order], last[order], last_bias])
    train(permuted, 3, epochs=1).save(out / "permuted.h5")

    keras.utils.set_random_seed(99)
    public = train(mlp(), 99, epochs=3)
    public.save(out / "public.h5")
    retrained = mlp()
    retrained.set_weights(public.get_weights())
    retrained.layers[1].trainable = False
    fresh = mlp()
    weights = retrained.get_weights()
    weights[2:] = fresh.get_weights()[2:]
    retrained.set_weights(weights)
    train(retrained, 4, epochs=2).save(out / "public_retrained.h5")

    for k in range(INDEPENDENT):
        keras.utils.set_random_seed(100 + k)
        train(mlp() if k % 3 else cnn(), 100 + k, epochs=1 + k % 2).save(out / f"independent_{k}.h5")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
