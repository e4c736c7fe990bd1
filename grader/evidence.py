"""Integrity evidence for a run: gather each network from the gradebook, compare, write integrity.html/.csv.

Everything is read from what the run stored (file hashes, weights summaries, predictions): no model runs
again, and `grade integrity REPORTS_DIR` repeats it without TensorFlow. A library (`--library DIR`) is a
folder of known models (public networks, last year's submissions), graded once into its own gradebook under
the reports folder (`library/<name>-<hash>/`) and reused from there; a folder holding a gradebook (an
earlier run's reports) is read as it is. Marks are never changed by any of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grader.courseworks.assignment import Assignment
from grader.courseworks.heldout import HeldoutSet
from grader.discovery import person
from grader.formats.fingerprint import REVISION, read_kernels
from grader.gradebook import FILE_NAME, Gradebook
from grader.marking import integrity
from grader.marking.integrity import ALIGN_REVISION, Finding, Network, find_evidence

LIBRARY_FOLDER = "library"
# What findings are computed by (the sha256 of grader.marking.integrity's source and this module's, which gathers
# the networks): part of the key they are kept by, so that a grader whose comparisons changed compares again.
_CODE = hashlib.sha256(Path(integrity.__file__).read_bytes() + Path(__file__).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Evidence:
    """A run's integrity findings, per part, and the networks compared."""

    findings: dict[str, list[Finding]]
    "Per part name, strongest first."
    networks: dict[str, dict[str, Network]]
    "Per part name, each network by key."
    libraries: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    "What a reader should know: networks without weights or predictions, libraries that could not be read."

    @property
    def count(self) -> int:
        return sum(len(found) for found in self.findings.values())


def gather(
    book: Gradebook,
    run_id: int,
    rules: Assignment,
    heldouts: Mapping[str, HeldoutSet],
    libraries: Sequence[Path] = (),
) -> Evidence:
    """Compare every student's network with every other's and with each library model, part by part."""
    rows = book.results(run_id)
    known: list[tuple[Path, tuple[Gradebook, list[dict[str, Any]]]]] = []
    try:
        for folder in libraries:
            known.append((folder, read_library_rows(folder)))
        named = [(library_name(folder, book), book, library_rows) for folder, (book, library_rows) in known]
        findings: dict[str, list[Finding]] = {}
        networks: dict[str, dict[str, Network]] = {}
        notes: list[str] = []
        for part in rules.model_parts:
            heldout = heldouts.get(part.name)
            images = heldout.images_sha256 if heldout else None
            chosen = [_network(book, row, images) for row in rows if row["part"] == part.name and row["sha256"]]
            for name, library_book, library_rows in named:
                chosen += [
                    _network(library_book, row, images, library=name)
                    for row in library_rows
                    if row["part"] == part.name and row["sha256"]
                ]
            without = [n.key for n in chosen if not n.library and n.weights is None]
            if without:
                notes.append(
                    f"{part.name}: {len(without)} network(s) have no weights summary (refused or unreadable "
                    "files): compared by file hash and answers only"
                )
            labels = heldout.labels if heldout is not None else None
            findings[part.name] = kept_evidence(book, chosen, labels, part.data.classes)
            networks[part.name] = {n.key: n for n in chosen}
        described = tuple(
            f"{name} ({Path(library_book.run()['submissions'])}, {sum(bool(row['sha256']) for row in library_rows)} "
            "model files)"
            for name, library_book, library_rows in named
        )
    finally:
        for _, (library_book, _) in known:
            library_book.close()
    return Evidence(findings, networks, described, tuple(notes))


def kept_evidence(book: Gradebook, networks: list[Network], labels: np.ndarray | None, classes: int) -> list[Finding]:
    """find_evidence's findings, kept in the gradebook under the sha256 of everything they are computed from: the
    networks in order (key, name, file sha256, library or not, answers), the labels, the classes, the bytes of
    the code that gathers and compares them and numpy's version. A regrade of unchanged files reads them back instead of
    comparing again; any change to one of those compares afresh."""
    digest = hashlib.sha256()
    digest.update(f"{_CODE};{np.__version__};{REVISION}.{ALIGN_REVISION};{classes};".encode())
    digest.update(b"-" if labels is None else hashlib.sha256(np.asarray(labels, np.int64).tobytes()).digest())
    for network in networks:
        answers = network.predictions
        told = b"-" if answers is None else hashlib.sha256(np.asarray(answers, np.int64).tobytes()).digest()
        facts = [network.key, network.label, network.sha256, network.library, network.weights is not None]
        digest.update(json.dumps(facts).encode() + told)
    key = digest.hexdigest()
    kept = book.findings(key)
    if kept is None:
        # As JSON keeps them, in the first run too: a run and its regrade write the same reports.
        found = find_evidence(networks, labels, classes, KeptAlignments(book))
        kept = [json.loads(json.dumps(asdict(finding), default=_plain)) for finding in found]
        book.add_findings(key, kept)
    return [Finding(**{**finding, "images": tuple(finding["images"])}) for finding in kept]


def _plain(value: Any) -> Any:
    """A numpy number in a finding's numbers, as JSON keeps it."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


class KeptAlignments:
    """The run's gradebook as integrity's store of matched pairs (grader.marking.integrity.Alignments)."""

    def __init__(self, book: Gradebook) -> None:
        self.book, self.revision = book, f"{REVISION}.{ALIGN_REVISION}"

    def get(self, first: str, second: str) -> list[tuple[int, float, bool, int]] | None:
        stored = self.book.alignment(first, second, self.revision)
        return [(int(i), float(c), bool(o), int(n)) for i, c, o, n in stored] if stored is not None else None

    def put(self, first: str, second: str, layers: list[tuple[int, float, bool, int]]) -> None:
        self.book.add_alignment(first, second, self.revision, [list(layer) for layer in layers])


def read_library_rows(folder: Path) -> tuple[Gradebook, list[dict[str, Any]]]:
    """A library's gradebook (kept open for its kernels and predictions) and its latest run's rows."""
    book = Gradebook.reading(folder)
    try:
        return book, book.results(book.run()["id"])
    except BaseException:
        book.close()
        raise


def library_name(folder: Path, book: Gradebook) -> str:
    """How a library is named: the folder of models it was graded from, or the reports folder given."""
    return Path(book.run()["submissions"]).name if folder.parent.name == LIBRARY_FOLDER else folder.name


def _network(book: Gradebook, row: dict[str, Any], images: str | None, library: str | None = None) -> Network:
    stored = book.weights(row["sha256"], REVISION)
    summary, blob = stored if stored is not None else (None, None)
    predictions = None
    if row["evaluation_id"] is not None:
        evaluation = book.evaluation_by_id(row["evaluation_id"])
        if evaluation is not None and evaluation.predictions is not None and evaluation.images_sha256 == images:
            predictions = np.asarray(evaluation.predictions)
    if library is not None:
        key = f"library:{library}/{row['file'] or row['student_id']}"
        label = f"library {library}: {row['file'] or row['student_id']}"
    else:
        key = row["student_id"]
        label = person(row["student_name"], row["student_id"])
    return Network(
        key=key,
        label=label,
        sha256=row["sha256"],
        weights=summary if summary and "layers" in summary else None,
        kernels=_kernel_reader(blob) if blob else None,
        predictions=predictions,
        library=library is not None,
    )


def _kernel_reader(blob: bytes) -> Callable[[], dict[int, np.ndarray]]:
    return lambda: read_kernels(blob)


def library_folder(out: Path, given: Path) -> Path:
    """Where a library folder of model files is graded to, under the reports folder (one per folder)."""
    resolved = given.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    return out / LIBRARY_FOLDER / f"{resolved.name}-{digest}"


def is_gradebook_folder(folder: Path) -> bool:
    return (folder / FILE_NAME).is_file()
