"""The two seams from outside: a course's own package registers, through entry points only, a coursework (a
folder of TOML files) and a model format (a linear classifier saved with numpy.savez, outputs = x.W + b), and
`grade` grades a cohort with them, with no change to grader. The package is written into a folder of the
test's own and found through PYTHONPATH, as `pip install` would place it in site-packages."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .assignment_text import LIMITS_AND_VERSIONS
from .conftest import moodle_id

FORMAT_MODULE = '''
"""A linear classifier saved with numpy.savez(file, W=..., b=...): outputs = x.W + b."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from grader.formats.base import Evaluator, Inspection, ModelFormat, installed


class LinearNpz(ModelFormat):
    name = "linear-npz"
    suffixes = (".npz",)
    described = "a linear classifier (.npz)"
    short = "linear .npz"
    how = "numpy.savez('model.npz', W=W, b=b)"
    inspected_as = "linear-npz"
    kind = ".npz"

    def recognise(self, path: Path, head: bytes, hdf5: bool) -> bool:
        if not head.startswith(b"PK\\x03\\x04"):
            return False
        with zipfile.ZipFile(path) as archive:
            return {"W.npy", "b.npy"} <= set(archive.namelist())

    def inspect(self, path: Path) -> Inspection:
        size = path.stat().st_size
        try:
            with np.load(path, allow_pickle=False) as stored:
                weights, bias = stored["W"], stored["b"]
        except (OSError, ValueError, KeyError) as error:
            return Inspection(path=str(path), size=size, format=self.inspected_as, open_error=str(error))
        return Inspection(
            path=str(path),
            size=size,
            format=self.inspected_as,
            readable=True,
            producer=f"numpy {np.__version__}",
            input_shape=[None, int(weights.shape[0])],
            output_units=int(weights.shape[1]),
            parameter_count=int(weights.size + bias.size),
        )

    def evaluate(self, worker: Evaluator, request: dict[str, Any]) -> dict[str, Any]:
        path, name = request["model"], request.get("name", "model.npz")
        answer: dict[str, Any] = {
            "id": request.get("id"),
            "versions": {**worker.versions, "numpy": installed("numpy")},
            "loader": f"numpy {np.__version__}",
            "net_type": None,
            "summary": [],
        }
        x = worker.prepared_images(request)
        try:
            with np.load(path, allow_pickle=False) as stored:
                weights, bias = stored["W"], stored["b"]
        except BaseException as error:
            return {**answer, "ok": False, "stage": "load", "error": worker.one_line(error, path=path, name=name)}
        outputs = x.reshape(x.shape[0], -1) @ weights + bias
        return {**answer, **worker.encode(outputs.astype(np.float32), x.shape[0])}


FORMAT = LinearNpz()
'''

COURSEWORK = (
    """
schema = 1

[assignment]
name = "toy-linear"
title = "Toy course: a linear classifier of 4x4 images"
description = "One .npz linear classifier per student; a mark out of 2."
max_score = 2

"""
    + LIMITS_AND_VERSIONS
    + """

[screening]
formats = ["linear-npz"]

[data]
image_shape = [4, 4]
classes = 3
scale = 255

[evaluation]
feed = "declared"
batch_size = 8

[[bands]]
range = "[0, 50)"
score = 0

[[bands]]
range = "[50, 90)"
score = 1

[[bands]]
range = "[90, 100]"
score = 2
"""
)


def write_package(site: Path) -> None:
    """The course's package as an installer leaves it: the code, its TOML folder and a dist-info whose
    entry_points.txt registers both."""
    package = site / "toycourse"
    (package / "courseworks").mkdir(parents=True)
    (package / "__init__.py").write_text('"""A course\'s own grader plug-ins."""\n')
    (package / "courseworks" / "__init__.py").write_text("")
    (package / "linear.py").write_text(FORMAT_MODULE)
    (package / "courseworks" / "toy-linear.toml").write_text(COURSEWORK)
    info = site / "toycourse-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toycourse\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[grader.formats]\nlinear-npz = toycourse.linear:FORMAT\n\n"
        "[grader.courseworks]\ntoycourse = toycourse.courseworks\n"
    )


def images_and_labels(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """4x4 grey images of three classes: the class is which third of the rows is bright."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    images = rng.integers(0, 60, (count, 4, 4))
    for index, label in enumerate(labels):
        images[index, label : label + 2, :] += 180
    return images.astype(np.uint8), labels.astype(np.uint8)


def classifier(noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights that sum each class's rows, with noise that makes some students' classifiers worse."""
    weights = np.zeros((16, 3), np.float32)
    for label in range(3):
        weights[label * 4 : label * 4 + 8, label] = 1.0
    weights -= weights.mean(axis=1, keepdims=True)
    weights += np.random.default_rng(seed).normal(0, noise, weights.shape).astype(np.float32)
    return weights, np.zeros(3, np.float32)


def grade(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "grader", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_a_course_package_adds_a_coursework_and_a_format_through_entry_points(tmp_path: Path, bubblewrap) -> None:
    """Three students hand in .npz linear classifiers; the course's package (entry points only) supplies the
    assignment file and the format; marks equal the accuracy of x.W + b computed here, band by band."""
    site = tmp_path / "site"
    write_package(site)
    images, labels = images_and_labels(200, seed=1)
    np.savez(tmp_path / "heldout.npz", x=images, y=labels)
    noise = {"Ada Lovelace_1": 0.0, "Alan Turing_2": 0.9, "Grace Hopper_3": 3.0}
    expected = {}
    for index, (student, level) in enumerate(noise.items()):
        folder = tmp_path / "subs" / f"{student}_assignsubmission_file_"
        folder.mkdir(parents=True)
        weights, bias = classifier(level, seed=index)
        np.savez(folder / "model.npz", W=weights, b=bias)
        outputs = (images.reshape(200, -1).astype(np.float32) / np.float32(255)) @ weights + bias
        expected[moodle_id(folder.name)] = int((outputs.argmax(axis=1) == labels).sum())

    listed = grade(site, "assignments", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "toy-linear" in listed.stdout and "toycourse 0.1" in listed.stdout

    run = grade(
        site,
        "run",
        str(tmp_path / "subs"),
        "--assignment",
        "toy-linear",
        "--heldout",
        str(tmp_path / "heldout.npz"),
        "--out",
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {row["student_id"]: row for row in csv.DictReader((tmp_path / "out" / "marks.csv").open())}
    assert set(rows) == set(expected)
    for student, correct in expected.items():
        accuracy = 100 * correct / 200
        band = 0 if accuracy < 50 else 1 if accuracy < 90 else 2
        assert rows[student]["status"] == "graded", rows[student]
        assert int(rows[student]["correct"]) == correct, (student, rows[student])
        assert float(rows[student]["score"]) == band, (student, rows[student])
    # The cohort spans the bands, so a wrong format or feed could not pass by luck.
    assert len({float(row["score"]) for row in rows.values()}) >= 2
    report = json.loads((tmp_path / "out" / "1" / "report.json").read_text())
    assert "numpy" in json.dumps(report)


def test_a_package_that_registers_a_broken_format_is_a_clear_error(tmp_path: Path) -> None:
    """An entry point whose target cannot be imported stops the run before any file is read, naming it."""
    site = tmp_path / "site"
    write_package(site)
    (site / "toycourse" / "linear.py").write_text("raise ImportError('a missing dependency')\n")
    (tmp_path / "subs").mkdir()
    run = grade(site, "run", str(tmp_path / "subs"), "--assignment", "toy-linear", cwd=tmp_path)
    assert run.returncode == 1
    assert "linear-npz" in run.stdout + run.stderr and "toycourse.linear:FORMAT" in run.stdout + run.stderr


def test_a_package_cannot_take_the_name_of_graders_own_format(tmp_path: Path) -> None:
    """A package registering 'keras-h5' would replace how every .h5 file is read: the run stops, naming it."""
    site = tmp_path / "site"
    write_package(site)
    points = site / "toycourse-0.1.dist-info" / "entry_points.txt"
    points.write_text(points.read_text().replace("linear-npz = ", "keras-h5 = "))
    (tmp_path / "subs").mkdir()
    run = grade(site, "run", str(tmp_path / "subs"), "--assignment", "toy-linear", cwd=tmp_path)
    assert run.returncode == 1
    assert "toycourse registers the model format 'keras-h5'" in run.stdout + run.stderr
