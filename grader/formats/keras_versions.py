"""Which TensorFlow or Keras release wrote a file, the version tag in its name, and the coursework's rule.

The `keras_version` attribute names the Keras that saved the file. Standalone Keras (2.0-2.3) wrote its
own version; tf.keras wrote `2.1.6-tf`, `2.2.4-tf`, `2.3.0-tf`, then from TF 2.3 the Keras version
that matches TensorFlow's minor (2.4.0 in TF 2.3/2.4, 2.6.0 in TF 2.6, ... 2.15.0 in TF 2.15); TF
2.16+ comes with Keras 3 (3.0+), and tf_keras (the Keras 2 line kept for TF 2.16+) writes TF's own
version. A file with no `keras_version` was written by Keras 1 or an early Keras 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# tf.keras versions with the '-tf' suffix, and the TensorFlow releases that shipped them.
TF_KERAS_SUFFIXED = {
    "2.1.6-tf": ((1, 9), (1, 12)),
    "2.2.4-tf": ((1, 13), (2, 1)),
    "2.3.0-tf": ((2, 2), (2, 2)),
}
# Keras 3 left TensorFlow's release cycle; what ties them is the oldest Keras each TensorFlow accepts:
# TF 2.16 any Keras 3, TF 2.17 Keras >= 3.2, TF 2.18 Keras >= 3.5. So the newest TensorFlow that can have
# written a Keras 3.x file is 2.16 for 3.0-3.1, 2.17 for 3.2-3.4, and anything from 2.18 on for 3.5+.
NEWEST_TF_FOR_KERAS3 = {0: (2, 16), 1: (2, 16), 2: (2, 17), 3: (2, 17), 4: (2, 17)}
LATEST = (2, 99)
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")
# tf213, tf2.13, tf_2_13, tf-2.13, TF2_13, tensorflow2.13, tfv2.13 (not inside a longer word)
_TAG = re.compile(r"(?<![a-z])(?:tf|tensorflow)[ _.-]?v?(\d)[ _.-]?(\d{1,2})(?!\d)", re.IGNORECASE)


@dataclass(frozen=True)
class SavedWith:
    """The release that wrote a file, as far as its keras_version attribute tells."""

    keras_version: str | None
    "The attribute as stored (None when missing)."
    family: str
    "'keras1', 'standalone-keras2', 'tf.keras', 'keras3' or 'unknown'."
    tensorflow: tuple[tuple[int, int], tuple[int, int]] | None
    "The range of TensorFlow releases (major, minor) that write this keras_version, when known."
    description: str
    "One line for a report, e.g. 'tf.keras 2.2.4-tf (TensorFlow 1.13 to 2.1)'."

    @property
    def keras_major(self) -> int | None:
        match = _VERSION.match(self.keras_version or "")
        return int(match.group(1)) if match else None

    def older_than(self, release: tuple[int, int]) -> bool | None:
        """Whether every TensorFlow that writes this version is older than `release` (None: unknown)."""
        if self.family == "keras1":
            return True
        if self.tensorflow is None:
            return None
        return self.tensorflow[1] < release


def saved_with(keras_version: str | None, backend: str | None = None) -> SavedWith:
    """Name the release that wrote a file from its keras_version (and backend) attributes."""
    if not keras_version:
        return SavedWith(None, "keras1", None, "Keras 1 or an early Keras 2 (no keras_version attribute)")
    if keras_version in TF_KERAS_SUFFIXED:
        low, high = TF_KERAS_SUFFIXED[keras_version]
        return SavedWith(
            keras_version, "tf.keras", (low, high), f"tf.keras {keras_version} (TensorFlow {_span(low, high)})"
        )
    match = _VERSION.match(keras_version)
    if not match:
        return SavedWith(keras_version, "unknown", None, f"keras_version {keras_version!r} (not a version number)")
    major, minor = int(match.group(1)), int(match.group(2))
    on = f" on {backend}" if backend and backend != "tensorflow" else ""
    if major == 3:
        newest = NEWEST_TF_FOR_KERAS3.get(minor, LATEST)
        tf_text = "2.16 or later" if newest == LATEST else _span((2, 16), newest)
        return SavedWith(
            keras_version, "keras3", ((2, 16), newest), f"Keras {keras_version} (Keras 3, TensorFlow {tf_text}){on}"
        )
    if major == 2 and minor <= 3:
        return SavedWith(
            keras_version,
            "standalone-keras2",
            ((1, 0), (2, 1)),
            f"standalone Keras {keras_version} (multi-backend{on or ', TensorFlow 1.x to 2.1'})",
        )
    if major == 2 and minor in (4, 5):
        low = (2, 3) if minor == 4 else (2, 5)
        return SavedWith(
            keras_version,
            "tf.keras",
            (low, (2, minor)),
            f"tf.keras {keras_version} (TensorFlow {_span(low, (2, minor))})",
        )
    if major == 2:
        return SavedWith(
            keras_version,
            "tf.keras",
            ((2, minor), (2, minor)),
            f"Keras {keras_version} (TensorFlow 2.{minor}{' via tf_keras' if minor >= 16 else ''})",
        )
    return SavedWith(keras_version, "unknown", None, f"Keras {keras_version} (an unknown release)")


def version_tag(file_name: str) -> tuple[int, int] | None:
    """The TensorFlow version a student wrote in the file name (xy_submission_tf213.h5 -> (2, 13))."""
    match = _TAG.search(file_name)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def parse_release(text: str) -> tuple[int, int]:
    """'2.18.0' -> (2, 18)."""
    match = _VERSION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a version number")
    return int(match.group(1)), int(match.group(2))


def _span(low: tuple[int, int], high: tuple[int, int]) -> str:
    if low == high:
        return f"{low[0]}.{low[1]}"
    return f"{low[0]}.{low[1]} to {high[0]}.{high[1]}"
