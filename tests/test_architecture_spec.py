"""Architecture specs: a config's layers against the layers a coursework prescribes, and the parameter
formulas, worked out from configs alone (the Keras-built counterparts are in test_signoff.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from grader.checks.architecture_spec import DIFFERENT, EXACT, KINDS, ArchitectureSpec, compare
from grader.courseworks.assignment import load_assignment, parse_assignment
from grader.errors import AssignmentError
from grader.formats.keras_layers import analyse, explain_parameters, parameters_sentence

from .assignment_text import LIMITS_AND_VERSIONS

OXFORD = load_assignment("oxford-practical3").parts[0].architecture
assert OXFORD is not None


def layers_of(*layers: tuple[str, dict[str, Any]], input_shape: tuple[int, ...] = (28, 28, 1)) -> list[dict[str, Any]]:
    """The layer table `analyse` gives for a Sequential config of these layers."""
    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, *input_shape]}},
                *(
                    {"class_name": kind, "config": {"name": f"layer{i}", **settings}}
                    for i, (kind, settings) in enumerate(layers)
                ),
            ]
        },
    }
    return analyse(config).layers


def oxford_layers(**change: Any) -> list[tuple[str, dict[str, Any]]]:
    """The practical's network as Keras writes its config, with settings changed per layer index."""
    layers = [
        (
            "Conv2D",
            {"filters": 25, "kernel_size": [12, 12], "strides": [2, 2], "padding": "valid", "activation": "relu"},
        ),
        ("Conv2D", {"filters": 64, "kernel_size": [5, 5], "strides": [1, 1], "padding": "same", "activation": "relu"}),
        ("MaxPooling2D", {"pool_size": [2, 2], "strides": [2, 2], "padding": "valid"}),
        ("Flatten", {}),
        ("Dense", {"units": 1024, "activation": "relu"}),
        ("Dropout", {"rate": 0.2}),
        ("Dense", {"units": 10, "activation": "softmax"}),
    ]
    for key, value in change.items():
        index, setting = key.split("_", 1)
        layers[int(index[1:])][1][setting] = value
    return layers


def test_the_exact_network_matches_with_every_shape_and_count() -> None:
    """The practical's network matches layer by layer: 9x9x25, 9x9x64, 4x4x64, 1,024, ..., 1,103,539 parameters."""
    result = compare(layers_of(*oxford_layers()), OXFORD)
    assert result.status == EXACT and result.problems == ()
    assert [row["found_shape"] for row in result.rows] == [row["expected_shape"] for row in result.rows]
    assert [row["expected_shape"][1:] for row in result.rows] == [
        [9, 9, 25],
        [9, 9, 64],
        [4, 4, 64],
        [1024],
        [1024],
        [1024],
        [10],
    ]
    assert result.expected_parameters == result.found_parameters == 1_103_539
    assert result.summary() == "matches the practical's architecture layer by layer (7 layers, 1,103,539 parameters)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"l1_padding": "valid"},
            "layer 2 (Conv2D): padding is 'valid', the practical asks for padding that keeps 9x9 (padding='same')",
        ),
        ({"l0_strides": [1, 1]}, "layer 1 (Conv2D): strides is 1x1, the practical asks for 2x2"),
        ({"l0_filters": 32}, "layer 1 (Conv2D): filters is 32, the practical asks for 25"),
        ({"l0_kernel_size": [5, 5]}, "layer 1 (Conv2D): kernel_size is 5x5, the practical asks for 12x12"),
        (
            {"l0_padding": "same"},
            "layer 1 (Conv2D): padding is 'same', the practical asks for no padding (padding='valid')",
        ),
        (
            {"l2_pool_size": [3, 3], "l2_strides": [3, 3]},
            "layer 3 (MaxPooling2D): pool_size is 3x3, the practical asks for 2x2",
        ),
        ({"l4_units": 512}, "layer 5 (Dense): units is 512, the practical asks for 1024"),
        ({"l4_activation": "sigmoid"}, "layer 5 (Dense): activation is 'sigmoid', the practical asks for 'relu'"),
        ({"l4_activation": "linear"}, "layer 5 (Dense): activation is 'linear' (none), the practical asks for 'relu'"),
        ({"l5_rate": 0.5}, "layer 6 (Dropout): rate is 0.5, the practical asks for 0.2"),
        (
            {"l6_activation": "sigmoid"},
            "layer 7 (Dense): activation is 'sigmoid', the practical asks for 'softmax' or 'linear' (none)",
        ),
    ],
)
def test_one_setting_changed_is_the_right_kinds_and_names_the_setting(change: dict[str, Any], message: str) -> None:
    """Every single-setting deviation keeps the layer kinds (status 'kinds') and is named with the fix."""
    result = compare(layers_of(*oxford_layers(**change)), OXFORD)
    assert result.status == KINDS
    assert result.problems == (message,)


def test_a_wrong_setting_shows_in_the_shapes_that_follow() -> None:
    """Stride 1 in the first convolution: expected 9x9x25, found 17x17x25, and the dense layer's count grows."""
    rows = compare(layers_of(*oxford_layers(l0_strides=[1, 1])), OXFORD).rows
    assert (rows[0]["expected_shape"], rows[0]["found_shape"]) == ([None, 9, 9, 25], [None, 17, 17, 25])
    assert (rows[4]["expected_parameters"], rows[4]["found_parameters"]) == (1_049_600, 4_195_328)


def test_equivalent_spellings_are_the_same_network() -> None:
    """Activation layers after linear layers, ReLU(), Softmax(), Activation('linear'), an explicit
    ZeroPadding2D(2) for 'same', a ZeroPadding2D(0), and the aliases Convolution2D and MaxPool2D."""
    spelled = layers_of(
        ("ZeroPadding2D", {"padding": [[0, 0], [0, 0]]}),
        ("Convolution2D", {"filters": 25, "kernel_size": [12, 12], "strides": [2, 2], "padding": "valid"}),
        ("ReLU", {}),
        ("Activation", {"activation": "linear"}),
        ("ZeroPadding2D", {"padding": [[2, 2], [2, 2]]}),
        ("Conv2D", {"filters": 64, "kernel_size": [5, 5], "activation": None}),
        ("Activation", {"activation": "relu"}),
        ("MaxPool2D", {"pool_size": [2, 2]}),
        ("Flatten", {}),
        ("Dense", {"units": 1024}),
        ("Activation", {"activation": "relu"}),
        ("Dropout", {"rate": 0.2}),
        ("Dense", {"units": 10}),
        ("Softmax", {}),
    )
    result = compare(spelled, OXFORD)
    assert result.status == EXACT, result.problems
    assert result.rows[1]["found"] == "ZeroPadding2D + Conv2D + Activation"
    assert result.found_parameters == 1_103_539


def test_softmax_is_optional_at_the_end() -> None:
    """The practical's last layer may give logits (PyTorch's cross-entropy wants them) or probabilities."""
    assert compare(layers_of(*oxford_layers(l6_activation="linear")), OXFORD).status == EXACT


def test_a_padding_other_than_same_is_stated_as_it_is() -> None:
    """ZeroPadding2D(1) before a 5x5 convolution is not 'same' (which pads 2): stated as explicit padding."""
    layers = oxford_layers()
    layers[1][1]["padding"] = "valid"
    layers.insert(1, ("ZeroPadding2D", {"padding": [[1, 1], [1, 1]]}))
    result = compare(layers_of(*layers), OXFORD)
    assert result.status == KINDS
    assert result.problems == (
        "layer 2 (ZeroPadding2D + Conv2D): padding is 'explicit (1, 1), (1, 1)', the practical asks for padding "
        "that keeps 9x9 (padding='same')",
    )


def test_a_missing_layer_is_missing_not_every_later_layer_wrong() -> None:
    """Without dropout, one difference: the dropout is missing after layer 5, and the last layer still matches."""
    layers = oxford_layers()
    del layers[5]
    result = compare(layers_of(*layers), OXFORD)
    assert result.status == DIFFERENT
    assert result.problems == (
        "the practical asks for Dropout(rate=0.2) after layer 5 (Dense); the model has none there: add it",
    )
    assert [row["outcome"] for row in result.rows] == ["match"] * 5 + ["missing", "match"]


def test_an_extra_layer_is_extra() -> None:
    """An extra Dense(128) before the output is the one difference, named with its settings."""
    layers = oxford_layers()
    layers.insert(6, ("Dense", {"units": 128, "activation": "relu"}))
    result = compare(layers_of(*layers), OXFORD)
    assert result.status == DIFFERENT
    assert result.problems == (
        "layer 7 (Dense), Dense(units=128, activation='relu'), is not in the practical's architecture: remove it",
    )


def test_another_kind_of_layer_is_named() -> None:
    """Average pooling where max pooling is asked: another kind, with what is asked."""
    layers = oxford_layers()
    layers[2] = ("AveragePooling2D", {"pool_size": [2, 2]})
    result = compare(layers_of(*layers), OXFORD)
    assert result.status == DIFFERENT
    assert result.problems[0].startswith(
        "layer 3 (AveragePooling2D) is AveragePooling2D(pool_size=(2, 2), strides=(2, 2), padding='valid')"
    )
    assert "the practical asks for MaxPooling2D(pool_size=2) here" in result.problems[0]


def test_a_file_without_a_readable_config_cannot_match() -> None:
    """No layer table (a weights-only file, an unreadable config): 'different', with the reason."""
    result = compare((), OXFORD)
    assert result.status == DIFFERENT and "could not be read layer by layer" in result.problems[0]


def test_open_settings_match_anything_and_take_the_model_s_value_for_shapes() -> None:
    """UvA Q16 leaves the second block's filters open: 64 or 48 both match, and expected shapes follow them."""
    spec = load_assignment("uva-lab1").part("cifar10").architecture
    assert spec is not None

    def network(filters: int) -> list[dict[str, Any]]:
        def conv(n: int, padding: str = "valid") -> tuple[str, dict[str, Any]]:
            return ("Conv2D", {"filters": n, "kernel_size": [3, 3], "padding": padding, "activation": "relu"})

        return layers_of(
            conv(32, "same"),
            conv(32),
            ("MaxPooling2D", {"pool_size": [2, 2]}),
            ("Dropout", {"rate": 0.25}),
            conv(filters, "same"),
            conv(filters),
            ("MaxPooling2D", {"pool_size": [2, 2]}),
            ("Dropout", {"rate": 0.25}),
            ("Flatten", {}),
            ("Dense", {"units": 512, "activation": "relu"}),
            ("Dropout", {"rate": 0.5}),
            ("Dense", {"units": 10, "activation": "softmax"}),
            input_shape=(32, 32, 3),
        )

    for filters in (64, 48):
        result = compare(network(filters), spec)
        assert result.status == EXACT, result.problems
        assert result.rows[5]["expected_shape"] == [None, 13, 13, filters]


def test_parameter_formulas_for_every_layer() -> None:
    """Conv2D (3x3x1 + 1) x 32 = 320; Dense (1024 + 1) x 10 = 10,250; BatchNormalization's non-trainable half;
    a frozen layer all non-trainable; trainable + non-trainable = the total; checked against stored weights."""
    table = layers_of(
        ("Conv2D", {"filters": 32, "kernel_size": [3, 3]}),
        ("BatchNormalization", {}),
        ("Flatten", {}),
        ("Dense", {"units": 1024, "use_bias": False}),
        ("Dense", {"units": 10, "trainable": False}),
    )
    assert [row["formula"] for row in table] == [
        "(3x3x1 + 1) x 32 = 320",
        "4 x 32 = 128 (64 trainable: gamma, beta; 64 non-trainable: moving mean, variance)",
        "0 (no weights)",
        "21632 x 1024 = 22,151,168",
        "(1024 + 1) x 10 = 10,250 (frozen: all non-trainable)",
    ]
    stored = {"layer0": 320, "layer1": 128, "layer3": 22_151_168, "layer4": 10_250}
    explained = explain_parameters(table, stored, sum(stored.values()))
    assert (explained["trainable"], explained["non_trainable"], explained["total"]) == (22_151_552, 10_314, 22_161_866)
    assert explained["differing"] == []
    assert parameters_sentence(explained).endswith("the stored weights hold 22,161,866, layer by layer the same")
    tampered = explain_parameters(table, {**stored, "layer4": 10}, sum(stored.values()) - 10_240)
    assert tampered["differing"] == [{"layer": "layer4", "config": 10_250, "stored": 10}]
    assert "they differ at layer4 (config 10,250, stored 10)" in parameters_sentence(tampered)


def test_oxford_network_counts_1103539() -> None:
    """The practical's network: 3,625 + 40,064 + 1,049,600 + 10,250 = 1,103,539, every formula stated."""
    table = layers_of(*oxford_layers())
    assert [row["formula"] for row in table if row["parameters"]] == [
        "(12x12x1 + 1) x 25 = 3,625",
        "(5x5x25 + 1) x 64 = 40,064",
        "(1024 + 1) x 1024 = 1,049,600",
        "(1024 + 1) x 10 = 10,250",
    ]
    assert sum(row["parameters"] for row in table) == 1_103_539


ASSIGNMENT = (
    """
schema = 1
[assignment]
name = "t"
max_score = 2
"""
    + LIMITS_AND_VERSIONS
    + """[screening]
formats = ["keras-h5"]
[data]
image_shape = [28, 28]
classes = 10
[evaluation]
feed = "declared"
[marking]
scheme = "signoff"
max_score = 2
[[marking.rules]]
label = "S+"
score = 2
architecture = "exact"
min_accuracy = 97.5
[[marking.rules]]
label = "S"
score = 1
architecture = "kinds"
[[marking.rules]]
label = "no"
score = 0
"""
)
LAYER = """
[architecture]
policy = "report"
[[architecture.layers]]
kind = "Conv2D"
"""


def parse(text: str) -> Any:
    import tomllib

    return parse_assignment(tomllib.loads(text), path="t.toml", sha256="0")


def test_an_architecture_file_section_is_read_with_defaults() -> None:
    """[architecture] gives the layers; the input shape defaults to the part's image with one channel."""
    part = parse(ASSIGNMENT + LAYER + 'filters = 8\nkernel_size = 3\nactivation = ["relu", "elu"]\n').parts[0]
    assert isinstance(part.architecture, ArchitectureSpec)
    assert part.architecture.input_shape == (28, 28, 1) and part.architecture.policy == "report"
    assert part.architecture.layers[0].settings == (("filters", 8), ("kernel_size", 3), ("activation", ("relu", "elu")))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('kernel_size = "3"', "architecture.layers[0].kernel_size must be a positive integer or a list of them"),
        ('padding = "full"', "architecture.layers[0].padding is 'full'; choose one of: valid, same"),
        ("rate = 1.5", "architecture.layers[0].rate must be a number from 0 up to (not including) 1"),
        ("filter = 3", "architecture.layers[0].filter is not a known key"),
        ("filters = 0", "architecture.layers[0].filters must be a positive integer"),
        ("activation = []", "architecture.layers[0].activation must be a name or a list of accepted names"),
    ],
)
def test_bad_layer_settings_name_the_key_and_the_fix(extra: str, message: str) -> None:
    """Each mistake in a layer spec is an error naming the file, the key and what to write instead."""
    with pytest.raises(AssignmentError, match="t.toml: " + re.escape(message)):
        parse(ASSIGNMENT + LAYER + extra + "\n")


def test_an_unknown_layer_kind_is_an_error() -> None:
    """A kind that is no Keras layer class (a typo) is refused when the file is read."""
    with pytest.raises(AssignmentError, match="kind is 'Conv2d', not a Keras layer class"):
        parse(ASSIGNMENT + LAYER.replace("Conv2D", "Conv2d"))


def test_signoff_rules_about_the_architecture_need_one() -> None:
    """A sign-off rule that asks about the architecture, with no [architecture]: an error saying what to add."""
    with pytest.raises(AssignmentError, match="architecture is missing: the sign-off rules ask about the architecture"):
        parse(ASSIGNMENT)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'label = "no"\nscore = 0',
            'label = "no"\nscore = 0\nmin_accuracy = 10',
            r"rules\[2\] \('no'\) must have no condition",
        ),
        ('label = "S"\nscore = 1', 'label = "S"\nscore = 3', r"rules\[1\].score is 3, outside 0 .. max_score \(2\)"),
        ('label = "S"\nscore = 1', 'label = "S+"\nscore = 1', "repeat a label"),
        ('label = "S+"\nscore = 2', 'label = "S+"\nscore = 0', "go best first: 'S' scores more than 'S\\+'"),
        (
            'architecture = "kinds"',
            'architecture = "close"',
            "architecture is 'close'; choose one of: exact, kinds, any",
        ),
    ],
)
def test_bad_signoff_rules_are_errors(old: str, new: str, message: str) -> None:
    """The last rule is unconditional, scores fit max_score, labels are unique, best first, known conditions."""
    with pytest.raises(AssignmentError, match=message):
        parse(ASSIGNMENT.replace(old, new) + LAYER)


def test_shipped_assignments_cite_their_seed_for_each_layer() -> None:
    """Every layer of a shipped architecture says where the coursework asks for it."""
    for name in ("oxford-practical3", "uva-lab1", "syde522-a4"):
        rules = load_assignment(name)
        specs = [part.architecture for part in rules.parts if part.architecture is not None]
        assert specs, name
        for spec in specs:
            assert spec.source and all(layer.says for layer in spec.layers), name


def test_the_oxford_file_is_the_practical() -> None:
    """Oxford's file: seven layers as lines 92-98 say, sign-off S+ / S / not signed off, Normalize's mean and std."""
    part = load_assignment("oxford-practical3").parts[0]
    assert part.data.mean == (0.1307,) and part.data.std == (0.3081,)
    assert [layer.kind for layer in OXFORD.layers] == [
        "Conv2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert [rule.label for rule in part.marking.rules] == ["S+", "S", "not signed off"]
    assert Path(load_assignment("oxford-practical3").path).name == "oxford-practical3.toml"


@pytest.mark.parametrize(
    "attributes",
    [
        {"filters": 64, "kernel_size": [5, 5], "strides": [0, 0], "padding": "valid", "activation": "relu"},
        {"filters": {"a": 1}, "kernel_size": "5x5", "strides": None, "padding": 3, "activation": ["relu"]},
    ],
)
def test_hostile_settings_in_a_config_never_raise(attributes: dict[str, Any]) -> None:
    """A layer table with settings no Keras writes (a zero stride after an explicit padding, sizes as strings,
    dicts for numbers) is compared without an exception: a difference, or 'different' with the reason."""
    table = layers_of(*oxford_layers())
    table.insert(1, {**table[0], "class_name": "ZeroPadding2D", "attributes": {"padding": [[2, 2], [2, 2]]}})
    table[2] = {**table[2], "attributes": attributes}
    result = compare(table, OXFORD)
    assert result.status in (KINDS, DIFFERENT) and result.problems


def test_ignored_layer_classes_are_no_difference_and_are_listed() -> None:
    """Oxford's file ignores a Reshape: a model taking (28, 28) and reshaping to 28x28x1 first is exact, and the
    comparison lists the layer it left out."""
    table = layers_of(("Reshape", {"target_shape": [28, 28, 1]}), *oxford_layers(), input_shape=(28, 28))
    result = compare(table, OXFORD)
    assert result.status == EXACT, result.problems
    assert result.ignored == ("layer 1 (Reshape)",) and result.to_json()["ignored"] == ["layer 1 (Reshape)"]
    assert compare(table, ArchitectureSpec(OXFORD.layers, input_shape=(28, 28, 1))).status == DIFFERENT
