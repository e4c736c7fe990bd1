"""Fast grading without changing a mark: warm workers, predictions equal to batch 32, and re-marking
from stored predictions without starting TensorFlow."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from grader.cohort import grade_cohort
from grader.courseworks.assignment import builtin_assignments
from grader.evaluation.worker import BATCH_DRIFT, MIN_NEAR_TIE, NEAR_TIE_SAFETY, _predict_as_official, near_tie_margin

from .conftest import DEMO_HELDOUT, make_cohort


class BatchSensitiveNet:
    """A network whose float sums depend on the batch's size, as real kernels' can: class 1 leads class 0
    by 1e-7 in batches of 256 and trails it in batches of 32, and only on images whose two scores tie."""

    def __init__(self, ties: np.ndarray) -> None:
        self.ties = ties
        self.calls: list[tuple[int, int]] = []

    def predict(self, x: np.ndarray, batch_size: int, verbose: int = 0) -> np.ndarray:
        self.calls.append((len(x), batch_size))
        first = int(x[0, 0])
        rows = []
        for start in range(0, len(x), batch_size):
            count = min(batch_size, len(x) - start)
            for index in range(first + start, first + start + count):
                row = np.zeros(10, np.float32)
                row[0], row[1] = (0.5, 0.5 + (1e-7 if count > 32 else -1e-7)) if self.ties[index] else (0.9, 0.1)
                rows.append(row)
        return np.stack(rows)


def test_fast_batches_give_the_official_scripts_outputs() -> None:
    """Predictions at batch 256 are corrected to batch 32's wherever a near-tie could flip a class: only
    the official batches holding one are predicted again, and the images that changed are reported."""
    images = 1000
    x = np.arange(images, dtype=np.float32)[:, None]  # each row names its own index
    ties = np.zeros(images, bool)
    ties[[5, 40, 41, 999]] = True
    net = BatchSensitiveNet(ties)
    outputs, facts = _predict_as_official(net, x, {"batch_size": 32, "fast_batch_size": 256})
    official = BatchSensitiveNet(ties).predict(x, batch_size=32)
    assert np.array_equal(np.argmax(outputs, axis=1), np.argmax(official, axis=1))
    assert facts["rechecked"] == 4  # probes 0, 16 and 31 (the last, of 8 images), and batch 1 (40, 41)
    assert facts["changed"] == [5, 40, 41, 999]
    assert net.calls[0] == (images, 256) and sorted(net.calls[1:]) == [(8, 32), (32, 32), (32, 32), (32, 32)]
    assert facts["margin"] == MIN_NEAR_TIE  # the drift measured, 2e-7, is float32 rounding


def test_without_a_tie_only_the_probe_batches_are_predicted_twice() -> None:
    """A model with clear margins is predicted once in fast batches; only the first, middle and last
    official batches are predicted again, as probes, and nothing changes."""
    net = BatchSensitiveNet(np.zeros(500, bool))
    _, facts = _predict_as_official(
        net, np.arange(500, dtype=np.float32)[:, None], {"batch_size": 32, "fast_batch_size": 256}
    )
    assert (facts["rechecked"], facts["changed"], facts["drift"]) == (3, [], 0.0)
    assert net.calls == [(500, 256), (32, 32), (32, 32), (20, 32)]
    assert "batch_dependent" not in facts


class DriftingNet:
    """A network whose outputs in fast batches drift from the official batches' by a set amount per image,
    less than BATCH_DRIFT (so not batch-dependent), but enough to swap two close classes: in batches
    larger than 32, class 1 rises by the image's drift and class 0 falls by it. Officially class 0 leads
    class 1 by each image's gap."""

    def __init__(self, gaps: np.ndarray, drifts: np.ndarray) -> None:
        self.official = np.zeros((len(gaps), 10), np.float64)
        self.official[:, 0], self.official[:, 1] = 0.5 + gaps / 2, 0.5 - gaps / 2
        self.official[:, 2:] = 0.0
        self.drifts = drifts
        self.calls: list[tuple[int, int]] = []

    def predict(self, x: np.ndarray, batch_size: int, verbose: int = 0) -> np.ndarray:
        self.calls.append((len(x), batch_size))
        rows = x[:, 0].astype(int)
        out = self.official[rows].copy()
        if batch_size > 32:
            out[:, 0] -= self.drifts[rows]
            out[:, 1] += self.drifts[rows]
        return out


def test_a_drift_between_rounding_and_batch_dependence_cannot_flip_a_class_unseen() -> None:
    """Outputs that drift by 5e-4 between batch sizes (more than the old fixed near-tie margin of 1e-4,
    less than BATCH_DRIFT) swap the classes of an image whose top two are 5e-4 apart. The probes measure
    the drift, the near-tie margin grows to NEAR_TIE_SAFETY times twice it, and that image's batch is
    predicted again as the official script predicts it."""
    images, drift = 1000, 5e-4
    gaps = np.full(images, 0.3)
    gaps[[100, 700]] = 5e-4  # close enough for the drift to swap them in fast batches
    net = DriftingNet(gaps, np.full(images, drift))
    x = np.arange(images, dtype=np.float32)[:, None]
    fast = net.predict(x, batch_size=256)
    assert fast[100].argmax() == 1 and BATCH_DRIFT > drift > 1e-4  # the old rule (gap <= 1e-4) missed it
    outputs, facts = _predict_as_official(net, x, {"batch_size": 32, "fast_batch_size": 256})
    assert np.array_equal(outputs.argmax(axis=1), net.official.argmax(axis=1))
    assert facts["changed"] == [100, 700]
    assert facts["drift"] == pytest.approx(drift) and facts["margin"] == pytest.approx(NEAR_TIE_SAFETY * 2 * drift)
    assert facts["rechecked"] == 5  # probes 0, 16 and 31, and batches 3 (image 100) and 21 (image 700)
    assert "batch_dependent" not in facts


def test_a_drift_found_beyond_the_probes_widens_the_margin() -> None:
    """The probes see no drift, but a batch re-predicted for an exact tie drifts by 4e-4: the margin widens
    to cover it, and a batch with a 5e-4 gap that the first margin left out is predicted again too."""
    images = 1000
    gaps, drifts = np.full(images, 0.3), np.zeros(images)
    drifts[160:192] = 4e-4
    gaps[165], drifts[165] = 0.0, 0.0  # an exact tie in batch 5, in fast batches too: re-predicted under any margin
    gaps[300], drifts[288:320] = 5e-4, 4e-4  # batch 9: swapped in fast batches, outside the first margin
    net = DriftingNet(gaps, drifts)
    outputs, facts = _predict_as_official(
        net, np.arange(images, dtype=np.float32)[:, None], {"batch_size": 32, "fast_batch_size": 256}
    )
    assert np.array_equal(outputs.argmax(axis=1), net.official.argmax(axis=1))
    assert 300 in facts["changed"] and facts["margin"] == pytest.approx(near_tie_margin(4e-4))
    assert facts["rechecked"] == 5  # probes 0, 16, 31; batch 5 (the tie), then batch 9


def test_the_near_tie_margin_is_stated_from_the_drift() -> None:
    """No drift still re-predicts gaps up to MIN_NEAR_TIE; a measured drift gives NEAR_TIE_SAFETY times
    twice itself, which is always wider than the gap the drift can swap."""
    assert near_tie_margin(0.0) == MIN_NEAR_TIE
    for drift in (1e-7, 1e-5, 2e-4, BATCH_DRIFT):
        assert near_tie_margin(drift) >= max(MIN_NEAR_TIE, 2 * drift * NEAR_TIE_SAFETY)
        assert near_tie_margin(drift) > 2 * drift


class BatchMixingNet:
    """A network that normalises over the batch axis, as Softmax(axis=0) or UnitNormalization(axis=0)
    do: each image's outputs depend on the other images in its batch, with no near-tie anywhere."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def predict(self, x: np.ndarray, batch_size: int, verbose: int = 0) -> np.ndarray:
        self.calls.append((len(x), batch_size))
        rows = []
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size, :2].astype(np.float64)
            rows.append(batch - batch.mean(axis=0))  # class 0 or 1 wins depending on the batch's mean
        return np.concatenate(rows).astype(np.float32)


def test_outputs_that_depend_on_the_batch_are_predicted_at_the_official_size() -> None:
    """The probe batches catch a model whose outputs depend on its batch: the whole set is then predicted
    in the official batches, and the classes the fast batches would have changed are reported."""
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(size=600), rng.normal(size=600) + np.repeat(np.arange(5.0), 120)], axis=1)
    net = BatchMixingNet()
    outputs, facts = _predict_as_official(net, x, {"batch_size": 32, "fast_batch_size": 256})
    official = BatchMixingNet().predict(x, batch_size=32)
    fast = BatchMixingNet().predict(x, batch_size=256)
    assert np.array_equal(outputs, official)
    assert facts["batch_dependent"] is True and facts["rechecked"] == 19
    assert facts["changed"] == [int(i) for i in np.nonzero(official.argmax(1) != fast.argmax(1))[0]]
    assert facts["changed"]  # the fast batches would have changed some classes
    assert net.calls == [(600, 256), (32, 32), (600, 32)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Path:
    return make_cohort(
        tmp_path_factory.mktemp("speed") / "submissions",
        models,
        {
            f"Stu Dent{i}_{700000 + i}_assignsubmission_file_": {name: f"{name}"}
            for i, name in enumerate(["mlp.h5", "cnn.h5", "flat.h5", "logits.h5", "k2_mlp.h5", "k2_cnn.h5"])
        },
    )


@pytest.mark.tensorflow
@pytest.mark.own_workers
def test_warm_workers_then_a_band_change_without_tensorflow(cohort: Path, tmp_path: Path) -> None:
    """Six files take one warm worker each (no restart between them); changing only the bands re-marks
    every student from stored predictions with no worker started, and the marks follow the new table."""
    out = tmp_path / "reports"
    first = grade_cohort(cohort, heldout=DEMO_HELDOUT, out=out, workers=1)
    assert (first.evaluated, first.reused, first.workers_started) == (6, 0, 1)
    report = (out / "700000" / "report.json").read_text()
    assert '"batch size"' in report and "predicted in batches of 256" in report

    text = builtin_assignments()["kcl-dnn-cw1"].read_text()
    rebanded = tmp_path / "rebanded.toml"
    rebanded.write_text(
        text.replace('range = "(0, 50)"\nscore = 3', 'range = "(0, 50)"\nscore = 1')
        .replace('range = "[50, 60)"\nscore = 4', 'range = "[50, 60)"\nscore = 2')
        .replace('range = "[90, 94)"\nscore = 9', 'range = "[90, 94)"\nscore = 11')
        .replace('range = "[85, 90)"\nscore = 8', 'range = "[85, 90)"\nscore = 7.5')
    )
    again = grade_cohort(cohort, heldout=DEMO_HELDOUT, out=out, assignment=rebanded)
    assert (again.evaluated, again.reused, again.workers_started) == (0, 6, 0)
    before = {row["student_id"]: row for row in first.rows}
    for row in again.rows:
        assert row["accuracy"] == before[row["student_id"]]["accuracy"]
        changed = {3: 1, 4: 2, 9: 11, 8: 7.5}.get(before[row["student_id"]]["score"])
        assert row["score"] == (changed if changed is not None else before[row["student_id"]]["score"])


@pytest.mark.tensorflow
@pytest.mark.own_workers
def test_fresh_workers_start_one_per_submission(cohort: Path, tmp_path: Path) -> None:
    """--fresh-workers starts a new worker for every submission, and gives the same marks."""
    three = tmp_path / "three"
    for folder in sorted(cohort.iterdir())[:3]:  # three are enough to count, each a TensorFlow start
        shutil.copytree(folder, three / folder.name)
    warm = grade_cohort(three, heldout=DEMO_HELDOUT, out=tmp_path / "warm", workers=1)
    fresh = grade_cohort(three, heldout=DEMO_HELDOUT, out=tmp_path / "fresh", workers=1, fresh_workers=True)
    assert (warm.workers_started, fresh.workers_started) == (1, 3)
    assert [row["accuracy"] for row in fresh.rows] == [row["accuracy"] for row in warm.rows]
    assert (tmp_path / "fresh" / "marks.csv").read_bytes() == (tmp_path / "warm" / "marks.csv").read_bytes()


@pytest.mark.tensorflow
def test_unchanged_files_are_not_read_again(cohort: Path, tmp_path: Path) -> None:
    """A second run takes each unchanged file's sha256 from the gradebook (by inode, size and times); a
    changed file is read, hashed and evaluated again."""
    out = tmp_path / "reports"
    grade_cohort(cohort, heldout=DEMO_HELDOUT, out=out, workers=1)
    target = next((cohort / "Stu Dent0_700000_assignsubmission_file_").glob("*.h5"))
    original = target.read_bytes()
    try:
        target.write_bytes((cohort / "Stu Dent1_700001_assignsubmission_file_" / "cnn.h5").read_bytes())
        again = grade_cohort(cohort, heldout=DEMO_HELDOUT, out=out, workers=1)
        assert (again.evaluated, again.reused) == (0, 6)  # the new bytes are a file already evaluated
        rows = {row["student_id"]: row for row in again.rows}
        assert rows["700000"]["sha256"] == rows["700001"]["sha256"]
        assert rows["700000"]["accuracy"] == rows["700001"]["accuracy"]
    finally:
        target.write_bytes(original)


def test_ties_everywhere_take_one_official_pass() -> None:
    """When most batches hold a tie (a model gone to NaN), the whole set is predicted once at batch 32."""
    net = BatchSensitiveNet(np.ones(300, bool))
    outputs, facts = _predict_as_official(
        net, np.arange(300, dtype=np.float32)[:, None], {"batch_size": 32, "fast_batch_size": 256}
    )
    assert net.calls == [(300, 256), (300, 32)]
    assert facts["rechecked"] == 10 and len(facts["changed"]) == 300
    assert "batch_dependent" not in facts  # the outputs differ by rounding only
    assert (np.argmax(outputs, axis=1) == 0).all()


def test_a_compile_check_that_cannot_be_made_is_a_warning_not_a_silence() -> None:
    """When the worker cannot tell whether the official script's load_model(file) would compile the saved
    training setup, the report says so as a warning instead of dropping the check."""
    from grader.courseworks.assignment import load_assignment
    from grader.run.verdict import evaluation_checks

    rules = load_assignment()
    checks = evaluation_checks(
        {"loader": "keras 3.15.1", "official_load_unchecked": "ImportError: x"}, rules, rules.parts[0]
    )
    warned = [check for check in checks if check.name == "official script"]
    assert len(warned) == 1 and warned[0].outcome == "warn"
    assert "could not check whether the official script's load_model(file) would compile" in warned[0].message


@pytest.mark.parametrize("name", ["oxford-practical3", "syde522-a4", "uva-lab1", "kit-ex9"])
def test_the_compile_check_is_coursework_1_s_alone(name: str) -> None:
    """Only a coursework whose evaluation loads the file compiled (Coursework 1's load_model(file), stated by
    compiles_on_load in its file) flags a saved training setup that would not compile; the others' own
    evaluations never compile it, so the same answer gives no check there."""
    from grader.courseworks.assignment import load_assignment
    from grader.run.verdict import evaluation_checks

    answer = {"loader": "keras 3.15.1", "official_load_error": "ValueError: reduction='auto'"}
    kcl = load_assignment("kcl-dnn-cw1")
    assert [c.name for c in evaluation_checks(answer, kcl, kcl.parts[0]) if c.outcome == "warn"] == ["official script"]
    rules = load_assignment(name)
    for part in rules.model_parts:
        assert not part.evaluation.compiles_on_load
        assert "official script" not in {check.name for check in evaluation_checks(answer, rules, part)}


def test_the_tie_share_edge_is_exact() -> None:
    """tie_flag_share = 0.01 of 12,000 images flags 121 tied images and not 120: the edge is the exact
    share, never a float's rounding of it."""
    from grader.run.verdict import ties_check

    at = ties_check({"images": 120, "classes": {"0": 120}}, 12_000, 0.01, "the official script")
    over = ties_check({"images": 121, "classes": {"0": 121}}, 12_000, 0.01, "the official script")
    assert (at.outcome, over.outcome) == ("pass", "warn")
    # In floats 0.29 * 100 is 28.999999999999996, which 29 tied images would exceed: exactly 29% is not more.
    assert ties_check({"images": 29, "classes": {"0": 29}}, 100, 0.29, "the official script").outcome == "pass"


@pytest.mark.parametrize(
    ("declared", "image", "fed"),
    [
        ([None, 28, 28], (28, 28), (28, 28)),  # SYDE's Flatten(input_shape=(28, 28))
        ([None, 784], (28, 28), (784,)),  # UvA's MLP
        ([None, 28, 28, 1], (28, 28), (28, 28, 1)),  # UvA's CNN
        ([None, 32, 32, 3], (32, 32, 3), (32, 32, 3)),  # a CIFAR-10 CNN
        ([None, None, None, 1], (28, 28), (28, 28, 1)),  # a fully convolutional model: sizes from the images
        ([None, 3, 32, 32], (3, 32, 32), (3, 32, 32)),  # channels first, for images laid out NCHW
    ],
)
def test_the_declared_rule_feeds_the_shape_the_model_declares(declared: list, image: tuple, fed: tuple) -> None:
    from grader.evaluation.worker import declared_feed

    assert declared_feed(declared, image) == (fed, "")


def test_the_declared_rule_says_why_a_model_cannot_be_fed() -> None:
    """A model whose input holds another number of values than one image, or that takes several inputs,
    gets a reason naming both."""
    from grader.evaluation.worker import declared_feed

    shape, reason = declared_feed([None, 32, 32, 3], (28, 28))
    assert shape is None
    assert reason == (
        "the model declares input (None, 32, 32, 3) (3,072 values per image), but this part's images are 28x28 "
        "(784 values): train the model on this part's images"
    )
    assert declared_feed([[None, 784], [None, 10]], (28, 28))[1].startswith("the model takes 2 inputs")


def test_images_are_prepared_as_the_data_spec_says() -> None:
    """x / scale in float32 (Coursework 1's x.astype('float32') / 255, bit for bit), then per-channel
    (x - mean) / std as PyTorch's Normalize, then channels first for 'nchw'."""
    from grader.evaluation.worker import prepare

    grey = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    assert np.array_equal(prepare(grey, {"scale": 255}), grey.astype("float32") / 255)
    colour = np.full((2, 4, 4, 3), 255, np.uint8)
    colour[..., 1] = 0
    x = prepare(colour, {"scale": 255, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.5, 0.25], "layout": "nchw"})
    assert x.shape == (2, 3, 4, 4) and x.dtype == np.float32
    assert (x[:, 0] == 2.0).all() and (x[:, 1] == -1.0).all() and (x[:, 2] == 2.0).all()
    normalised = prepare(grey, {"scale": 255, "mean": [0.1307], "std": [0.3081]})
    assert np.array_equal(normalised, (grey.astype("float32") / 255 - np.float32(0.1307)) / np.float32(0.3081))


@pytest.mark.tensorflow
@pytest.mark.own_workers
def test_runs_within_keep_workers_warm_share_their_workers(cohort: Path, tmp_path: Path) -> None:
    """Inside keep_workers_warm, a second run takes the first run's warm worker instead of starting TensorFlow
    again, with the same marks byte for byte; the kept worker is stopped when the block ends."""
    import grader

    with grader.keep_workers_warm() as pool:
        first = grade_cohort(cohort, heldout=DEMO_HELDOUT, out=tmp_path / "first", workers=1)
        second = grade_cohort(cohort, heldout=DEMO_HELDOUT, out=tmp_path / "second", workers=1)
        [kept] = pool.waiting
        process = kept.process
        assert process.poll() is None
    assert (first.evaluated, first.workers_started) == (6, 1)
    assert (second.evaluated, second.workers_started) == (6, 0)
    assert (tmp_path / "second" / "marks.csv").read_bytes() == (tmp_path / "first" / "marks.csv").read_bytes()
    assert process.poll() is not None  # stopped with the block
