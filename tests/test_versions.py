"""Which release wrote a file, the tag in its name, and the coursework's rule for older versions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from grader.checks.screening import version_check
from grader.courseworks.assignment import load_assignment
from grader.formats.base import Inspection
from grader.formats.keras_versions import saved_with, version_tag

RULES = load_assignment()


@pytest.mark.parametrize(
    ("keras_version", "family", "tensorflow", "older"),
    [
        (None, "keras1", None, True),
        ("2.0.5", "standalone-keras2", ((1, 0), (2, 1)), True),
        ("2.3.1", "standalone-keras2", ((1, 0), (2, 1)), True),
        ("2.1.6-tf", "tf.keras", ((1, 9), (1, 12)), True),
        ("2.2.4-tf", "tf.keras", ((1, 13), (2, 1)), True),
        ("2.3.0-tf", "tf.keras", ((2, 2), (2, 2)), True),
        ("2.4.0", "tf.keras", ((2, 3), (2, 4)), True),
        ("2.13.1", "tf.keras", ((2, 13), (2, 13)), True),
        ("2.15.0", "tf.keras", ((2, 15), (2, 15)), True),
        ("2.18.0", "tf.keras", ((2, 18), (2, 18)), False),  # tf_keras with TF 2.18
        ("3.0.2", "keras3", ((2, 16), (2, 16)), True),  # TF 2.17 needs Keras >= 3.2
        ("3.4.1", "keras3", ((2, 16), (2, 17)), True),  # TF 2.18 needs Keras >= 3.5
        ("3.5.0", "keras3", ((2, 16), (2, 99)), False),
        ("3.15.1", "keras3", ((2, 16), (2, 99)), False),
        ("banana", "unknown", None, None),
    ],
)
def test_saved_with_names_the_release(keras_version, family, tensorflow, older) -> None:
    """keras_version names the family and the TensorFlow releases that write it."""
    saved = saved_with(keras_version)
    assert (saved.family, saved.tensorflow, saved.older_than((2, 18))) == (family, tensorflow, older)
    assert saved.description


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("xy_submission_tf213.h5", (2, 13)),
        ("model_tf2.13.h5", (2, 13)),
        ("m_tf_2_13.h5", (2, 13)),
        ("TF2_15_final.h5", (2, 15)),
        ("net-tf-2.9.h5", (2, 9)),
        ("tensorflow2.12.h5", (2, 12)),
        ("best_tfv2.10.h5", (2, 10)),
        ("model_tf2.13.1.h5", (2, 13)),
        ("tfidf.h5", None),
        ("mytf2.h5", None),
        ("model_v2.h5", None),
        ("model_tf2.h5", None),
    ],
)
def test_version_tag_in_the_file_name(name: str, tag) -> None:
    """The tag forms students write are read; words that merely contain 'tf' are not tags."""
    assert version_tag(name) == tag


def inspection(keras_version: str | None) -> Inspection:
    return Inspection(
        path="x.h5", size=1, format="hdf5", readable=True, keras_version=keras_version, backend="tensorflow"
    )


@pytest.mark.parametrize(
    ("keras_version", "name", "outcome", "message"),
    [
        (
            "2.13.1",
            "model.h5",
            "warn",
            "saved by Keras 2.13.1 (TensorFlow 2.13), older than TensorFlow 2.18.0, "
            "and the file name has no version tag",
        ),
        ("2.13.1", "model_tf213.h5", "pass", "saved by Keras 2.13.1 (TensorFlow 2.13); tagged tf2.13"),
        (
            "2.13.1",
            "model_tf215.h5",
            "warn",
            "the name's tag says TensorFlow 2.15 but the file was saved by Keras 2.13.1",
        ),
        ("3.15.1", "model.h5", "pass", "saved by Keras 3.15.1"),
        ("2.18.0", "model.h5", "pass", "saved by Keras 2.18.0 (TensorFlow 2.18 via tf_keras)"),
        (None, "model.h5", "warn", "saved by Keras 1 or an early Keras 2 (no keras_version attribute), older"),
    ],
)
def test_older_versions_must_carry_a_tag(keras_version, name: str, outcome: str, message: str) -> None:
    """An older release without a tag is flagged (the coursework's rule); a tag that fits passes."""
    check = version_check(inspection(keras_version), RULES, name)
    assert (check.outcome, check.message[: len(message)]) == (outcome, message)
    if outcome == "warn" and "no version tag" in message:
        assert "model_tf213.h5" in check.advice


def test_the_policy_lives_in_the_assignment() -> None:
    """untagged_older_policy = 'refuse' turns the warning into a refusal."""
    strict = replace(RULES, versions=replace(RULES.versions, untagged_older_policy="refuse"))
    assert version_check(inspection("2.10.0"), strict, "model.h5").outcome == "fail"
