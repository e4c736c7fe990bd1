"""Benchmark a multi-part cohort: UvA Lab 1, each student handing in an MNIST MLP, an MNIST CNN and a CIFAR-10 CNN.

    python bench/parts.py --students 40          # needs ../shared/data (mnist.npz, cifar10_*.npz)

It trains the lab's three networks once (scripts/make_demo_parts.py's, the CIFAR-10 one being Question 16's
as the lab prescribes it), writes each student's three files as perturbed copies (every file differs), holds
out MNIST's 10,000 test digits and CIFAR-10's 10,000 test images, then times `grade --assignment uva-lab1`
cold and again, and prints the arithmetic floor measured on this machine (bench.py's: the cohort's
multiply-adds over TensorFlow's fp32 matmul rate on every core) and grade's ratio to it. The code part (six
numpy functions) is left out: no student hands it in here, so its row is 'missing'. Everything goes under
--work (default /tmp/grader-bench-parts).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import SHARED, machine, report_floor, run_grade  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUILD = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, sys.argv[4])
import numpy as np
import keras
from make_demo_parts import models, perturbed
out, students, shared = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keras.utils.set_random_seed(25)
with np.load(os.path.join(shared, "mnist.npz")) as mnist:
    digits, digit_labels = mnist["x_train"][:12000].astype("float32") / 255, mnist["y_train"][:12000]
with np.load(os.path.join(shared, "cifar10_train_20k.npz")) as cifar:
    order = np.random.default_rng(0).permutation(len(cifar["y_train"]))
    colour, colour_labels = cifar["x_train"][order].astype("float32") / 255, cifar["y_train"][order]
trained = models(keras)
feeds = {"mlp": (digits.reshape(-1, 784), digit_labels), "cnn": (digits[..., None], digit_labels),
         "cifar": (colour, colour_labels)}
for name, (x, y) in feeds.items():
    trained[name].compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    trained[name].fit(x, y, epochs=1, batch_size=128, verbose=0)
for index in range(students):
    folder = os.path.join(out, f"Student {index:03d}_{700000 + index}_assignsubmission_file_")
    os.makedirs(folder)
    for name, file_name in (("mlp", "q5_mlp.h5"), ("cnn", "q12_cnn.h5"), ("cifar", "q16_cifar.h5")):
        perturbed(keras, trained[name], 700000 + index).save(os.path.join(folder, file_name), include_optimizer=False)
print("BUILT")
"""


def build(work: Path, students: int) -> tuple[Path, Path]:
    """The cohort's folders and the two held-out sets (MNIST test, CIFAR-10 test: 10,000 images each)."""
    import shutil

    submissions = work / "submissions"
    shutil.rmtree(submissions, ignore_errors=True)
    submissions.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-c", BUILD, str(submissions), str(students), str(SHARED), str(ROOT / "scripts")],
        check=True,
        capture_output=True,
        text=True,
    )
    heldout = work / "heldout"
    for name, source, x_key, y_key in (
        ("mnist", "mnist.npz", "x_test", "y_test"),
        ("cifar10", "cifar10_test.npz", "x_test", "y_test"),
    ):
        (heldout / name).mkdir(parents=True, exist_ok=True)
        with np.load(SHARED / source) as data:
            np.savez(heldout / name / f"{name}-test.npz", x=data[x_key], y=data[y_key].reshape(-1))
    return submissions, heldout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--work", type=Path, default=Path("/tmp/grader-bench-parts"))
    args = parser.parse_args()
    if not (SHARED / "cifar10_test.npz").exists():
        raise SystemExit(f"{SHARED} is missing: the benchmark needs mnist.npz and the CIFAR-10 files")
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"building {args.students} students x 3 networks (UvA Lab 1: MLP, CNN, CIFAR-10 CNN) ...", flush=True)
    submissions, heldout = build(args.work, args.students)
    out = args.work / "reports"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    mnist = f"mnist={heldout / 'mnist'}"
    options = ["--assignment", "uva-lab1", "--heldout", f"cifar10={heldout / 'cifar10'}"]
    seconds, peak, _ = run_grade(submissions, mnist, out, *options)
    print(
        f"grade (cold): {seconds:.1f} s ({seconds / args.students:.3f} s per student, three networks each), "
        f"peak memory {peak:.2f} GB",
        flush=True,
    )
    report_floor(out, 10_000, seconds)
    again, _, _ = run_grade(submissions, mnist, out, *options)
    print(f"grade again (everything cached): {again:.2f} s")
    with open(out / "marks.csv") as handle:
        print("marks.csv:", json.dumps(handle.readline().strip()), f"and {sum(1 for _ in handle)} rows")


if __name__ == "__main__":
    main()
