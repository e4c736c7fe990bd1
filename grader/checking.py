"""One file, checked as the instructor's run would check it (`grade inspect`, `grade check`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from grader import defaults, formats
from grader.checks.screening import (
    FAIL,
    INFO,
    OUTCOMES,
    PASS,
    WARN,
    Check,
    checks_from_json,
    screen,
    size_check,
    unreadable_check,
)
from grader.cohort import grade_cohort
from grader.courseworks.assignment import Assignment, Part, load_assignment
from grader.courseworks.datasets import NAMES as PUBLIC_NAMES
from grader.courseworks.datasets import SHA256 as PUBLIC_SHA256
from grader.courseworks.datasets import public_dataset
from grader.courseworks.heldout import HeldoutSet, load_heldout
from grader.courseworks.official import Reference, run_official
from grader.errors import GraderError, NotAnH5File, PartUnknown, WorkerError
from grader.evaluation.sandbox import Isolation, choose_isolation
from grader.evaluation.scheduler import NO_WORKER, Scheduler, inspect_files
from grader.formats.base import Inspection
from grader.formats.keras_versions import saved_with
from grader.gradebook import Gradebook
from grader.outputs.reports import number, template
from grader.release import VERSION
from grader.status import MARKED


def inspect_one(
    path: Path,
    assignment: Assignment,
    *,
    isolation: str = defaults.ISOLATION,
    allow_lambda: bool = False,
    scratch: Path | None = None,
) -> tuple[dict[str, Any] | None, list[Check]]:
    """Inspect one file in a sandboxed h5py-only child and screen it against the assignment.

    Returns the inspection (as JSON) and the checks; the inspection is None when the file broke the reader.
    """
    if not path.is_file():
        raise NotAnH5File(f"{path}: not a file")
    checks = [size_check(path.stat().st_size, assignment)]
    answers: dict[Path, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="grader-inspect-", dir=scratch) as work:
        staged = Path(work) / f"model{path.suffix.lower()}"  # recognised by content; the name keeps the suffix
        shutil.copyfile(path, staged)
        inspect_files(
            [staged],
            isolation=choose_isolation(isolation),
            workdir=Path(work) / "inspector",
            on_result=lambda p, answer: answers.update({p: answer}),
        )
        answer = answers[staged]
    if not answer.get("ok"):
        checks.append(unreadable_check(answer.get("error", ""), assignment.formats_of(assignment.parts[0])))
        return None, checks
    inspection = {**answer["inspection"], "path": str(path)}
    checks += screen(
        Inspection.from_json(inspection),
        assignment,
        file_name=path.name,
        allow_lambda=allow_lambda,
        beside=beside_files(path),
    )
    return inspection, checks


def beside_files(path: Path) -> dict[str, int]:
    """The plain files next to a model file (name: size): where an ONNX graph's external data must be."""
    return {
        entry.name: entry.stat(follow_symlinks=False).st_size
        for entry in path.parent.iterdir()
        if entry.is_file() and not entry.is_symlink()
    }


@dataclass(frozen=True)
class CheckResult:
    """What the instructor's run would make of one file, on a public data set. Renders as text and in Jupyter."""

    file: str
    sha256: str
    "sha256 of the file's bytes: the receipt that the uploaded file is the one checked."
    size: int
    status: str
    "The status the instructor's run would give (graded, flagged, refused, ...)."
    reason: str
    checks: tuple[Check, ...]
    accuracy: float | None
    "Accuracy in percent on the data set (the part's public test set unless --data says otherwise), as the"
    " official script prints it."
    correct: int | None
    total: int | None
    score: float | None
    "The score the part's marking gives that accuracy, on this data set: not a mark on the hidden test set."
    band: str | None
    "The band of a mark table, or None under a linear scale."
    max_score: float
    dataset: str
    "What the accuracy was measured on."
    dataset_sha256: str
    saved_with: str | None
    graded_with: str
    loader: str | None
    isolation: str
    marking: str
    "What the part's marking is called, as its assignment file names it ('Table 1', 'Sign-off', ...)."
    reference: Reference | None = None
    "What the official script itself printed (with --reference)."
    assignment: str = ""
    part: str = ""
    "The part the file was checked as ('' for a one-part assignment)."
    label: str | None = None
    "The sign-off label ('S+') a sign-off scheme would give, on this data set."
    images: tuple[dict[str, Any], ...] = ()
    "For a folder of images: each image's name, label and predicted class (as apply.py prints them)."
    data_notes: tuple[str, ...] = ()
    "What the images need (a light background, resized images)."
    public: bool = True
    "Whether the data set is the part's public test set (else data the student gave)."
    architecture: dict[str, Any] | None = None
    "The file's layers against the part's required architecture (see architecture_spec.Comparison.to_json)."
    grader_version: str = VERSION

    @property
    def verdict(self) -> str:
        """'Table 1 would give 18/20 (band [96.5, 97))': the score on this data set, in the marking's terms."""
        if self.label:
            return f"{self.marking} would give {self.label} ({number(self.score)}/{number(self.max_score)})"
        band = f" (band {self.band})" if self.band else ""
        return f"{self.marking} would give {number(self.score)}/{number(self.max_score)}{band}"

    @property
    def misclassified(self) -> list[dict[str, Any]]:
        """The images of a folder the model got wrong, with the class it predicted."""
        return [image for image in self.images if image["predicted"] != image["label"]]

    @property
    def passed(self) -> bool:
        """Whether the file would be graded (warnings allowed)."""
        return self.status in MARKED

    @property
    def agrees(self) -> bool | None:
        """Whether the official script printed the same accuracy (None without --reference)."""
        if self.reference is None:
            return None
        return self.reference.accuracy is not None and self.reference.accuracy == _printed(self.accuracy)

    def receipt(self) -> str:
        """A few lines to keep and quote: the instructor can confirm the upload is the file checked."""
        counts = {outcome: sum(check.outcome == outcome for check in self.checks) for outcome in OUTCOMES}
        accuracy = f"{self.accuracy:.2f}% on {self.dataset}" if self.accuracy is not None else "not measured"
        return "\n".join(
            [
                f"grader check receipt ({self.assignment}{', part ' + self.part if self.part else ''}, grader "
                f"{self.grader_version})",
                f"file: {self.file}",
                f"sha256: {self.sha256}",
                f"size: {self.size:,} bytes",
                f"saved with: {self.saved_with or 'unknown'}",
                f"checks: {counts[PASS]} passed, {counts[WARN]} warnings, {counts[FAIL]} failed"
                + (f", {counts[INFO]} for information" if counts[INFO] else "")
                + f"; status {self.status}",
                f"accuracy: {accuracy}",
            ]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
            "status": self.status,
            "reason": self.reason,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "total": self.total,
            "score": self.score,
            "band": self.band,
            "max_score": self.max_score,
            "score_note": f"{self.marking} applied to the accuracy on this data set, not to the hidden test set",
            "part": self.part,
            "label": self.label,
            "dataset": {"name": self.dataset, "sha256": self.dataset_sha256, "notes": list(self.data_notes)},
            "images": [dict(image) for image in self.images],
            "architecture": self.architecture,
            "checks": [check.to_json() for check in self.checks],
            "versions": {"saved_with": self.saved_with, "graded_with": self.graded_with, "loader": self.loader},
            "isolation": self.isolation,
            "reference": None
            if self.reference is None
            else {
                "accuracy": self.reference.accuracy,
                "error": self.reference.error,
                "agrees": self.agrees,
                "legacy_keras": self.reference.legacy_keras,
                "keras3_error": self.reference.keras3_error,
            },
            "receipt": self.receipt(),
            "grader_version": self.grader_version,
        }

    def __str__(self) -> str:
        lines = [f"{self.file}: {self.status}" + (f" ({self.reason})" if self.reason else "")]
        for check in self.checks:
            advice = f" -> {check.advice}" if check.advice and check.outcome != PASS else ""
            lines.append(f"  [{check.outcome}] {check.name}: {check.message}{advice}")
        if self.accuracy is not None:
            lines.append(
                f"{self.dataset}: {_printed(self.accuracy)}% ({self.correct:,}/{self.total:,}); {self.verdict} on "
                "this data, not on the hidden test set"
            )
        lines += [f"note: {note}" for note in self.data_notes]
        if self.images:
            wrong = self.misclassified
            lines.append(f"misclassified: {len(wrong)} of {len(self.images)} images")
            lines += [f"  {image['name']}: {image['label']} predicted as {image['predicted']}" for image in wrong]
        if self.reference is not None:
            lines.append(f"official script: {reference_text(self.reference, self.agrees)}")
        return "\n".join([*lines, "", self.receipt()])

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the status, the accuracy and a table of checks."""
        accuracy = _printed(self.accuracy) if self.accuracy is not None else ""
        return str(
            template("notebook_check.html.j2").render(
                result=self, accuracy=accuracy, colours=_COLOURS, receipt=self.receipt()
            )
        )


_COLOURS = {PASS: "#14532d", INFO: "#1e40af", WARN: "#8a5a00", FAIL: "#991b1b"}


def outcome_words(status: str) -> str:
    """What a check's status means for the student, in words: 'would be graded', ..."""
    return {
        "graded": "would be graded",
        "flagged": "would be graded, and flagged for a marker to look at",
    }.get(status, f"would NOT be graded ({status})")


def data_for(part: Part, data: str | Path | Mapping[str, str | Path] | None) -> str | Path | None:
    """The data `--data` gives a part: a path, or from PART=PATH or DATASET=PATH pairs (mnist=PATH serves every
    part measured on MNIST, as `grade --heldout` does); None for keras's download of its public set."""
    if not isinstance(data, Mapping):
        return data
    given = data.get(part.name, data.get(part.data.public))
    if given is None and data:
        raise GraderError(
            f"--data names {', '.join(data)}, not part {part.name} or its data set {part.data.public}: add "
            f"{part.name}=PATH"
        )
    return given


def describe_data(dataset: HeldoutSet, source: Path, part: Part, *, downloaded: bool) -> str:
    """How a result names the data it was measured on: 'MNIST test set (10,000 images)', or the file's name."""
    known = next((PUBLIC_NAMES[public] for public, digest in PUBLIC_SHA256.items() if digest == dataset.sha256), None)
    name = PUBLIC_NAMES[part.data.public] if downloaded else known or source.name
    return f"{name} ({dataset.size:,} images)"


def reference_text(reference: Reference, agrees: bool | None) -> str:
    """What the official script did, in one line."""
    how = (
        f" with TF_USE_LEGACY_KERAS=1 (tf_keras), after Keras 3 failed ({reference.keras3_error})"
        if reference.legacy_keras
        else ""
    )
    if reference.accuracy is None:
        return f"failed{how}: {reference.error}"
    return f"{reference.accuracy}%{how} ({'agrees' if agrees else 'DISAGREES'})"


def _printed(accuracy: float | None) -> str:
    """An accuracy as the official script prints it."""
    return repr(accuracy) if accuracy is not None else ""


def check(
    path: str | Path,
    *,
    data: str | Path | Mapping[str, str | Path] | None = None,
    assignment: Assignment | str | Path | None = None,
    part: str | None = None,
    reference: bool = False,
    isolation: str = defaults.ISOLATION,
    allow_lambda: bool = False,
    time_limit: float | None = None,
    memory_limit_gb: float = defaults.MEMORY_LIMIT_GB,
    scheduler: Scheduler | None = None,
    scratch: Path | None = None,
) -> CheckResult:
    """Check one file as the instructor's run would, on the public test set of the part it is for (or
    `data`: a path, or a mapping from part name to path).

    The part is `part`, else the one the file's name says, else the one its declared input shape fits.
    The file is screened, loaded and predicted in a separate worker process, exactly as `grade` does for
    a cohort; with `reference`, Coursework 1's official script itself also runs on it. `scheduler` is a warm
    one to evaluate on (grade serve keeps one per worker); the working files go in a temporary folder under
    `scratch` (default: the system's), removed before this returns.
    """
    path = Path(path)
    if not path.is_file():
        raise NotAnH5File(f"{path}: no such file")
    rules = assignment if isinstance(assignment, Assignment) else load_assignment(assignment)
    if formats.is_code(path.name):
        from grader.checking_code import check_code

        return check_code(path, rules, rules.part(part) if part else None, isolation=isolation)  # type: ignore[return-value]
    chosen = _part_for(path, rules, part, isolation, scratch)
    one = rules if rules.single else replace(rules, parts=(chosen,))
    given = data_for(chosen, data)
    source = Path(given) if given is not None else public_dataset(chosen.data.public)
    dataset = load_heldout(source, chosen.data)
    description = describe_data(dataset, source, chosen, downloaded=given is None)
    if reference and not chosen.evaluation.script:
        raise GraderError(
            f"--reference runs the coursework's own test script where grader ships it; part {chosen.name} of "
            f"{rules.name} has none (its assignment file does not say [evaluation] script = true)"
        )
    with tempfile.TemporaryDirectory(prefix="grader-check-", dir=scratch) as work:
        folder = Path(work) / "submission" / "check"
        folder.mkdir(parents=True)
        _place(path, folder)
        summary = grade_cohort(
            folder.parent,
            assignment=one,
            heldout=source,
            out=Path(work) / "out",
            isolation=isolation,
            workers=1,
            allow_lambda=allow_lambda,
            time_limit=time_limit,
            memory_limit_gb=memory_limit_gb,
            reports=False,
            scheduler=scheduler,
        )
        row = summary.rows[0]
        if row["status"] == "crashed" and row["reason"].startswith(NO_WORKER):
            # Not a fact about the student's file: this machine could not run the check.
            raise WorkerError(row["reason"])
        images = _per_image(Path(work) / "out", row, dataset, chosen) if dataset.names else ()
        official = _reference(path, dataset, chosen, row, summary.isolation, Path(work)) if reference else None
    return _result(path, rules, chosen, row, summary.isolation, dataset, description, official, images, given is None)


def _place(path: Path, folder: Path) -> None:
    """Copy the file into the one-student folder the run grades, with the plain files the run would see beside it
    in a student's folder when its format keeps data there (an export's weights: mnist.onnx.data), so that
    screening judges the same names and sizes."""
    shutil.copyfile(path, folder / path.name)
    named = formats.format_of(path.name)
    if named is not None and formats.named(named).has_companions:
        for name in beside_files(path):
            if name != path.name and name.startswith(path.stem):
                shutil.copyfile(path.parent / name, folder / name)


def _reference(
    path: Path, dataset: HeldoutSet, part: Part, row: dict[str, Any], isolation: Isolation, work: Path
) -> Reference:
    """The coursework's own test script run on the file (--reference), in the sandbox."""
    timeout = part.evaluation.time_limit_seconds * 2
    official = run_official(path, dataset, isolation=isolation, workdir=work, timeout=timeout)
    keras_version = (row["detail"].get("inspection") or {}).get("keras_version")
    if official.accuracy is None and row["status"] in MARKED and saved_with(keras_version).keras_major != 3:
        # A Keras 2 file the script cannot run under Keras 3: a marker resolving that runs it with
        # TensorFlow 2.18's Keras 2, as grader's fallback does.
        legacy = run_official(path, dataset, isolation=isolation, workdir=work, timeout=timeout, legacy_keras=True)
        official = replace(legacy, legacy_keras=True, keras3_error=official.error)
    return official


def _result(
    path: Path,
    rules: Assignment,
    chosen: Part,
    row: dict[str, Any],
    isolation: Isolation,
    dataset: HeldoutSet,
    description: str,
    official: Reference | None,
    images: tuple[dict[str, Any], ...],
    public: bool,
) -> CheckResult:
    """What `grade check` says of the file, from the run's row."""
    detail = row["detail"]
    inspection = detail.get("inspection") or {}
    evaluation = detail.get("evaluation") or {}
    found = formats.of_file(inspection, path.name, rules.formats_of(chosen))
    described = found.saved_with(inspection, brief=True) if inspection else None
    beside = found.companions(Inspection.from_json(inspection)) if inspection else ()
    versions = evaluation.get("versions") or {}
    graded_with = found.graded_with(evaluation.get("loader"), versions, rules.versions.tensorflow, brief=True)
    return CheckResult(
        file=path.name if not beside else f"{path.name} (with {', '.join(beside)})",
        sha256=row["sha256"],
        size=path.stat().st_size,
        status=row["status"],
        reason=row["reason"],
        checks=tuple(checks_from_json(detail.get("checks", []))),
        accuracy=row["accuracy"],
        correct=row["correct"],
        total=row["total"],
        score=row["score"],
        band=row["band"],
        max_score=chosen.max_score,
        dataset=description,
        dataset_sha256=dataset.sha256,
        saved_with=described,
        graded_with=graded_with,
        loader=evaluation.get("loader"),
        isolation=isolation.detail,
        reference=official,
        assignment=rules.name,
        part="" if rules.single else chosen.name,
        marking=chosen.marking_name,
        label=((detail.get("mark") or {}).get("label")) if row["status"] in MARKED else None,
        images=images,
        data_notes=dataset.notes,
        public=public,
        architecture=detail.get("architecture"),
    )


def _per_image(out: Path, row: dict[str, Any], dataset: HeldoutSet, part: Part) -> tuple[dict[str, Any], ...]:
    """Each image of a folder with its label and the class the model predicted (from the check's gradebook)."""
    if row["evaluation_id"] is None or row["status"] not in MARKED:
        return ()
    with Gradebook.reading(out) as book:
        evaluation = book.evaluation_by_id(row["evaluation_id"])
    if evaluation is None or evaluation.predictions is None:
        return ()
    names = part.data.names
    return tuple(
        {
            "name": name,
            "label": names[int(label)],
            "predicted": names[int(predicted)] if 0 <= int(predicted) < len(names) else str(int(predicted)),
        }
        for name, label, predicted in zip(dataset.names, dataset.labels, evaluation.predictions, strict=True)
    )


def _part_for(path: Path, rules: Assignment, name: str | None, isolation: str, scratch: Path | None = None) -> Part:
    """The part a file is for: the one asked for, else the one its name fits, else the one its declared
    input shape fits (read with h5py in the sandboxed inspector)."""
    if name is not None:
        try:
            return rules.part(name)
        except KeyError:
            raise GraderError(
                f"{rules.name} has no part {name!r}; its parts are {', '.join(p.name for p in rules.parts)}"
            ) from None
    if rules.single:
        return rules.parts[0]
    by_name = [part for part in rules.model_parts if part.files and part.name_matches(path.name)]
    if len(by_name) == 1:
        return by_name[0]
    inspection, _ = inspect_one(path, rules, isolation=isolation, scratch=scratch)
    declared = (inspection or {}).get("input_shape")
    shape = (
        tuple(declared[1:]) if isinstance(declared, list) and declared and not isinstance(declared[0], list) else None
    )
    fitting = [part for part in (by_name or rules.model_parts) if part.shape_matches(shape)]
    if len(fitting) == 1:
        return fitting[0]
    names = ", ".join(part.name for part in rules.parts)
    raise PartUnknown(
        f"cannot tell which part of {rules.name} {path.name} is for (its name fits "
        f"{', '.join(p.name for p in by_name) or 'no part'}, its input shape {shape} fits "
        f"{', '.join(p.name for p in fitting) or 'no part'})",
        names,
    )
