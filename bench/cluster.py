"""Benchmark grading through a Dask cluster against local grading, on the same cohort and machine.

    python bench/cluster.py --students 40              # needs ../shared/data (bench/bench.py builds the cohort)
    python bench/cluster.py --students 40 --rounds 3 --cluster local:2

It builds bench/bench.py's cohort (MLPs and CNNs, each file different) and held-out set (12,000 digits), then
grades it cold (a new output folder each time) locally and with `--cluster local:2` (a Dask LocalCluster of two
worker processes, each with its own sandboxed TensorFlow child), alternating, `--rounds` times each. It checks
that marks.csv is byte-identical every time and prints each run's wall time and the ratio of the medians.
Everything goes under --work (default /tmp/grader-cluster-bench).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench import build_cohort, build_heldout, machine, run_grade  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cluster", default="local:2", help="the --cluster address to compare (default local:2)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/grader-cluster-bench"))
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    heldout = build_heldout(work)
    cohort = build_cohort(work, args.students, big=False)
    print(f"cohort: {len(cohort)} students; held-out: {heldout}")
    times: dict[str, list[float]] = {"local": [], "cluster": []}
    reference = None
    for round_number in range(args.rounds):
        for how, extra in (("local", ()), ("cluster", ("--cluster", args.cluster))):
            out = work / f"reports-{how}-{round_number}"
            shutil.rmtree(out, ignore_errors=True)  # cold: nothing stored to reuse
            seconds, peak, _ = run_grade(work / "submissions", heldout, out, *extra, "--no-integrity")
            marks = (out / "marks.csv").read_bytes()
            reference = reference or marks
            same = marks == reference
            times[how].append(seconds)
            print(f"round {round_number + 1}, {how}: {seconds:.1f} s, peak {peak:.2f} GB, marks.csv identical: {same}")
            if not same:
                raise SystemExit(f"{out / 'marks.csv'} differs from the first run's")
    local, cluster = statistics.median(times["local"]), statistics.median(times["cluster"])
    print(f"median: local {local:.1f} s, cluster ({args.cluster}) {cluster:.1f} s: {cluster / local:.2f}x")


if __name__ == "__main__":
    main()
