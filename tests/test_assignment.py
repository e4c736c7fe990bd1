"""Assignment files: the rules are data, validated on load, with errors that name the file, key and fix."""

from __future__ import annotations

import re
import tomllib
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from grader.courseworks.assignment import builtin_assignments, load_assignment, parse_interval
from grader.courseworks.schema import schema
from grader.errors import AssignmentError

from .assignment_text import LIMITS_AND_VERSIONS

DEFAULT = builtin_assignments()["kcl-dnn-cw1"]


def variant(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    """A copy of the default assignment with one piece of text replaced."""
    text = DEFAULT.read_text()
    assert old in text, old
    path = tmp_path / "variant.toml"
    path.write_text(text.replace(old, new, count))
    return path


def test_default_assignment_holds_coursework_1() -> None:
    """The shipped default is Coursework 1: Table 1, 500 MB, TF 2.18.0, the official script's feeding."""
    rules = load_assignment()
    assert rules.name == "kcl-dnn-cw1"
    part = rules.parts[0]
    assert rules.single and part.marking.name == "bands" and part.marking_title == "Table 1"
    assert [band.score for band in reversed(part.marking.bands)] == [20, 18, 16, 14, 13, 12, 10, 9, 8, 7, 6, 5, 4, 3, 0]
    assert rules.limits.file_bytes.maximum == 500 * 1024 * 1024
    assert rules.limits.file_bytes.policy == "refuse"
    assert rules.limits.parameters.policy == "flag"
    assert rules.versions.tensorflow == "2.18.0"
    assert part.evaluation.feed == "by-rank" and part.evaluation.script
    assert [(step.name, step.rank_above, step.shape) for step in part.evaluation.by_rank] == [
        ("CNN", 2, (28, 28, 1)),
        ("MLP", 0, (784,)),
    ]
    assert part.evaluation.batch_size == 32 and part.data.scale == 255 and part.data.public == "mnist"
    assert "Lambda" not in rules.screening.allowed_layers and "Dense" in rules.screening.allowed_layers
    assert len(rules.sha256) == 64


def test_assignment_by_path_and_by_name(tmp_path: Path) -> None:
    """--assignment takes a built-in name or a file path."""
    assert load_assignment("kcl-dnn-cw1").sha256 == load_assignment(DEFAULT).sha256


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[96.5, 97)", ("193/2", "97", True, False)),
        ("(0, 50)", ("0", "50", False, False)),
        ("0", ("0", "0", True, True)),
        ("[97, 100]", ("97", "100", True, True)),
    ],
)
def test_intervals_parse_exactly(text: str, expected: tuple) -> None:
    """Band intervals are read as exact fractions with their open or closed edges."""
    low, high, low_closed, high_closed = parse_interval(text)
    assert (str(low), str(high), low_closed, high_closed) == expected


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('range = "[97, 100]"', 'range = "[97, 100)"', r"bands leave 100% without a mark: close the top band"),
        ('range = "[96.5, 97)"', 'range = "[96.6, 97)"', r"bands leave 96\.5% without a mark"),
        ('range = "[96.5, 97)"', 'range = "[96.5, 97]"', r"bands '\[96\.5, 97\]' and '\[97, 100\]' overlap"),
        ('range = "0"', 'range = "zero"', r"bands\[\d+\]\.range 'zero' is not an interval"),
        (
            '"[97, 100]"\nscore = 20',
            '"[97, 100]"\nscore = 25',
            r"bands\[0\]\.score is 25, outside 0 \.\. max_score \(20\)",
        ),
        (
            'file_size_policy = "refuse"',
            'file_size_policy = "maybe"',
            r"limits\.file_size_policy is 'maybe'; choose one of: refuse, flag",
        ),
        ("batch_size = 32", "batch_size = -1", r"evaluation\.batch_size must be a positive integer"),
        ("shape = [784]", "shape = [28]", r"evaluation\.by_rank\[1\]\.shape \[28\] holds 28 values"),
        ("rank_above = 2", "rank_above = -1", r"evaluation\.by_rank\[0\]\.rank_above must be a whole number"),
        ('name = "MLP"', 'label = "MLP"', r"evaluation\.by_rank\[1\]\.name is missing"),
        ('feed = "by-rank"', 'feed = "official-kcl"', r"evaluation\.feed is 'official-kcl'; choose one of: by-rank"),
        ("[limits]", "[limits]\nmax_files = 3", r"limits\.max_files is not a known key"),
        ("schema = 1", "schema = 2", r"schema is 2, but this grader reads schema 1"),
        ('name = "kcl-dnn-cw1"', 'name = "a b"', r"assignment\.name may hold only"),
        # Nothing falls back to Coursework 1's 28x28 digits, ten classes or its test script's feeding rule.
        ("image_shape = [28, 28]\n", "", r"data\.image_shape is missing: give it for the part's images"),
        ("classes = 10\n", "", r"data\.classes is missing"),
        ('feed = "by-rank"\n', "", r"evaluation\.feed is missing: 'declared' .* or 'by-rank'"),
        # Nor to its upload limit, parameter budget or TensorFlow: each file states its own.
        ("max_file_bytes = 524_288_000\n", "", r"limits\.max_file_bytes is missing: give the largest file"),
        ('parameters_policy = "flag"\n', "", r"limits\.parameters_policy is missing; choose one of: refuse, flag"),
        ('tensorflow = "2.18.0"\n', "", r"versions\.tensorflow is missing"),
        ('untagged_older_policy = "flag"\n', "", r"versions\.untagged_older_policy is missing; choose one of"),
    ],
)
def test_bad_assignment_names_the_file_key_and_fix(tmp_path: Path, old: str, new: str, message: str) -> None:
    """Each broken rule is refused on load with the file, the key and what is wrong."""
    path = variant(tmp_path, old, new)
    with pytest.raises(AssignmentError, match=re.escape(str(path)) + ": " + message):
        load_assignment(path)


def test_unreadable_assignment_files(tmp_path: Path) -> None:
    """A missing file, or one that is not TOML, is a clear error."""
    with pytest.raises(AssignmentError, match="no such assignment file .*assignments by name: kcl-dnn-cw1"):
        load_assignment(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("schema = = 1")
    with pytest.raises(AssignmentError, match="not valid TOML"):
        load_assignment(broken)


def test_evaluation_key_ignores_marking_rules(tmp_path: Path) -> None:
    """Changing bands or limits keeps stored predictions usable; changing how images are fed does not."""
    base = load_assignment()
    rebanded = load_assignment(variant(tmp_path, "score = 18", "score = 17"))
    assert rebanded.parts[0].evaluation_key() == base.parts[0].evaluation_key()
    assert rebanded.sha256 != base.sha256
    refed = load_assignment(variant(tmp_path, "batch_size = 32", "batch_size = 64"))
    assert refed.parts[0].evaluation_key() != base.parts[0].evaluation_key()


def test_shipped_toml_is_valid_toml_with_documented_sections() -> None:
    """The shipped file parses with the standard library, and holds every section the schema reads."""
    document = tomllib.loads(DEFAULT.read_text())
    # Every section a one-part file can have, except a required architecture (Coursework 1 has none).
    assert set(document) == set(schema()["properties"]) - {"parts", "architecture"}


def test_the_shipped_courseworks_load_with_their_parts() -> None:
    """SYDE 522 A4 has an MNIST and a CIFAR-10 part, each linear over 2 marks; UvA Lab 1 three parts with
    the input shapes its questions prescribe; every shipped file names its seed's source."""
    syde = load_assignment("syde522-a4")
    assert [part.name for part in syde.parts] == ["mnist", "cifar10"] and syde.max_score == 4
    assert syde.part("cifar10").data.image_shape == (32, 32, 3) and syde.part("cifar10").data.names[9] == "truck"
    assert {part.marking.name for part in syde.parts} == {"linear"}
    assert all(part.evaluation.feed == "declared" for part in syde.parts)
    uva = load_assignment("uva-lab1")
    assert {part.name: part.input_shapes for part in uva.model_parts} == {
        "mlp": ((784,),),
        "cnn": ((28, 28, 1),),
        "cifar10": ((32, 32, 3),),
    }
    assert uva.max_score == 25 and {part.data.public for part in uva.model_parts} == {"mnist", "cifar10"}
    # Exercise three's code part: the seed's six questions and points (Q20-25: 5, 2, 3, 2, 5, 2).
    code = uva.part("code").code
    assert code is not None and uva.formats_of(uva.part("code")) == ("python", "notebook")
    assert [(q.name, int(q.points)) for q in code.questions] == [
        ("q20", 5),
        ("q21", 2),
        ("q22", 3),
        ("q23", 2),
        ("q24", 5),
        ("q25", 2),
    ]
    for name in ("kcl-dnn-cw1", "syde522-a4", "uva-lab1"):
        rules = load_assignment(name)
        assert "seed" in rules.source.lower() or "Coursework 1" in rules.source
        assert rules.description


PARTS = (
    """
schema = 1
[assignment]
name = "two"
max_score = 3
"""
    + LIMITS_AND_VERSIONS
    + """[screening]
formats = ["onnx"]
[data]
image_shape = [28, 28]
classes = 10
scale = 255
[evaluation]
feed = "declared"
batch_size = 32
[[parts]]
name = "digits"
files = ["*digit*"]
[parts.marking]
scheme = "linear"
max_score = 2
min_accuracy = 50
full_accuracy = 90
[[parts]]
name = "colour"
weight = 0.5
[parts.data]
image_shape = [32, 32, 3]
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]
layout = "nchw"
[parts.evaluation]
batch_size = 64
[parts.marking]
max_score = 2
[[parts.bands]]
range = "[0, 50)"
score = 0
[[parts.bands]]
range = "[50, 100]"
score = 2
"""
)


def test_a_part_inherits_the_files_shared_tables_and_outranks_them(tmp_path: Path) -> None:
    """A part's own [parts.data] and [parts.evaluation] keys outrank the file's top-level ones, which fill in
    the rest; the total maximum is each part's maximum times its weight."""
    path = tmp_path / "two.toml"
    path.write_text(PARTS)
    rules = load_assignment(path)
    digits, colour = rules.parts
    assert (digits.evaluation.feed, digits.evaluation.batch_size) == ("declared", 32)
    assert (colour.evaluation.feed, colour.evaluation.batch_size) == ("declared", 64)
    assert colour.data.layout == "nchw" and colour.data.mean == (0.5, 0.5, 0.5) and colour.weight == Fraction(1, 2)
    assert rules.max_score == 3 and not rules.single
    assert digits.name_matches("My_DIGITS.h5") and not colour.files and colour.name_matches("anything.h5")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_score = 3", "max_score = 4", "assignment.max_score is 4, but the parts' maximum scores times their"),
        ('name = "colour"', 'name = "digits"', "parts names repeat (digits, digits)"),
        ("mean = [0.5, 0.5, 0.5]", "mean = [0.5]", "parts[1].data.mean needs one number per channel (3), not 1"),
        ("std = [0.25, 0.25, 0.25]\n", "", "parts[1].data.std is missing: give it with mean, as PyTorch's Normalize"),
        ("full_accuracy = 90", "full_accuracy = 40", "parts[0].marking.full_accuracy must be above min_accuracy (50%)"),
        (
            "full_accuracy = 90",
            'full_accuracy = 90\nrounding = "down"',
            "parts[0].marking.step is needed with rounding",
        ),
        (
            'files = ["*digit*"]',
            'files = ["*digit*"]\ninput_shapes = [[28, 27]]',
            "parts[0].input_shapes[0] [28, 27] holds 756 values but one image of [28, 28] holds 784",
        ),
        ('layout = "nchw"', 'layout = "hwcn"', "parts[1].data.layout is 'hwcn'; choose one of: nhwc, nchw"),
        ("weight = 0.5", "weight = 0", "parts[1].weight must be positive, not 0"),
        ('[evaluation]\nfeed = "declared"', '[evaluation]\nfeed = "guess"', "feed is 'guess'; choose one of"),
        ("schema = 1\n", 'schema = 1\n[[bands]]\nrange = "0"\nscore = 0\n', "bands belongs to each part"),
    ],
)
def test_part_errors_name_the_file_the_key_and_the_fix(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = tmp_path / "two.toml"
    assert PARTS.count(old) == 1, old
    path.write_text(PARTS.replace(old, new))
    with pytest.raises(AssignmentError, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
        load_assignment(path)


def test_command_line_overrides_keep_the_feeding_rule() -> None:
    """--time-limit replaces one evaluation setting in every part and keeps the rest, the by-rank steps included."""
    rules = load_assignment("kcl-dnn-cw1")
    changed = rules.with_overrides(time_limit_seconds=10.0, batch_size=None)
    assert changed.parts[0].evaluation.time_limit_seconds == 10.0
    assert changed.parts[0].evaluation.by_rank == rules.parts[0].evaluation.by_rank
    assert changed.parts[0].evaluation.batch_size == rules.parts[0].evaluation.batch_size


def test_the_schema_declares_every_key_the_parser_reads_and_the_parser_reads_every_key_it_declares(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """assignment.schema.json and the parser cannot drift apart: every key read while loading the shipped files
    and a file with parts is declared in the schema, and every key the schema declares is named in the parser's
    code (a key added to one and not the other fails here). The choices the parser offers are the schema's."""
    from grader.checks import architecture_spec
    from grader.courseworks import assignment, schema

    read: set[str] = set()
    get = assignment._Reader.get

    def recording(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        read.add(re.sub(r"\[\d+\]", "[]", f"{self.prefix}.{key}" if self.prefix else key))
        return get(self, key, *args, **kwargs)

    monkeypatch.setattr(assignment._Reader, "get", recording)
    for name in builtin_assignments():
        load_assignment(name)
    (tmp_path / "two.toml").write_text(PARTS)
    load_assignment(tmp_path / "two.toml")
    declared = schema.keys()
    assert read and read <= declared, sorted(read - declared)
    code = Path(assignment.__file__).read_text() + Path(architecture_spec.__file__).read_text()
    unread = {key for key in declared if f'"{key.rsplit(".", 1)[-1].removesuffix("[]")}"' not in code}
    assert unread == {"schema"}, sorted(unread)  # the file's schema version, which only the schema checks
    choices = {
        "limits.file_size_policy": assignment.POLICIES,
        "versions.untagged_older_policy": assignment.UNTAGGED_POLICIES,
        "versions.legacy_loader_policy": assignment.LEGACY_LOADER_POLICIES,
        "evaluation.feed": assignment.FEEDS,
        "evaluation.input_mode": assignment.INPUT_MODES,
        "data.layout": assignment.LAYOUTS,
        "marking.scheme": assignment.SCHEMES,
        "parts[].kind": assignment.KINDS,
        "marking.rounding": assignment.ROUNDINGS,
        "marking.rules[].architecture": assignment.ARCHITECTURE_CONDITIONS,
        "architecture.policy": assignment.ARCHITECTURE_POLICIES,
        "architecture.layers[].padding": architecture_spec.PADDINGS,
        "parts[].questions[].rule": assignment.CODE_RULES,
    }
    for key, values in choices.items():
        assert tuple(schema.declared(key)["enum"]) == tuple(values), key
