"""Benchmark and cross-check `grade serve`: a cohort uploaded at once against `grade` on the same files, and
real files uploaded one by one against `grade check`.

    python bench/serve.py --students 40                  # needs ../shared/data (bench/bench.py builds the cohort)
    python bench/serve.py --students 40 --workers 2
    python bench/serve.py --students 0 --corpus ../shared/corpus

The cohort (bench/bench.py's MLPs and CNNs, each file different) is graded cold by `grade`, then every file is
uploaded to a fresh `grade serve` at the same moment (one thread per file), measured on the same 12,000 digits
(given as --data). It prints both wall times, each upload's wait and check, and checks that every upload's
accuracy and status equal marks.csv's. With --corpus, every .h5 file in that folder is uploaded (one at a time)
and its result compared with `grade check --json` on the same file: status, reason, accuracy and every check
(`--assignment oxford-practical3 --corpus ../shared/corpus/onnx` for the ONNX exports).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench import build_cohort, build_heldout, machine, marks, run_grade  # noqa: E402
from tests.serve_client import Server  # noqa: E402


def cohort_through_the_page(work: Path, students: int, workers: int) -> None:
    heldout = build_heldout(work)
    build_cohort(work, students, big=False)
    files = sorted((work / "submissions").glob("*/*.h5"))
    out = work / "reports"
    shutil.rmtree(out, ignore_errors=True)
    graded_seconds, _, _ = run_grade(work / "submissions", heldout, out, "--no-integrity")
    expected = marks(out)  # by student folder: students' files share names
    print(f"grade: {len(files)} files in {graded_seconds:.1f} s (cold)")

    state = work / "serve-state"
    shutil.rmtree(state, ignore_errors=True)
    started = time.monotonic()
    server = Server(state, "--data", str(heldout), "--workers", str(workers), "--uploads-per-hour", "10000")
    ready = time.monotonic() - started
    try:
        tokens: dict[str, str] = {}
        barrier = threading.Barrier(len(files))

        def send(path: Path) -> None:
            barrier.wait()
            tokens[path.parent.name] = server.upload(path, path.name).token

        began = time.monotonic()
        threads = [threading.Thread(target=send, args=(path,)) for path in files]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        states = server.wait(list(tokens.values()), timeout=3600)
        served_seconds = time.monotonic() - began
    finally:
        server.stop()
    waits = [s["started"] - s["created"] for s in states.values()]
    checks = [s["finished"] - s["started"] for s in states.values()]
    print(
        f"grade serve --workers {workers}: ready in {ready:.1f} s; {len(files)} uploads sent at once, all checked "
        f"{served_seconds:.1f} s later ({served_seconds / graded_seconds:.2f}x grade's time); each check "
        f"{statistics.median(checks):.2f} s median ({min(checks):.2f}-{max(checks):.2f}); the last waited "
        f"{max(waits):.1f} s"
    )
    differ = []
    for folder, token in tokens.items():
        result, row = states[token]["result"], expected[folder]
        if result["status"] != row["status"] or f"{result['accuracy']!r}" != row["accuracy"]:
            page, graded = f"{result['status']} {result['accuracy']!r}", f"{row['status']} {row['accuracy']}"
            differ.append(f"{folder}: page {page}, grade {graded}")
    print(f"accuracy and status equal to marks.csv: {len(tokens) - len(differ)} of {len(tokens)}")
    if differ:
        raise SystemExit("\n".join(differ))


def corpus_through_the_page(work: Path, corpus: Path, data: Path, assignment: str) -> None:
    files = sorted(path for path in corpus.iterdir() if path.suffix in (".h5", ".keras", ".onnx"))
    state = work / "corpus-state"
    shutil.rmtree(state, ignore_errors=True)
    server = Server(state, "--assignment", assignment, "--data", str(data), "--uploads-per-hour", "10000")
    differ = 0
    try:
        for path in list(files):
            answer = server.upload(path, path.name)
            if answer.status == 400:  # a format this coursework does not take
                files.remove(path)
                continue
            token = answer.token
            page = server.wait([token], timeout=900)[token]["result"]
            done = subprocess.run(
                [sys.executable, "-m", "grader", "check", str(path), "-a", assignment, "--data", str(data), "--json"],
                capture_output=True,
                text=True,
                check=False,
            )
            direct = json.loads(done.stdout)
            fields = ("status", "reason", "accuracy", "checks", "sha256", "receipt")
            same = all(page[field] == direct[field] for field in fields)
            differ += not same
            print(f"{'same' if same else 'DIFFERENT'}: {path.name}: {page['status']} {page['accuracy']}")
    finally:
        server.stop()
    print(f"{len(files) - differ} of {len(files)} corpus files: the page's result equals grade check's")
    if differ:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--corpus", type=Path, default=None, help="a folder of real model files to compare")
    parser.add_argument("--assignment", default="kcl-dnn-cw1", help="the coursework the corpus is checked as")
    parser.add_argument("--work", type=Path, default=Path("/tmp/grader-serve-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    if args.students:
        cohort_through_the_page(args.work, args.students, args.workers)
    if args.corpus:
        corpus_through_the_page(args.work, args.corpus, ROOT.parent / "shared" / "data" / "mnist.npz", args.assignment)


if __name__ == "__main__":
    main()
