"""Build the models of the architecture tests: each prescribed network (Oxford Practical 3, UvA Lab 1 Q16,
SYDE 522 A4 Q9) exactly, spelled differently, with one setting changed, with a layer missing and with one
extra. Run as `python tests/build_architectures.py OUT HELDOUT.npz` (TensorFlow stays out of pytest's
process). Only `oxford_exact` is trained: the others are judged by their layers, or must score badly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

# Oxford's preprocessing (seed 002, lines 45-47): x / 255, then Normalize((0.1307,), (0.3081,)).
MEAN, STD = 0.1307, 0.3081


def oxford(keras: Any, layers: Any, **change: Any) -> Any:
    """The practical's network (seed 002, lines 92-98), with the settings in `change` replaced."""
    settings = {
        "filters1": 25,
        "kernel1": 12,
        "strides1": 2,
        "padding2": "same",
        "pool": 2,
        "units": 1024,
        "dense_activation": "relu",
        "rate": 0.2,
        "dropout": True,
        "extra_dense": False,
        **change,
    }
    stack = [
        keras.Input((28, 28, 1)),
        layers.Conv2D(
            settings["filters1"],
            settings["kernel1"],
            strides=settings["strides1"],
            padding="valid",
            activation="relu",
        ),
        layers.Conv2D(64, 5, strides=1, padding=settings["padding2"], activation="relu"),
        layers.MaxPooling2D(settings["pool"]),
        layers.Flatten(),
        layers.Dense(settings["units"], activation=settings["dense_activation"]),
    ]
    if settings["dropout"]:
        stack.append(layers.Dropout(settings["rate"]))
    if settings["extra_dense"]:
        stack.append(layers.Dense(128, activation="relu"))
    stack.append(layers.Dense(10, activation="softmax"))
    return keras.Sequential(stack)


def oxford_spelled(keras: Any, layers: Any) -> Any:
    """The same network written another way: activations as layers, the second convolution's 'same' as an
    explicit ZeroPadding2D(2), MaxPool2D, logits then a Softmax layer."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(25, (12, 12), strides=(2, 2)),
            layers.ReLU(),
            layers.ZeroPadding2D(2),
            layers.Conv2D(64, (5, 5)),
            layers.Activation("relu"),
            layers.MaxPool2D((2, 2)),
            layers.Flatten(),
            layers.Dense(1024),
            layers.Activation("relu"),
            layers.Dropout(0.2),
            layers.Dense(10),
            layers.Softmax(),
        ]
    )


def uva_cifar(keras: Any, layers: Any, **change: Any) -> Any:
    """UvA Lab 1, Q16 (seed 004, lines 245-258): Q10's network with Q15's dropout, first convolution
    padded 'same', second of 32 filters, the block repeated, Dense(512)."""
    settings = {"padding1": "same", "second_dropout": True, "extra": False, "spelled": False, **change}

    def conv(filters: int, padding: str = "valid") -> list[Any]:
        if settings["spelled"]:
            return [layers.Conv2D(filters, (3, 3), padding=padding), layers.ReLU()]
        return [layers.Conv2D(filters, (3, 3), padding=padding, activation="relu")]

    stack = [
        keras.Input((32, 32, 3)),
        *conv(32, settings["padding1"]),
        *conv(32),
        layers.MaxPool2D((2, 2)),
        layers.Dropout(0.25),
        *conv(64, "same"),
        *conv(64),
        layers.MaxPool2D((2, 2)),
    ]
    if settings["second_dropout"]:
        stack.append(layers.Dropout(0.25))
    if settings["extra"]:
        stack.append(layers.BatchNormalization())
    stack += [layers.Flatten(), layers.Dense(512, activation="relu"), layers.Dropout(0.5)]
    stack.append(layers.Dense(10, activation="softmax"))
    return keras.Sequential(stack)


def syde_cifar(keras: Any, layers: Any, **change: Any) -> Any:
    """SYDE 522 A4, Q9 (seed 003, lines 281-296): the suggested starting CNN."""
    settings = {"units": 64, "third_conv": True, "extra": False, "spelled": False, **change}

    def conv(filters: int) -> list[Any]:
        if settings["spelled"]:
            return [layers.Convolution2D(filters, (3, 3)), layers.Activation("relu")]
        return [layers.Conv2D(filters, (3, 3), activation="relu")]

    stack = [keras.Input((32, 32, 3)), *conv(32), layers.MaxPooling2D((2, 2)), *conv(64), layers.MaxPooling2D((2, 2))]
    if settings["third_conv"]:
        stack += conv(64)
    stack.append(layers.Flatten())
    if settings["extra"]:
        stack.append(layers.Dropout(0.5))
    stack += [layers.Dense(settings["units"], activation="relu"), layers.Dense(10, activation="softmax")]
    return keras.Sequential(stack)


def main(out: Path, heldout: Path) -> None:
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    out.mkdir(parents=True, exist_ok=True)
    models = {
        "oxford_exact": oxford(keras, layers),
        "oxford_spelled": oxford_spelled(keras, layers),
        "oxford_stride1": oxford(keras, layers, strides1=1),
        "oxford_valid2": oxford(keras, layers, padding2="valid"),
        "oxford_filters32": oxford(keras, layers, filters1=32),
        "oxford_kernel5": oxford(keras, layers, kernel1=5),
        "oxford_pool3": oxford(keras, layers, pool=3),
        "oxford_units512": oxford(keras, layers, units=512),
        "oxford_sigmoid": oxford(keras, layers, dense_activation="sigmoid"),
        "oxford_rate5": oxford(keras, layers, rate=0.5),
        "oxford_nodropout": oxford(keras, layers, dropout=False),
        "oxford_extra_dense": oxford(keras, layers, extra_dense=True),
        "oxford_untrained": oxford(keras, layers),
        "uva_exact": uva_cifar(keras, layers),
        "uva_spelled": uva_cifar(keras, layers, spelled=True),
        "uva_valid1": uva_cifar(keras, layers, padding1="valid"),
        "uva_missing": uva_cifar(keras, layers, second_dropout=False),
        "uva_extra": uva_cifar(keras, layers, extra=True),
        "syde_exact": syde_cifar(keras, layers),
        "syde_spelled": syde_cifar(keras, layers, spelled=True),
        "syde_units128": syde_cifar(keras, layers, units=128),
        "syde_missing": syde_cifar(keras, layers, third_conv=False),
        "syde_extra": syde_cifar(keras, layers, extra=True),
    }
    with np.load(heldout) as data:
        x = (data["x"].astype("float32") / 255 - MEAN) / STD
        y = data["y"]
    trained = models["oxford_exact"]
    trained.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    trained.fit(x.reshape(-1, 28, 28, 1), y, epochs=4, batch_size=64, verbose=0)
    facts = {}
    for name, model in models.items():
        model.save(out / f"{name}.h5", include_optimizer=False)
        facts[name] = {
            "parameters": int(model.count_params()),
            "trainable": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "non_trainable": int(sum(np.prod(w.shape) for w in model.non_trainable_weights)),
            "layers": [[layer.name, list(layer.output.shape), int(layer.count_params())] for layer in model.layers],
        }
    # The trained network in Keras 3's own format too, for the mixed-format cohort.
    trained.save(out / "oxford_exact.keras")
    (out / "models.json").write_text(json.dumps(facts, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
