"""Shared fixtures: tiny real models (built once per session, in a subprocess) and a graded cohort."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from .references import contents, versions

ROOT = Path(__file__).resolve().parent.parent
DEMO_HELDOUT = ROOT / "heldout" / "demo-mnist-test-3000.npz"
SHARED = ROOT.parent / "shared"

# The test cohort: Moodle folder name -> fixture model file(s) placed in it (under the given name).
COHORT = {
    "Ann Example_200001_assignsubmission_file_": {"mlp.h5": "ann_mlp.h5"},
    "Ben Example_200002_assignsubmission_file_": {"cnn.h5": "ben_cnn.h5"},
    "Cat Example_200003_assignsubmission_file_": {"flat.h5": "cat.h5"},
    "Dan Example_200004_assignsubmission_file_": {"logits.h5": "dan_logits.h5"},
    "Eve Example_200005_assignsubmission_file_": {"five_outputs.h5": "eve.h5"},
    "Fay Example_200006_assignsubmission_file_": {"lambda.h5": "fay.h5"},
    "Gus Example_200007_assignsubmission_file_": {"truncated.h5": "gus.h5"},
    "Hal Example_200008_assignsubmission_file_": {"rgb32.h5": "hal.h5"},
    "Ivy Example_200009_assignsubmission_file_": {"mlp.h5": "a_first.h5", "cnn.h5": "b_second.h5"},
    "Jon Example_200010_assignsubmission_file_": {"weights_only.weights.h5": "jon.weights.h5"},
    "Kim Example_200011_assignsubmission_file_": {},
    "Lia Example_200012_assignsubmission_file_": {"channels_first.h5": "lia.h5"},
    "Max Example_200013_assignsubmission_file_": {"batch_axis.h5": "max.h5"},
    "Nia Example_200014_assignsubmission_file_": {"dead.h5": "nia_dead.h5"},
    "Oli Example_200015_assignsubmission_file_": {"nan_relu.h5": "oli.h5"},
    "k9999999": {"nan.h5": "nan_model.h5"},
}


# Fixtures that build or grade real models: a test using any of them (directly or through another
# fixture) starts TensorFlow, so it must carry the tensorflow marker ("pytest -m 'not tensorflow'" then
# really runs in seconds). Checked at collection by pytest_collection_modifyitems below.
TENSORFLOW_FIXTURES = {"models", "model_facts", "graded", "architecture_models", "oxford_graded"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run a test that builds or grades models without the tensorflow marker."""
    unmarked = [
        item.nodeid
        for item in items
        if TENSORFLOW_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("tensorflow")
    ]
    if unmarked:
        raise pytest.UsageError("these tests use real models but lack @pytest.mark.tensorflow: " + ", ".join(unmarked))


@pytest.fixture(scope="session", autouse=True)
def _warm_workers():
    """The session's warm TensorFlow workers (grader.evaluation.scheduler.keep_workers_warm): the runs the
    tests and their fixtures make in this process take a kept worker with their sandbox, images, threads and
    limits instead of starting TensorFlow again. Six are kept, not two: the tests use several image sets and
    limits in turn, and with two kept the suite started 132 workers, with six 102 (about 0.6 GB each when idle)."""
    from grader.evaluation.scheduler import keep_workers_warm

    with keep_workers_warm(keep=6) as pool:
        yield pool


@pytest.fixture(autouse=True)
def _workers_only_under_the_tensorflow_marker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """A test without the tensorflow marker that would start a TensorFlow worker fails, saying so. A test
    with it shares the session's warm workers, unless it is marked own_workers (it counts or kills workers,
    or must see a worker start)."""
    from grader.evaluation import scheduler

    tensorflow = request.node.get_closest_marker("tensorflow")
    if not tensorflow or request.node.get_closest_marker("own_workers"):
        monkeypatch.setattr(scheduler.WorkerPool, "current", None)
    if tensorflow:
        yield
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{request.node.nodeid} starts a TensorFlow worker: mark it @pytest.mark.tensorflow")

    monkeypatch.setattr(scheduler.ChildProcess, "worker", refuse)
    yield


def require(problem: str, what: str) -> None:
    """Skip a test that needs `what` when it is missing here, saying why; under CI (CI=true), where .ci/run
    installs it, fail instead: a sandbox or browser test must never pass by skipping there."""
    if not problem:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required under CI and is missing: {problem}")
    pytest.skip(f"needs {what}: {problem}")


@pytest.fixture
def bubblewrap() -> None:
    """The test needs a working bubblewrap sandbox (see require)."""
    from grader.evaluation.sandbox import bubblewrap_problem

    require(bubblewrap_problem(), "bubblewrap")


CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None
)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (the system's, driven by Playwright), shared by the tests that read pages."""
    require("" if CHROMIUM else "Chromium is not installed (Debian: apt install chromium)", "Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # The flags keep a headless Chromium from reaching for the network on its own.
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield launched
        launched.close()


@dataclass(frozen=True)
class Traps:
    """What a hostile payload is after, on the host: none of it may ever be touched."""

    canary: Path
    "A folder payloads try to create and write into."
    secret: Path
    "A host file payloads try to read."
    port: int
    "A loopback port payloads try to reach."


# Models the fixtures build are kept under .pytest_cache, one folder per content hash of what built them: the
# xdist processes of a run build each once between them, and the next run reuses them. A kept folder is read-only
# and checked unchanged at the session's end (_kept_folders_unchanged).
FIXTURES = ROOT / ".pytest_cache" / "grader-fixtures"
BUILT = ".built"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod((0o755 if path.is_dir() else 0o644) if writable else (0o555 if path.is_dir() else 0o444))


def _contents(folder: Path) -> dict[str, str]:
    """Each file's sha256 under `folder`, by its path inside it (the .built record left out)."""
    return contents(folder, leave_out=BUILT)


KEPT: list[Path] = []
"The kept folders this process uses: each is checked unchanged when the session ends (_kept_folders_unchanged)."


def built_once(name: str, sources: list[Path], build: Callable[[Path], None], *, facts: str = "") -> Path:
    """The folder `build(folder)` writes, built once per content of `sources` (files), `facts` (anything else the
    build depends on) and the versions of Python, numpy, h5py, TensorFlow and Keras: kept under .pytest_cache for
    every xdist process of this run and for the next runs. A build that fails leaves nothing kept; a kept folder
    whose files changed since it was built is built again, and a test that changes one fails the session."""
    digest = hashlib.sha256(facts.encode())
    digest.update(versions(("numpy", "tensorflow", "keras", "tf_keras", "h5py")).encode())
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    folder = FIXTURES / f"{name}-{digest.hexdigest()[:16]}"
    with _locked(FIXTURES / f"{name}.lock"):
        record = folder / BUILT
        if not record.is_file() or json.loads(record.read_text()).get("files") != _contents(folder):
            for stale in list(FIXTURES.glob(f"{name}-*")):
                _writable(stale, True)
                shutil.rmtree(stale)
            partial = folder.with_name(folder.name + ".partial")
            partial.mkdir(parents=True)  # the stale folders above took any earlier build's leftovers
            build(partial)
            kept = {"sources": [str(s) for s in sources], "facts": facts, "files": _contents(partial)}
            (partial / BUILT).write_text(json.dumps(kept, indent=1))
            _writable(partial, False)
            partial.rename(folder)
    if folder not in KEPT:
        KEPT.append(folder)
    return folder


@pytest.fixture(scope="session", autouse=True)
def _kept_folders_unchanged() -> Iterator[None]:
    """The kept fixture folders this process used hold at the end what they held when built: a test that wrote
    into one would change what every later test and run reads (root, as CI runs, ignores their read-only modes)."""
    yield
    changed = [str(folder) for folder in KEPT if json.loads((folder / BUILT).read_text())["files"] != _contents(folder)]
    assert changed == [], f"a test changed these kept fixture folders: {changed}"


@pytest.fixture(scope="session")
def traps() -> Traps:
    """The canary, secret and port baked into the hostile models: kept with them (built_once), as their payloads
    name them."""

    def build(folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        (folder / "secret.txt").write_text("the instructor's secret")
        (folder / "traps.json").write_text(json.dumps({"port": port}))

    folder = built_once("traps", [], build)
    # The canary is beside the kept folder, never in it: a payload that could write would make it there.
    canary = FIXTURES / f"{folder.name}-canary"
    return Traps(
        canary=canary, secret=folder / "secret.txt", port=json.loads((folder / "traps.json").read_text())["port"]
    )


@pytest.fixture(scope="session")
def models(traps: Traps) -> Path:
    """Folder of tiny real models, built by tests/build_models.py in its own process (once: built_once)."""

    def build(out: Path) -> None:
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests" / "build_models.py"),
                str(out),
                str(DEMO_HELDOUT),
                str(traps.canary),
                str(traps.secret),
                str(traps.port),
            ],
            check=True,
            timeout=600,
        )
        # Keras runs a Lambda while building the model, so building the payloads sprang them here, in the
        # builder: clear that, so that anything found later was left by grading.
        shutil.rmtree(traps.canary, ignore_errors=True)

    sources = [ROOT / "tests" / "build_models.py", DEMO_HELDOUT]
    return built_once("models", sources, build, facts=json.dumps(asdict(traps), default=str))


@pytest.fixture(scope="session")
def model_facts(models: Path) -> dict:
    """What Keras itself reported for each fixture model (input shape, parameter count)."""
    return json.loads((models / "models.json").read_text())


def make_cohort(root: Path, models: Path, layout: dict[str, dict[str, str]]) -> Path:
    for folder, files in layout.items():
        (root / folder).mkdir(parents=True)
        for source, target in files.items():
            shutil.copyfile(models / source, root / folder / target)
    return root


@pytest.fixture(scope="session")
def architecture_models() -> Path:
    """The prescribed networks of Oxford, UvA Q16 and SYDE Q9, exact and varied (tests/build_architectures.py),
    built once (built_once)."""

    def build(out: Path) -> None:
        subprocess.run(
            [sys.executable, str(ROOT / "tests" / "build_architectures.py"), str(out), str(DEMO_HELDOUT)],
            check=True,
            timeout=600,
        )

    return built_once("architectures", [ROOT / "tests" / "build_architectures.py", DEMO_HELDOUT], build)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Path:
    """A Moodle-style download with one folder per case."""
    root = make_cohort(tmp_path_factory.mktemp("cohort") / "submissions", models, COHORT)
    (root / "Kim Example_200011_assignsubmission_file_" / "kim.keras").write_bytes(b"PK\x03\x04 not really")
    return root


@pytest.fixture(scope="session")
def graded(tmp_path_factory: pytest.TempPathFactory, cohort: Path):
    """The test cohort graded once, by the real pipeline (bubblewrap when available)."""
    from grader.cohort import grade_cohort

    out = tmp_path_factory.mktemp("graded") / "reports"
    summary = grade_cohort(cohort, heldout=DEMO_HELDOUT, out=out)
    return summary


# Four students of the test cohort whose files are evaluated: for the tests that start a fresh worker per file
# (a TensorFlow import each, seconds of both cores) and need a run of several evaluations, not every case.
FEW = [
    "Ann Example_200001_assignsubmission_file_",
    "Ben Example_200002_assignsubmission_file_",
    "Cat Example_200003_assignsubmission_file_",
    "Dan Example_200004_assignsubmission_file_",
]


def moodle_id(folder: str) -> str:
    """The student id in a Moodle submission folder's name, as grader's discovery reads it."""
    from grader.discovery import MOODLE_FOLDER

    match = MOODLE_FOLDER.match(folder)
    assert match is not None, f"{folder} is not named as Moodle names a submission folder"
    return match["id"]


def few_students(root: Path, models: Path, graded) -> tuple[Path, bytes]:
    """FEW as a cohort under `root`, and the marks.csv grading the whole test cohort gives them (its header and
    their rows, as they are there, byte for byte)."""
    cohort = make_cohort(root, models, {folder: COHORT[folder] for folder in FEW})
    ids = {moodle_id(folder) for folder in FEW}
    lines = graded.marks_csv.read_bytes().splitlines(keepends=True)
    return cohort, b"".join([lines[0], *(line for line in lines[1:] if line.split(b",")[0].decode() in ids)])


@pytest.fixture(scope="session")
def rows(graded) -> dict[str, dict]:
    """marks.csv rows of the graded cohort, by student id."""
    import csv

    with open(graded.marks_csv, newline="", encoding="utf-8") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}
