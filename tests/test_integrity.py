"""Integrity evidence: copied, re-saved, derived and downloaded networks are found and named with their
evidence; networks trained apart are not; marks never change."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from grader.cli import cli
from grader.formats.fingerprint import read_kernels, summarise
from grader.marking import integrity
from grader.marking.integrity import Network, align, poisson_binomial_tail, shared_mistakes

from .conftest import DEMO_HELDOUT, ROOT, built_once

# Moodle folder -> the built network it holds (and the name the student gave it).
COHORT = {
    "Ann Base_300001_assignsubmission_file_": ("base.h5", "model.h5"),
    "Ben Copy_300002_assignsubmission_file_": ("base.h5", "my_final_model.h5"),
    "Cat Resaved_300003_assignsubmission_file_": ("base_keras2.h5", "model.h5"),
    "Dan Tuned_300004_assignsubmission_file_": ("finetuned.h5", "model.h5"),
    "Eve Shuffled_300005_assignsubmission_file_": ("permuted.h5", "model.h5"),
    "Fay Download_300006_assignsubmission_file_": ("public.h5", "mnist_model.h5"),
    "Gus Lastlayer_300007_assignsubmission_file_": ("public_retrained.h5", "model.h5"),
    **{f"Ind Student{k}_31000{k}_assignsubmission_file_": (f"independent_{k}.h5", "model.h5") for k in range(10)},
}
HONEST = {f"31000{k}" for k in range(10)}


# Pure parts ------------------------------------------------------------------------------------------


def test_the_weights_hash_ignores_layer_names_and_follows_values() -> None:
    """The same arrays under other layer names hash alike; one changed value changes the hash."""
    arrays = [np.arange(12, dtype="float32").reshape(3, 4), np.ones(4, dtype="float32")]
    first = summarise([("dense", arrays)])
    renamed = summarise([("my_layer_7", [a.astype("float64") for a in arrays])])
    changed = summarise([("dense", [arrays[0] + np.eye(3, 4, dtype="float32") * 1e-6, arrays[1]])])
    assert first["weights_sha256"] == renamed["weights_sha256"]
    assert first["weights_sha256"] != changed["weights_sha256"]
    assert read_kernels(__import__("base64").b64decode(first["kernels"]))[0].shape == (3, 4)


def test_matching_units_undoes_a_reordering_and_leaves_independent_kernels_apart() -> None:
    """A network whose hidden units were shuffled matches its original at cosine 1 (and says it was
    re-ordered); two independent random networks stay near 0 however their units are matched."""
    rng = np.random.default_rng(0)
    first = {0: rng.standard_normal((784, 64)), 1: rng.standard_normal((64, 10))}
    order = rng.permutation(64)
    shuffled = {0: first[0][:, order], 1: first[1][order]}
    other = {0: rng.standard_normal((784, 64)), 1: rng.standard_normal((64, 10))}
    matched = align(first, shuffled)
    assert [round(cosine, 6) for _, cosine, _, _ in matched] == [1.0, 1.0]
    assert not matched[0][2]
    apart = integrity._weighted(align(first, other))
    assert apart < 0.2


def test_the_matching_is_the_hungarian_methods_optimum_with_or_without_the_shortcut() -> None:
    """When every row's best column differs, that is taken as the matching (a copy, re-ordered or not); else the
    Hungarian method runs. Either way the total equals scipy's optimum."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(3)
    copy = np.eye(50) + 0.01 * rng.standard_normal((50, 50))
    crowded = rng.standard_normal((50, 50))
    crowded[:, 7] += 5.0  # every row's best column is column 7: the shortcut cannot apply
    for similar in (copy, copy[:, rng.permutation(50)], crowded, rng.standard_normal((40, 40))):
        match = integrity._assignment(similar)
        rows, best = linear_sum_assignment(-similar)
        assert sorted(match) == list(range(len(similar)))
        assert similar[np.arange(len(similar)), match].sum() == pytest.approx(similar[rows, best].sum())


class _Kept:
    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], list] = {}
        self.asked = 0

    def get(self, first: str, second: str) -> list | None:
        self.asked += 1
        return self.stored.get((first, second))

    def put(self, first: str, second: str, layers: list) -> None:
        self.stored[(first, second)] = layers


def test_derived_weights_keep_their_matchings_and_a_second_pass_reads_them() -> None:
    """The first pass matches a derived pair unit by unit and keeps the matching by the two files' hashes; the
    second finds the same evidence from what was kept, and what is kept is what it reports."""
    rng = np.random.default_rng(1)
    base = {0: rng.standard_normal((784, 64)).astype("float32"), 1: rng.standard_normal((64, 10)).astype("float32")}
    tuned = {k: v + 0.05 * rng.standard_normal(v.shape).astype("float32") for k, v in base.items()}

    def network(key: str, kernels: dict) -> Network:
        layers = [
            {"name": f"d{i}", "kernel": list(k.shape), "parameters": k.size, "sha256": f"{key}{i}", "varied": True}
            for i, k in kernels.items()
        ]
        return Network(
            key, key, f"sha-{key}", weights={"layers": layers, "weights_sha256": key}, kernels=lambda: kernels
        )

    networks = [network("a", base), network("b", tuned)]
    kept = _Kept()
    first = integrity.find_evidence(networks, None, 10, kept)
    assert [f.kind for f in first] == ["derived weights"]
    assert list(kept.stored) == [("sha-a", "sha-b")]
    again = integrity.find_evidence(networks, None, 10, kept)
    assert again == first
    # What is kept is what is reported: a kept matching changed by hand shows in the next pass.
    kept.stored[("sha-a", "sha-b")] = [(0, 0.9, True, 784 * 64), (1, 0.9, True, 640)]
    assert "d0 0.90" in integrity.find_evidence(networks, None, 10, kept)[0].summary


def test_poisson_binomial_tail_equals_the_binomial_when_chances_are_equal() -> None:
    """With equal chances the tail is the binomial's, computed here by hand."""
    from math import comb

    n, p = 40, 0.3
    for k in (0, 5, 12, 20, 40):
        expected = sum(comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
        assert poisson_binomial_tail(np.full(n, p), k) == pytest.approx(expected, rel=1e-9)


def _simulated(networks: int, images: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of networks trained apart: each image has a difficulty and a likeliest wrong answer;
    each network its own skill; the wrong answer is the image's likeliest one most of the time."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, images)
    difficulty = rng.normal(-3.5, 1.5, images)
    usual = (labels + rng.integers(1, 10, images)) % 10
    rows = []
    for _ in range(networks):
        skill = rng.normal(0, 0.4)
        wrong = rng.random(images) < 1 / (1 + np.exp(-(difficulty + skill)))
        answer = np.where(rng.random(images) < 0.6, usual, (labels + rng.integers(1, 10, images)) % 10)
        rows.append(np.where(wrong, answer, labels))
    return np.array(rows), labels


def test_shared_mistakes_find_a_copy_and_no_pair_trained_apart() -> None:
    """Thirty simulated networks trained apart: no pair flagged. A copy with 3% of its answers changed is
    flagged with its count against the expected one."""
    predictions, labels = _simulated(30)
    copy = predictions[4].copy()
    changed = np.random.default_rng(1).random(len(labels)) < 0.03
    copy[changed] = labels[changed]
    networks = [Network(f"s{k}", f"s{k}", f"h{k}", predictions=row) for k, row in enumerate(predictions)]
    assert shared_mistakes(networks, labels, 10) == []
    found = shared_mistakes([*networks, Network("copy", "copy", "hc", predictions=copy)], labels, 10)
    assert [(f.first, f.second) for f in found] == [("s4", "copy")]
    assert "identical wrong answers where about" in found[0].summary
    assert found[0].numbers["identical_wrong"] > found[0].numbers["expected"]


def test_two_networks_answering_one_class_everywhere_are_not_shared_mistakes() -> None:
    """Two broken networks that answer '1' for every image agree on thousands of wrong answers: no flag."""
    predictions, labels = _simulated(20)
    ones = np.ones_like(labels)
    networks = [Network(f"s{k}", f"s{k}", f"h{k}", predictions=row) for k, row in enumerate(predictions)]
    networks += [Network("b1", "b1", "x1", predictions=ones), Network("b2", "b2", "x2", predictions=ones)]
    assert shared_mistakes(networks, labels, 10) == []


# The whole pass, on real networks --------------------------------------------------------------------


@pytest.fixture(scope="module")
def built() -> Path:
    def build(out: Path) -> None:
        subprocess.run(
            [sys.executable, str(ROOT / "tests" / "build_integrity.py"), str(out), str(DEMO_HELDOUT)], check=True
        )

    return built_once("integrity", [ROOT / "tests" / "build_integrity.py", DEMO_HELDOUT], build)


@pytest.fixture(scope="module")
def graded(built: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from grader.cohort import grade_cohort

    root = tmp_path_factory.mktemp("integrity-cohort")
    submissions, library = root / "submissions", root / "known"
    for folder, (source, name) in COHORT.items():
        (submissions / folder).mkdir(parents=True)
        shutil.copyfile(built / source, submissions / folder / name)
    library.mkdir()
    shutil.copyfile(built / "public.h5", library / "downloaded_mnist.h5")
    out = root / "reports"
    grade_cohort(submissions, heldout=DEMO_HELDOUT, out=out, libraries=[library])
    return submissions, library, out


def _evidence(out: Path) -> list[dict[str, str]]:
    with open(out / "integrity.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _pairs(rows: list[dict[str, str]], kind: str) -> set[frozenset[str]]:
    return {frozenset((row["first"], row["second"])) for row in rows if row["kind"] == kind}


@pytest.mark.tensorflow
def test_every_planted_case_is_found_with_its_evidence(graded: tuple[Path, Path, Path]) -> None:
    """A copied file, the same weights re-saved by Keras 2, a one-epoch fine-tune, a shuffled fine-tune, a
    downloaded network and one with only its last layer retrained: each named, with its evidence."""
    rows = _evidence(graded[2])
    assert frozenset(("300001", "300002")) in _pairs(rows, "same file")
    assert {frozenset(("300001", "300003")), frozenset(("300002", "300003"))} <= _pairs(rows, "same weights")
    derived = _pairs(rows, "derived weights")
    assert {frozenset(("300001", "300004")), frozenset(("300001", "300005"))} <= derived
    shuffled = next(
        r for r in rows if r["kind"] == "derived weights" and {r["first"], r["second"]} == {"300001", "300005"}
    )
    assert "re-ordered" in shuffled["evidence"]
    library = "library:known/downloaded_mnist.h5"
    assert frozenset(("300006", library)) in _pairs(rows, "same file")
    last = next(r for r in rows if r["kind"] == "shared layers" and {r["first"], r["second"]} == {"300007", library})
    assert "1 of 2 layers hold exactly the same weights" in last["evidence"]


@pytest.mark.tensorflow
def test_networks_trained_apart_are_not_flagged(graded: tuple[Path, Path, Path]) -> None:
    """Ten students who trained their own networks (some of base's architecture) appear in no finding."""
    named = {row["first"] for row in _evidence(graded[2])} | {row["second"] for row in _evidence(graded[2])}
    assert not named & HONEST


@pytest.mark.tensorflow
def test_integrity_never_changes_a_mark_and_is_linked_from_the_index(graded: tuple[Path, Path, Path]) -> None:
    """marks.csv is byte-identical without the integrity pass; index.html links integrity.html."""
    from grader.cohort import grade_cohort

    submissions, _, out = graded
    with_evidence = (out / "marks.csv").read_bytes()
    assert 'href="integrity.html"' in (out / "index.html").read_text()
    html = (out / "integrity.html").read_text()
    assert "Ben Copy (300002)" in html and "library known: downloaded_mnist.h5" in html
    grade_cohort(submissions, heldout=DEMO_HELDOUT, out=out, integrity=False)
    assert (out / "marks.csv").read_bytes() == with_evidence
    assert 'href="integrity.html"' not in (out / "index.html").read_text()


@pytest.mark.tensorflow
def test_grade_integrity_repeats_the_pass_from_the_gradebook(graded: tuple[Path, Path, Path]) -> None:
    """`grade integrity REPORTS --library DIR` writes the same evidence again from what was stored (the
    library's gradebook reused)."""
    _, library, out = graded
    before = _evidence(out)
    (out / "integrity.csv").unlink()
    result = CliRunner().invoke(cli, ["integrity", str(out), "--library", str(library)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pair(s) with evidence" in result.output
    assert _evidence(out) == before


@pytest.mark.tensorflow
def test_an_integrity_pass_that_fails_leaves_the_marks_written(
    graded: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while gathering evidence is reported after the run; marks.csv and index.html are written."""
    import grader.cohort
    from grader.cohort import grade_cohort

    submissions, _, out = graded
    expected = (out / "marks.csv").read_bytes()
    (out / "marks.csv").unlink()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a comparison went wrong")

    monkeypatch.setattr(grader.cohort, "gather", broken)
    summary = grade_cohort(submissions, heldout=DEMO_HELDOUT, out=out)
    assert (out / "marks.csv").read_bytes() == expected
    assert any("integrity evidence could not be gathered" in problem for problem in summary.problems)


def test_a_library_that_is_not_a_folder_is_refused_before_grading(tmp_path: Path) -> None:
    """--library naming a file stops the run at once with what is wrong, before anything is graded."""
    from grader.cohort import grade_cohort
    from grader.errors import GraderError

    (tmp_path / "subs").mkdir()
    (tmp_path / "not_a_folder.h5").write_bytes(b"x")
    with pytest.raises(GraderError, match="not a folder of models"):
        grade_cohort(
            tmp_path / "subs", heldout=DEMO_HELDOUT, out=tmp_path / "out", libraries=[tmp_path / "not_a_folder.h5"]
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.tensorflow
def test_a_regrade_reads_the_evidence_it_kept_and_a_changed_cohort_compares_again(
    graded: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run again on the same files, the pass reads each part's findings from the gradebook (comparing nothing)
    and writes integrity.csv and .html byte for byte as before; without the library, the networks differ, and
    the pass compares again."""
    import grader.evidence
    from grader.cohort import grade_cohort

    submissions, library, out = graded
    grade_cohort(submissions, heldout=DEMO_HELDOUT, out=out, libraries=[library])
    before = {name: (out / name).read_bytes() for name in ("integrity.csv", "integrity.html")}
    compared = []
    real = grader.evidence.find_evidence

    def counted(*args, **kwargs):
        compared.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(grader.evidence, "find_evidence", counted)
    summary = grade_cohort(submissions, heldout=DEMO_HELDOUT, out=out, libraries=[library])
    assert compared == [] and summary.problems == []
    assert {name: (out / name).read_bytes() for name in before} == before
    grade_cohort(submissions, heldout=DEMO_HELDOUT, out=out)
    assert len(compared) == 1 and not any(network.library for network in compared[0])
    assert "library:known/downloaded_mnist.h5" not in (out / "integrity.csv").read_text()
