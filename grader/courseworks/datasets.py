"""The public test sets `grade check` measures on, fetched by keras's own loaders in a child process.

keras.datasets.mnist.load_data() downloads mnist.npz once into keras's cache (~/.keras/datasets) and
reads it from there after; cifar10.load_data() does the same with cifar-10-batches-py/ (its test_batch
is read here with heldout's safe unpickler). Both import TensorFlow, so they run in a child and only the
cached file's path comes back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from grader.errors import NoData

# What each public set is, and the code that fetches it with keras's own loader and prints its path.
FETCH = {
    "mnist": """
from keras.datasets import mnist
from keras.utils import get_file
mnist.load_data()
# The same call load_data makes: now a cache hit, it returns the cached file's path.
print("PATH=" + get_file(fname="mnist.npz",
                         origin="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
                         file_hash="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"))
""",
    "cifar10": """
import os
from keras.datasets import cifar10
from keras.utils import get_file
cifar10.load_data()
folder = get_file(fname="cifar-10-batches-py", origin="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                  untar=True)
found = [os.path.join(root, "test_batch") for root, _, files in os.walk(folder) if "test_batch" in files]
print("PATH=" + found[0])
""",
}
NAMES = {"mnist": "MNIST test set", "cifar10": "CIFAR-10 test set"}
# grader's hash (images and labels as arrays, however the file is packed) of each public test set: a file given
# with --data that holds one of them is named as that set.
SHA256 = {
    "mnist": "66ba650019d0f594d63207c3c6b940d40244c1186c582a0dff452097bb3a75ab",
    "cifar10": "a30618fae9bee8637d4c7896bac82c1e4daaf6f77b87476e6554c711485a2e3b",
}
LABELS = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


def public_dataset(name: str, timeout: float = 900) -> Path:
    """The path of keras's cached copy of a public test set, downloading it first when needed."""
    if name not in FETCH:
        raise NoData(f"no public test set is known for this part ({name or 'none given'}); pass --data")
    code = "import os\nos.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')\n" + FETCH[name]
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("PATH="):
            return Path(line[len("PATH=") :])
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    cause = lines[-1] if lines else f"exit code {done.returncode}"
    raise NoData(
        f"keras's {LABELS[name]} loader could not fetch the test set ({cause}); if you are offline, pass --data with "
        "a copy: keras's .npz, an .npz with x/y, the MNIST IDX files or CIFAR-10's test_batch"
    )


def public_mnist(timeout: float = 900) -> Path:
    """The path of keras's cached mnist.npz (x_test/y_test), downloading it first when needed."""
    return public_dataset("mnist", timeout)
