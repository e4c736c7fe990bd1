"""The public MNIST test set for `grade check`, fetched by keras's own loader in a child process.

keras.datasets.mnist.load_data() downloads mnist.npz once into keras's cache (~/.keras/datasets) and
reads it from there after; it imports TensorFlow, so it runs in a child and only the cached file's path
comes back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from grader.errors import NoData

FETCH = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from keras.datasets import mnist
from keras.utils import get_file
mnist.load_data()
# The same call load_data makes: now a cache hit, it returns the cached file's path.
print("PATH=" + get_file(fname="mnist.npz",
                         origin="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
                         file_hash="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"))
"""


def public_mnist(timeout: float = 600) -> Path:
    """The path of keras's cached mnist.npz (x_test/y_test), downloading it first when needed."""
    done = subprocess.run(
        [sys.executable, "-c", FETCH],
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
        f"keras's MNIST loader could not fetch the test set ({cause}); if you are offline, pass "
        "--data with a copy: keras's mnist.npz, an .npz with x/y, or the MNIST IDX files"
    )
