"""Static inspection with h5py alone: what a file claims, read without building or running it."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.checking import inspect_one
from grader.checks.screening import screen
from grader.courseworks.assignment import load_assignment
from grader.formats.keras_h5 import inspect_h5
from grader.formats.keras_layers import explain_parameters

from .conftest import SHARED

RULES = load_assignment()


@pytest.mark.parametrize("name", ["mlp", "cnn", "flat", "logits", "five_outputs", "channels_first", "rgb32"])
@pytest.mark.tensorflow
def test_inspection_agrees_with_keras(models: Path, model_facts: dict, name: str) -> None:
    """Input shape, output width and parameter count read statically equal what Keras reports."""
    inspection = inspect_h5(models / f"{name}.h5")
    facts = model_facts[name]
    assert inspection.input_shape == facts["input_shape"]
    assert inspection.output_units == facts["output_units"]
    assert inspection.parameter_count == facts["parameters"]
    assert inspection.keras_version and inspection.backend == "tensorflow"
    assert inspection.model_class == "Sequential"


@pytest.mark.tensorflow
def test_lambda_is_found_and_refused(models: Path) -> None:
    """A Lambda layer is seen in the config and refused unless the instructor allows it."""
    inspection = inspect_h5(models / "lambda.h5")
    assert "Lambda" in inspection.layer_classes
    refused = [c for c in screen(inspection, RULES) if c.outcome == "fail"]
    assert refused[0].name == "layers" and "Lambda" in refused[0].message and "replace" in refused[0].advice
    allowed = screen(inspection, RULES, allow_lambda=True)
    assert [c.outcome for c in allowed if c.name == "layers"] == ["warn"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.h5", "HDF5 cannot open it"),
        ("text.h5", "the file is a text/JSON file (a notebook?), not HDF5"),
        ("empty.h5", "the file is empty (0 bytes)"),
        ("weights_only.weights.h5", "the file holds weights only (save_weights), not a model"),
    ],
)
@pytest.mark.tensorflow
def test_files_that_are_not_models_are_refused(models: Path, name: str, message: str) -> None:
    """Truncated, text, empty and weights-only files fail screening with a reason and a fix."""
    failed = [c for c in screen(inspect_h5(models / name), RULES) if c.outcome == "fail"]
    assert failed and message in failed[0].message and failed[0].advice


@pytest.mark.tensorflow
def test_wrong_output_width_is_flagged_before_running(models: Path) -> None:
    """A last layer of 5 units for 10 classes is a warning with the fix."""
    checks = {c.name: c for c in screen(inspect_h5(models / "five_outputs.h5"), RULES)}
    assert checks["outputs"].outcome == "warn" and "Dense(10" in checks["outputs"].advice


@pytest.mark.tensorflow
def test_inspect_one_runs_in_a_child(models: Path) -> None:
    """`grade inspect` reads the file in a sandboxed child and screens it."""
    inspection, checks = inspect_one(models / "cnn.h5", RULES)
    assert inspection["input_shape"] == [None, 28, 28, 1]
    assert [c.outcome for c in checks] == ["pass"] * len(checks)


@pytest.mark.corpus
def test_corpus_parameter_counts_match_the_manifest() -> None:
    """On the real corpus, the static parameter count equals the manifest's for every file, and the config's
    layer-by-layer formulas agree with the stored weights of each layer."""
    import csv

    manifest = SHARED / "corpus" / "manifest.csv"
    if not manifest.exists():
        pytest.skip(f"{manifest} is absent: the corpus tests need ../shared/corpus")
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        inspection = inspect_h5(SHARED / "corpus" / row["file"])
        assert inspection.parameter_count == int(row["param_count"]), row["file"]
        assert inspection.keras_version == row["keras_version"], row["file"]
        assert inspection.model_class == row["model_class"], row["file"]
        # Every layer's formula from the config adds up to what the file stores for it.
        explained = explain_parameters(inspection.layer_table, inspection.stored_by_layer, inspection.parameter_count)
        assert explained["complete"] and not explained["differing"], row["file"]
        assert explained["total"] == inspection.parameter_count, row["file"]


@pytest.mark.parametrize("name", ["zoo_residual", "zoo_recurrent", "zoo_nested", "mlp", "cnn", "flat", "rgb32"])
@pytest.mark.tensorflow
def test_architecture_from_the_config_matches_keras(models: Path, model_facts: dict, name: str) -> None:
    """Shapes and parameter counts worked out from the config alone equal what Keras builds, for
    convolutions, separable and transposed convolutions, normalisation, merges, recurrent and wrapped
    layers and nested models, split into trainable and non-trainable as Keras splits them, and agreeing
    with the stored weights layer by layer; and such ordinary models pass every check."""
    inspection = inspect_h5(models / f"{name}.h5")
    facts = model_facts[name]
    assert inspection.config_complete
    assert inspection.config_parameters == facts["parameters"] == inspection.parameter_count
    assert inspection.output_shape == facts["output_shape"]
    assert (inspection.trainable_parameters, inspection.non_trainable_parameters) == (
        facts["trainable"],
        facts["non_trainable"],
    )
    assert not explain_parameters(inspection.layer_table, inspection.stored_by_layer, inspection.parameter_count)[
        "differing"
    ]
    assert {c.name: c.outcome for c in screen(inspection, RULES)} == dict.fromkeys(
        ["HDF5 file", "HDF5 structure", "model", "layers", "config", "parameters", "outputs", "TF version"], "pass"
    )
