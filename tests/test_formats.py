"""Models from any framework: ONNX graphs and Keras 3's .keras zips, recognised by content, screened without
running anything, predicted in the sandboxed worker; pickles never opened; hostile files refused."""

from __future__ import annotations

import csv
import json
import os
import tomllib
from pathlib import Path

import numpy as np
import pytest

from grader.checks.screening import screen
from grader.cohort import grade_cohort
from grader.courseworks.assignment import load_assignment, parse_assignment
from grader.discovery import discover_submissions
from grader.errors import AssignmentError
from grader.formats import inspect_file, recognised
from grader.formats.onnx import inspect_onnx

from . import build_onnx
from .assignment_text import LIMITS_AND_VERSIONS
from .conftest import DEMO_HELDOUT, SHARED
from .seed_evaluations import run_seed_evaluations

OXFORD = load_assignment("oxford-practical3")
MEAN, STD = 0.1307, 0.3081


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    with np.load(DEMO_HELDOUT) as data:
        return data["x"], data["y"]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory, digits) -> Path:
    """The ordinary and hostile ONNX graphs and .keras zips of tests/build_onnx.py."""
    import onnx

    out = tmp_path_factory.mktemp("graphs")
    weight, bias = build_onnx.linear_weights(*digits)
    plain = build_onnx.mlp(weight, bias)
    onnx.save(plain, out / "mlp.onnx")
    onnx.save(build_onnx.mlp(weight, bias, softmax=True), out / "mlp_softmax.onnx")
    onnx.save(build_onnx.mlp(weight, bias, batch=1), out / "mlp_batch1.onnx")
    onnx.save(build_onnx.cnn("nchw"), out / "cnn_nchw.onnx")
    onnx.save(build_onnx.cnn("nhwc"), out / "cnn_nhwc.onnx")
    (out / "beside").mkdir()
    build_onnx.with_external(plain, out / "beside", "mlp.onnx", "mlp.onnx.data")
    onnx.save(build_onnx.pointing_at(plain, "/etc/passwd"), out / "passwd.onnx")
    onnx.save(build_onnx.pointing_at(plain, "../secret.bin"), out / "climbing.onnx")
    onnx.save(build_onnx.custom_domain(plain), out / "custom.onnx")
    onnx.save(build_onnx.own_function(plain), out / "function.onnx")
    onnx.save(build_onnx.declared_giant(), out / "giant.onnx")
    build_onnx.zip_bomb(out / "bomb.keras")
    build_onnx.climbing(out / "climbing.keras")
    build_onnx.torch_checkpoint(out / "checkpoint.keras")
    return out


def prepared(x: np.ndarray, mean: float = MEAN, std: float = STD) -> np.ndarray:
    return (x.astype(np.float32) / np.float32(255) - np.float32(mean)) / np.float32(std)


def reference(path: Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime's own prediction of prepared images, one call per image (no batching of grader's)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = session.get_inputs()[0].shape
    per_image = [size if isinstance(size, int) else 1 for size in declared[1:]]
    name = session.get_inputs()[0].name
    if len(per_image) == 3 and per_image[-1] == 1:
        rows = [session.run(None, {name: image.reshape(1, *per_image)})[0] for image in x]
    else:
        rows = [session.run(None, {name: image.reshape(1, *per_image)})[0] for image in x]
    return np.argmax(np.concatenate(rows), axis=1)


# Recognising and inspecting ----------------------------------------------------------------------------


def test_files_are_recognised_by_content_not_name(graphs: Path, tmp_path: Path) -> None:
    """An ONNX graph, a zip, a pickle and safetensors are told apart by their first bytes, whatever their names."""
    renamed = tmp_path / "model.h5"
    renamed.write_bytes((graphs / "mlp.onnx").read_bytes())
    (tmp_path / "p.bin").write_bytes(b"\x80\x04\x95\x00")
    (tmp_path / "s.bin").write_bytes((16).to_bytes(8, "little") + b'{"a": 1}        ')
    found = [recognised(p) for p in (renamed, graphs / "bomb.keras", tmp_path / "p.bin", tmp_path / "s.bin")]
    assert [None if f is None else f.name for f in found] == ["onnx", "keras-zip", None, None]
    assert inspect_file(renamed).format == "onnx"
    assert inspect_file(tmp_path / "p.bin").format == "a Python pickle, not HDF5"


def test_an_onnx_graph_is_inspected_without_running_it(graphs: Path) -> None:
    """Producer, opsets, operators, shapes, parameters from initializers and the layers with formulas."""
    facts = inspect_onnx(graphs / "cnn_nchw.onnx")
    assert (facts.format, facts.producer, facts.opsets) == ("onnx", "grader-tests", {"": 17})
    assert facts.operators == ("Conv", "Relu", "MaxPool", "Flatten", "Gemm")
    assert facts.input_shape == [None, 1, 28, 28] and facts.output_shape == [None, 10]
    assert facts.parameter_count == 4 * 9 + 4 + 676 * 10 + 10 == facts.config_parameters
    assert [(row["class_name"], row["formula"]) for row in facts.layer_table if row["parameters"]] == [
        ("Conv2D", "(3x3x1 + 1) x 4 = 40"),
        ("Dense", "(676 + 1) x 10 = 6,770"),
    ]
    assert facts.layer_table[0]["output_shape"] == [None, 26, 26, 4]  # shown channels last, as Keras writes it
    assert inspect_onnx(graphs / "mlp_batch1.onnx").fixed_batch == 1


@pytest.mark.parametrize(
    ("name", "check", "message"),
    [
        ("custom.onnx", "operators", "operators outside the standard domains: com.evil:Exec"),
        ("function.onnx", "operators", "the graph defines its own functions: local.fns:Twice"),
        ("giant.onnx", "parameters", "W declares 4,000,000,000,000 bytes ([1000000, 1000000]) and stores 4"),
        ("passwd.onnx", "external data", "W names '/etc/passwd', which is not a file name beside the graph"),
        ("climbing.onnx", "external data", "W names '../secret.bin', which is not a file name beside the graph"),
        ("bomb.keras", "archive", "member 'model.weights.h5' expands 1,"),
        ("climbing.keras", "archive", "member '../../escape.txt' names a path outside the archive"),
        ("checkpoint.keras", "archive", "it is a PyTorch checkpoint (a zip holding data.pkl"),
    ],
)
def test_hostile_files_are_refused_with_the_reason(graphs: Path, name: str, check: str, message: str) -> None:
    """Each hostile file fails screening (before anything could load it), naming what is wrong."""
    failed = {c.name: c for c in screen(inspect_file(graphs / name), OXFORD) if c.outcome == "fail"}
    assert check in failed and message in failed[check].message, failed
    assert failed[check].advice


def test_external_data_beside_the_graph_is_accepted_and_checked_against_the_folder(graphs: Path) -> None:
    """Weights in mlp.onnx.data beside mlp.onnx pass when that file is in the submission and long enough; a
    missing or short file fails."""
    facts = inspect_file(graphs / "beside" / "mlp.onnx")
    size = (graphs / "beside" / "mlp.onnx.data").stat().st_size
    passed = {c.name: c for c in screen(facts, OXFORD, beside={"mlp.onnx": 100, "mlp.onnx.data": size})}
    assert passed["external data"].outcome == "pass" and "mlp.onnx.data" in passed["external data"].message
    missing = {c.name: c for c in screen(facts, OXFORD, beside={"mlp.onnx": 100})}
    assert "which is not in the submission" in missing["external data"].message
    short = {c.name: c for c in screen(facts, OXFORD, beside={"mlp.onnx.data": 16})}
    assert short["external data"].outcome == "fail" and "of mlp.onnx.data (16 bytes)" in short["external data"].message


def test_pickles_are_refused_by_name_and_never_opened(tmp_path: Path) -> None:
    """A .pt in the folder of an assignment taking ONNX: refused, with the export to use instead."""
    folder = tmp_path / "subs" / "Al A_1_assignsubmission_file_"
    folder.mkdir(parents=True)
    fifo = folder / "model.pt"
    os.mkfifo(fifo)  # opening it would block: discovery must only list it
    found = discover_submissions(tmp_path / "subs", OXFORD.screening.formats)[0]
    assert found.problem_status == "refused" and "torch.onnx.export" in found.problem


def test_an_assignment_lists_the_formats_it_takes() -> None:
    """[screening] formats: Coursework 1 takes .h5 only, Oxford all three; an unknown format is an error."""
    assert load_assignment().screening.formats == ("keras-h5",)
    assert OXFORD.screening.formats == ("keras-h5", "keras-zip", "onnx")
    text = (
        """schema = 1\n[assignment]\nname = "t"\nmax_score = 1\n[data]\nimage_shape = [28, 28]\nclasses = 10\n"""
        """[limits]\nmax_file_bytes = 1000\nfile_size_policy = "refuse"\nmax_parameters = 1000\n"""
        """parameters_policy = "flag"\n[versions]\ntensorflow = "2.18.0"\nuntagged_older_policy = "grade"\n"""
        """legacy_loader_policy = "flag"\n"""
        """[evaluation]\nfeed = "declared"\n[[bands]]\nrange = "[0, 100]"\nscore = 1\n"""
    )
    with pytest.raises(AssignmentError, match="screening.formats holds 'pytorch'"):
        parse_assignment(tomllib.loads(text + '[screening]\nformats = ["pytorch"]\n'), path="t.toml", sha256="0")
    with pytest.raises(AssignmentError, match=r"t.toml: screening.formats is missing: name the model formats"):
        parse_assignment(tomllib.loads(text), path="t.toml", sha256="0")


@pytest.mark.corpus
def test_real_onnx_and_keras_files_are_inspected() -> None:
    """Every real file of ../shared/corpus/onnx and keras: recognised, its parameters counted as the graph
    stores them, its layers read; the PyTorch export with weights in mnist.onnx.data names that file."""
    for kind in ("onnx", "keras"):
        manifest = SHARED / "corpus" / kind / "manifest.csv"
        if not manifest.exists():
            pytest.skip(f"{manifest} is absent: the corpus tests need ../shared/corpus")
        with open(manifest, newline="") as handle:
            for row in csv.DictReader(handle):
                if row["file"].endswith(".data"):
                    continue  # a graph's external weights, listed beside it
                facts = inspect_file(SHARED / "corpus" / kind / row["file"])
                assert facts.format == ("onnx" if kind == "onnx" else "keras-zip"), row["file"]
                assert facts.readable and facts.layer_table, row["file"]
                if "EXTERNAL DATA" in row["notes"]:
                    assert {entry["location"] for entry in facts.external_data} == {"mnist.onnx.data"}


# Grading -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, graphs: Path, architecture_models: Path):
    """An Oxford cohort of .h5, .keras and .onnx files (and hostile ones), graded in one run."""
    import shutil

    import onnx

    root = tmp_path_factory.mktemp("mixed")
    subs = root / "submissions"
    layout = {
        "Ada H5_600001_assignsubmission_file_": {architecture_models / "oxford_exact.h5": "model.h5"},
        "Bo Keras_600002_assignsubmission_file_": {architecture_models / "oxford_exact.keras": "model.keras"},
        "Cy Mlp_600003_assignsubmission_file_": {graphs / "mlp.onnx": "mlp.onnx"},
        "Di Softmax_600004_assignsubmission_file_": {graphs / "mlp_softmax.onnx": "model.onnx"},
        "Ed Batch1_600005_assignsubmission_file_": {graphs / "mlp_batch1.onnx": "model.onnx"},
        "Flo Nchw_600006_assignsubmission_file_": {graphs / "cnn_nchw.onnx": "model.onnx"},
        "Gil Nhwc_600007_assignsubmission_file_": {graphs / "cnn_nhwc.onnx": "model.onnx"},
        "Hu Beside_600008_assignsubmission_file_": {
            graphs / "beside" / "mlp.onnx": "mlp.onnx",
            graphs / "beside" / "mlp.onnx.data": "mlp.onnx.data",
        },
        "Ivy Passwd_600009_assignsubmission_file_": {graphs / "passwd.onnx": "model.onnx"},
        "Jo Custom_600010_assignsubmission_file_": {graphs / "custom.onnx": "model.onnx"},
        "Kim Giant_600011_assignsubmission_file_": {graphs / "giant.onnx": "model.onnx"},
        "Lu Bomb_600012_assignsubmission_file_": {graphs / "bomb.keras": "model.keras"},
        "Mo Climb_600013_assignsubmission_file_": {graphs / "climbing.keras": "model.keras"},
    }
    for folder, files in layout.items():
        (subs / folder).mkdir(parents=True)
        for source, target in files.items():
            shutil.copyfile(source, subs / folder / target)
    # A PyTorch export of the trained network (the weights of the Keras copy): NCHW, no Dropout node.
    trained = build_onnx.oxford_from_keras(build_onnx.keras_weights(architecture_models / "oxford_exact.h5"))
    (subs / "Nia Torch_600014_assignsubmission_file_").mkdir()
    onnx.save(trained, subs / "Nia Torch_600014_assignsubmission_file_" / "oxford.onnx")
    # External data naming a FIFO: anything that opened it would block, and the student would time out.
    fifo = root / "canary.fifo"
    os.mkfifo(fifo)
    (subs / "Oz Fifo_600015_assignsubmission_file_").mkdir()
    onnx.save(
        build_onnx.pointing_at(onnx.load(graphs / "mlp.onnx"), str(fifo)),
        subs / "Oz Fifo_600015_assignsubmission_file_" / "m.onnx",
    )
    rules = root / "oxford-test.toml"
    rules.write_text(Path(OXFORD.path).read_text().replace("min_accuracy = 97.5", "min_accuracy = 80"))
    summary = grade_cohort(subs, assignment=rules, heldout=DEMO_HELDOUT, out=root / "reports")
    return subs, summary


def rows_of(summary) -> dict[str, dict]:
    return {row["student_id"]: row for row in summary.rows}


@pytest.mark.tensorflow
def test_each_onnx_accuracy_equals_onnxruntime_s_own_prediction(mixed, digits) -> None:
    """MLP (logits, softmax, fixed batch 1), CNNs taking NCHW and NHWC, weights beside the graph: each correct
    count equals onnxruntime's own prediction of the same normalised images, image by image."""
    subs, summary = mixed
    rows = rows_of(summary)
    x, y = digits
    for student in ("600003", "600004", "600005", "600006", "600007", "600008"):
        row = rows[student]
        assert row["status"] in ("graded", "flagged"), (student, row["reason"])
        folder = subs / row["folder"]
        graph = folder / row["file"]
        predicted = reference(graph, prepared(x))
        assert row["correct"] == int(np.sum(predicted == y)), student
    assert rows["600003"]["accuracy"] > 80  # the least-squares MLP really classifies
    loader = {c["name"]: c for c in rows["600005"]["detail"]["checks"]}["loader"]["message"]
    assert "in batches of 1, the batch size the graph fixes" in loader


@pytest.mark.tensorflow
def test_keras_files_equal_keras_s_own_prediction(mixed) -> None:
    """The .keras and the .h5 of the trained network: each correct count equals Keras's own load_model().predict."""
    subs, summary = mixed
    rows = rows_of(summary)
    jobs = [
        {
            "seed": "keras",
            "model": str(subs / rows[s]["folder"] / rows[s]["file"]),
            "heldout": str(DEMO_HELDOUT),
            "mean": MEAN,
            "std": STD,
        }
        for s in ("600001", "600002")
    ]
    for student, result in zip(("600001", "600002"), run_seed_evaluations(jobs), strict=True):
        assert rows[student]["status"] == "graded", rows[student]["reason"]
        assert rows[student]["correct"] == result["correct"], student


@pytest.mark.tensorflow
def test_a_pytorch_style_export_of_the_practical_is_signed_off(mixed) -> None:
    """The trained network as an NCHW ONNX graph: Oxford's architecture check reads it as the practical's
    (its Dropout, which exports leave out, not compared), and its accuracy equals the Keras file's."""
    _, summary = mixed
    rows = rows_of(summary)
    torch, keras = rows["600014"], rows["600001"]
    assert torch["detail"]["architecture"]["status"] == "exact", torch["detail"]["architecture"]["problems"]
    assert any("Dropout(rate=0.2)" in item for item in torch["detail"]["architecture"]["ignored"])
    assert torch["detail"]["mark"]["label"] == "S+"
    assert abs(torch["correct"] - keras["correct"]) <= 2  # float32 sums in another order, at most a near-tie


@pytest.mark.tensorflow
def test_hostile_files_end_with_a_status_and_nothing_they_name_is_read(mixed) -> None:
    """External data naming /etc/passwd or a FIFO, a custom-domain operator, a 4 TB tensor, a zip bomb and a
    zip climbing out: each refused with its reason; the FIFO was never opened (the run did not block)."""
    _, summary = mixed
    rows = rows_of(summary)
    expected = {
        "600009": "which is not a file name beside the graph",
        "600010": "operators outside the standard domains",
        "600011": "declares 4,000,000,000,000 bytes",
        "600012": "a zip bomb",
        "600013": "names a path outside the archive",
        "600015": "which is not a file name beside the graph",
    }
    for student, reason in expected.items():
        assert rows[student]["status"] == "refused", (student, rows[student]["status"], rows[student]["reason"])
        assert reason in rows[student]["reason"], (student, rows[student]["reason"])


@pytest.mark.tensorflow
def test_kcl_takes_h5_only_and_keeps_its_advice(tmp_path: Path, graphs: Path) -> None:
    """Coursework 1 does not take ONNX or .keras: a folder holding only those has no file to grade."""
    folder = tmp_path / "subs" / "Al A_1_assignsubmission_file_"
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes((graphs / "climbing.keras").read_bytes())
    found = discover_submissions(tmp_path / "subs", ("keras-h5",))[0]
    assert found.problem == (
        "no .h5 file: found model.keras, a .keras file (Keras 3 zip format), not .h5: save the model with "
        "model.save('name.h5')"
    )
    assert json.dumps(load_assignment().screening.formats) == '["keras-h5"]'


# The corpus manifest's preprocessing, as a data spec: (mean, std) after x / 255.
CORPUS_PREPROCESSING = {
    "x/255 -> [0,1]": (0.0, 1.0),
    "(x/255-0.1307)/0.3081": (0.1307, 0.3081),
    "(x/255-0.5)/0.5": (0.5, 0.5),
}


@pytest.mark.corpus
@pytest.mark.tensorflow
def test_real_onnx_exports_score_as_onnxruntime_predicts_them(tmp_path: Path) -> None:
    """Each real ONNX export of ../shared/corpus/onnx, graded with its own repository's preprocessing: its
    correct count equals onnxruntime's own, image by image; the PyTorch export with its weights in
    mnist.onnx.data is graded with the data file beside it; the 14x14 model cannot take 28x28 digits and
    says so (predict_failed)."""
    import shutil

    manifest = SHARED / "corpus" / "onnx" / "manifest.csv"
    if not manifest.exists():
        pytest.skip(f"{manifest} is absent: the corpus tests need ../shared/corpus")
    with open(manifest, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["file"].endswith(".onnx")]
    groups: dict[tuple[float, float], list[dict]] = {}
    for row in rows:
        key = next((v for k, v in CORPUS_PREPROCESSING.items() if row["preprocess"].startswith(k)), (0.0, 1.0))
        groups.setdefault(key, []).append(row)
    for (mean, std), group in groups.items():
        subs = tmp_path / f"subs-{mean}" / "submissions"
        for number, row in enumerate(group):
            folder = subs / f"S{number}_{700000 + number}_assignsubmission_file_"
            folder.mkdir(parents=True)
            name = "mnist.onnx" if "EXTERNAL DATA" in row["notes"] else "model.onnx"
            shutil.copyfile(SHARED / "corpus" / "onnx" / row["file"], folder / name)
            if "EXTERNAL DATA" in row["notes"]:
                shutil.copyfile(SHARED / "corpus" / "onnx" / (row["file"] + ".data"), folder / "mnist.onnx.data")
        text = Path(OXFORD.path).read_text()
        text = text.replace("mean = [0.1307]", f"mean = [{mean}]").replace("std = [0.3081]", f"std = [{std}]")
        rules = subs.parent / "rules.toml"
        rules.write_text(text)
        summary = grade_cohort(subs, assignment=rules, heldout=DEMO_HELDOUT, out=subs.parent / "reports")
        graded = {row["folder"]: row for row in summary.rows}
        jobs, expected = [], []
        for number, row in enumerate(group):
            result = graded[f"S{number}_{700000 + number}_assignsubmission_file_"]
            if "[1,196]" in row["input_shape"].replace(" ", ""):
                assert result["status"] == "predict_failed" and "196" in result["reason"], result["reason"]
                continue
            assert result["status"] in ("graded", "flagged"), (row["file"], result["reason"])
            folder = subs / result["folder"]
            jobs.append(
                {
                    "seed": "onnx",
                    "model": str(folder / result["file"]),
                    "heldout": str(DEMO_HELDOUT),
                    "mean": mean,
                    "std": std,
                }
            )
            expected.append((row["file"], result["correct"]))
        for (name, correct), reference_result in zip(expected, run_seed_evaluations(jobs), strict=True):
            assert correct == reference_result["correct"], name


@pytest.mark.corpus
@pytest.mark.tensorflow
def test_real_keras_zips_score_as_keras_predicts_them(tmp_path: Path) -> None:
    """Each real .keras file of ../shared/corpus/keras, graded by kit-ex9 (which takes .keras): its correct count
    equals Keras's own load_model().predict of the same images; the Keras 2.13 zip that neither Keras 3 nor
    tf_keras can load ends load_failed with both loaders' reasons."""
    import shutil

    manifest = SHARED / "corpus" / "keras" / "manifest.csv"
    if not manifest.exists():
        pytest.skip(f"{manifest} is absent: the corpus tests need ../shared/corpus")
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    subs = tmp_path / "submissions"
    for number, row in enumerate(rows):
        folder = subs / f"K{number}_{800000 + number}_assignsubmission_file_"
        folder.mkdir(parents=True)
        shutil.copyfile(SHARED / "corpus" / "keras" / row["file"], folder / "model.keras")
    summary = grade_cohort(subs, assignment="kit-ex9", heldout=DEMO_HELDOUT, out=tmp_path / "reports")
    graded = {row["folder"]: row for row in summary.rows}
    jobs, expected = [], []
    for number, row in enumerate(rows):
        result = graded[f"K{number}_{800000 + number}_assignsubmission_file_"]
        if "load_model FAILS" in row["notes"]:
            assert result["status"] == "load_failed" and "tf_keras" in result["reason"], result["reason"]
            continue
        assert result["status"] in ("graded", "flagged"), (row["file"], result["reason"])
        jobs.append(
            {"seed": "keras", "model": str(subs / result["folder"] / "model.keras"), "heldout": str(DEMO_HELDOUT)}
        )
        expected.append((row["file"], result["correct"]))
    for (name, correct), reference_result in zip(expected, run_seed_evaluations(jobs), strict=True):
        assert correct == reference_result["correct"], name


def test_a_part_may_take_its_own_formats() -> None:
    """A part's own `formats` outranks the assignment's; discovery looks for every format any part takes."""
    text = (
        """schema = 1
[assignment]
name = "t"
"""
        + LIMITS_AND_VERSIONS
        + """[data]
image_shape = [28, 28]
classes = 10
[evaluation]
feed = "declared"
[screening]
formats = ["keras-h5"]
[[parts]]
name = "keras"
[parts.marking]
scheme = "linear"
max_score = 1
min_accuracy = 10
full_accuracy = 90
[[parts]]
name = "torch"
formats = ["onnx"]
[parts.marking]
scheme = "linear"
max_score = 1
min_accuracy = 10
full_accuracy = 90
"""
    )
    rules = parse_assignment(tomllib.loads(text), path="t.toml", sha256="0")
    assert rules.formats_of(rules.part("keras")) == ("keras-h5",)
    assert rules.formats_of(rules.part("torch")) == ("onnx",)
    assert rules.formats == ("keras-h5", "onnx")
    with pytest.raises(AssignmentError, match=r"parts\[1\].formats holds 'pt'"):
        parse_assignment(
            tomllib.loads(text.replace('formats = ["onnx"]', 'formats = ["pt"]')), path="t.toml", sha256="0"
        )


def test_a_savedmodel_folder_is_refused_with_what_to_hand_in(tmp_path: Path) -> None:
    """A TensorFlow SavedModel folder (saved_model.pb and variables/) is not a format Oxford takes: refused."""
    folder = tmp_path / "subs" / "Al A_1_assignsubmission_file_" / "my_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    found = discover_submissions(tmp_path / "subs", OXFORD.screening.formats)[0]
    assert found.problem_status == "refused"
    assert found.problem.startswith("my_model/saved_model.pb belongs to a TensorFlow SavedModel folder")
