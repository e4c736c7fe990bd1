"""Benchmark grade against the official script loop, on the same machine, in one run.

    python bench/bench.py --students 40                 # speed and identity (needs ../shared/data)
    python bench/bench.py --students 40 --big           # plus a 50M-parameter submission: peak memory
    python bench/bench.py --students 300 --official-every 10 --independent   # growth: the official loop on every 10th
    python bench/bench.py --remark 500                  # re-marking 500 cached students after a band change

It builds a cohort of realistic submissions (MLPs and CNNs of 0.03-3M parameters, Sequential and
functional, trained briefly on MNIST and each one perturbed, so every file differs), a held-out set of
12,000 digits (MNIST test and USPS test: other writers), then times:

1. the official script loop: seed 000's script, run in each student's folder in a fresh Python, its
   data source pointed at the held-out set, as a marker runs it by hand;
2. one warm process that imports TensorFlow once and only loads and predicts each model (batch 1024);
3. `grade` on the cohort, cold (a new output folder), with its peak memory (the whole process tree).

It checks that the official loop and grade print the same accuracy for every student, and prints the
ratios. Everything goes under --work (default /tmp/grader-bench).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.courseworks.official import PREFIX, pointed_at  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
GRADE = [sys.executable, "-m", "grader"]
WARM = """
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import keras
data = np.load(sys.argv[1])
x = data["x"].astype("float32") / 255
results = {}
started = time.perf_counter()
for path in json.loads(sys.argv[2]):
    net = keras.models.load_model(path, compile=False)
    shape = (784,) if len(net.input_shape) <= 2 else (28, 28, 1)
    outputs = net.predict(x.reshape(x.shape[0], *shape), batch_size=1024, verbose=0)
    results[path] = int((np.argmax(outputs, axis=1) == data["y"]).sum())
    keras.backend.clear_session()
print("WARM=" + json.dumps({"seconds": time.perf_counter() - started, "correct": results}))
"""


def build_heldout(work: Path) -> Path:
    """12,000 digits: MNIST's test set and the first 2,000 of USPS's (other writers, like 'my testset')."""
    with np.load(SHARED / "mnist.npz") as mnist, np.load(SHARED / "usps_test.npz") as usps:
        x = np.concatenate([mnist["x_test"], usps["x"][:2000]])
        y = np.concatenate([mnist["y_test"], usps["y"][:2000]]).astype(np.uint8)
    path = work / "heldout.npz"
    np.savez(path, x=x, y=y)
    return path


BUILD = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import keras
from keras import layers
out, students, big, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
chosen = sys.argv[6].split(",")
keras.utils.set_random_seed(seed)
with np.load(sys.argv[5]) as data:
    x, y = data["x_train"][:12000].astype("float32") / 255, data["y_train"][:12000]

def functional_cnn():
    image = keras.Input((28, 28, 1))
    h = layers.Conv2D(32, 3, activation="relu")(image)
    h = layers.BatchNormalization()(h)
    h = layers.MaxPooling2D()(h)
    h = layers.Conv2D(64, 3, activation="relu")(h)
    h = layers.MaxPooling2D()(h)
    h = layers.Dropout(0.25)(layers.Flatten()(h))
    return keras.Model(image, layers.Dense(10, activation="softmax")(layers.Dense(128, activation="relu")(h)))

ARCHITECTURES = {  # 0.03M to 3M parameters, Sequential and functional, MLP and CNN
    "mlp_small": lambda: keras.Sequential([keras.Input((784,)), layers.Dense(32, activation="relu"),
                                           layers.Dense(10, activation="softmax")]),
    "mlp_mid": lambda: keras.Sequential([keras.Input((784,)), layers.Dense(256, activation="relu"),
                                         layers.Dropout(0.2), layers.Dense(128, activation="relu"),
                                         layers.Dense(10, activation="softmax")]),
    "mlp_flatten": lambda: keras.Sequential([keras.Input((28, 28)), layers.Flatten(),
                                             layers.Dense(512, activation="relu"), layers.Dense(10)]),
    "mlp_big": lambda: keras.Sequential([keras.Input((784,)), layers.Dense(1024, activation="relu"),
                                         layers.Dense(1024, activation="relu"), layers.Dense(10, activation="softmax")]),
    "cnn_small": lambda: keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(16, 3, activation="relu"),
                                           layers.MaxPooling2D(), layers.Conv2D(32, 3, activation="relu"),
                                           layers.MaxPooling2D(), layers.Flatten(), layers.Dense(10, activation="softmax")]),
    "cnn_keras_example": lambda: keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                                                   layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
                                                   layers.Dropout(0.25), layers.Flatten(),
                                                   layers.Dense(128, activation="relu"), layers.Dropout(0.5),
                                                   layers.Dense(10, activation="softmax")]),
    "cnn_functional": functional_cnn,
    "cnn_big": lambda: keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                                         layers.MaxPooling2D(), layers.Conv2D(64, 3, activation="relu"),
                                         layers.MaxPooling2D(), layers.Flatten(), layers.Dense(2048, activation="relu"),
                                         layers.Dropout(0.5), layers.Dense(10, activation="softmax")]),
    # Heavier than any classifier in the real corpus: 64 and 128 filters at full resolution (37M
    # multiply-adds per image, three times the Keras example's). Only with --heavy.
    "cnn_wide": lambda: keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(64, 3, padding="same", activation="relu"),
                                          layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
                                          layers.Conv2D(128, 3, activation="relu"), layers.MaxPooling2D(),
                                          layers.Flatten(), layers.Dense(512, activation="relu"),
                                          layers.Dense(10, activation="softmax")]),
}
independent = sys.argv[7] == "independent"

def trained_model(name, images, labels):
    model = ARCHITECTURES[name]()
    shape = model.input_shape[1:]
    inputs = images.reshape(-1, 784) if shape == (784,) else (images if len(shape) == 2 else images[..., None])
    logits = model.layers[-1].activation.__name__ == "linear"
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits))
    model.fit(inputs, labels, epochs=1, batch_size=64 if independent else 128, verbose=0)
    return model

trained = {} if independent else {name: trained_model(name, x, y) for name in chosen}
names = list(chosen)
facts = []
rng = np.random.default_rng(seed)
for index in range(students):
    name = names[index % len(names)]
    if independent:
        # Each student's own training: a random start of its own and 2,000 images of its own, as a cohort
        # whose members trained apart.
        keras.utils.set_random_seed(seed * 100_000 + index)
        start = int(rng.integers(0, len(x) - 2000))
        model = trained_model(name, x[start : start + 2000], y[start : start + 2000])
    else:
        model = trained[name]
        original = model.get_weights()
        # Each student's own file: the architecture's weights, perturbed by 1% noise (copies of one network,
        # which the integrity pass rightly finds derived, pair by pair).
        model.set_weights([w + rng.normal(0, 0.01 * (np.std(w) + 1e-6), w.shape).astype(w.dtype) for w in original])
    folder = os.path.join(out, f"Student {index:03d}_{500000 + index}_assignsubmission_file_")
    os.makedirs(folder)
    model.save(os.path.join(folder, f"{name}.h5"))  # with optimizer state, as students save
    if not independent:
        model.set_weights(original)
    else:
        keras.backend.clear_session()
    facts.append({"folder": folder, "architecture": name, "parameters": int(model.count_params())})
if big:
    model = keras.Sequential([keras.Input((784,)), layers.Dense(8192, activation="relu"),
                              layers.Dense(5120, activation="relu"), layers.Dense(10, activation="softmax")])
    folder = os.path.join(out, f"Student Big_{599999}_assignsubmission_file_")
    os.makedirs(folder)
    model.save(os.path.join(folder, "big_50m.h5"), include_optimizer=False)
    facts.append({"folder": folder, "architecture": "mlp_50m", "parameters": int(model.count_params())})
print("FACTS=" + json.dumps(facts))
"""


REALISTIC = "mlp_small,mlp_mid,mlp_flatten,mlp_big,cnn_small,cnn_keras_example,cnn_functional,cnn_big"
LIGHT = "mlp_small,mlp_mid,mlp_flatten,cnn_small,cnn_functional"


def build_cohort(
    work: Path, students: int, big: bool, seed: int = 0, architectures: str = REALISTIC, *, independent: bool = False
) -> list[dict]:
    cohort = work / "submissions"
    shutil.rmtree(cohort, ignore_errors=True)
    cohort.mkdir(parents=True)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BUILD,
            str(cohort),
            str(students),
            "1" if big else "0",
            str(seed),
            str(SHARED / "mnist.npz"),
            architectures,
            "independent" if independent else "perturbed",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("FACTS="))
    return json.loads(line[len("FACTS=") :])


def official_loop(cohort: list[dict], heldout: Path) -> tuple[float, dict[str, str]]:
    """Seed 000's script in each folder, a fresh Python each time, as a marker runs it."""
    script = pointed_at(heldout)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    printed = {}
    started = time.perf_counter()
    for student in cohort:
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=student["folder"], capture_output=True, text=True, env=env, check=False
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith(PREFIX)]
        printed[student["folder"]] = lines[-1][len(PREFIX) :] if lines else "error"
    return time.perf_counter() - started, printed


def warm_process(cohort: list[dict], heldout: Path) -> float:
    """Load and predict only, every model in one process that imported TensorFlow once."""
    paths = [str(next(Path(s["folder"]).glob("*.h5"))) for s in cohort]
    done = subprocess.run(
        [sys.executable, "-c", WARM, str(heldout), json.dumps(paths)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("WARM="))
    return json.loads(line[len("WARM=") :])["seconds"]


def run_grade(cohort_root: Path, heldout: Path | str, out: Path, *extra: str) -> tuple[float, float, str]:
    """Wall time and peak memory (the whole process tree's RSS, sampled every 50 ms) of one grade run."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(
        [*GRADE, str(cohort_root), "--heldout", str(heldout), "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not stop.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()) / 1024**3)
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0]
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"grade failed:\n{output}")
    return time.perf_counter() - started, peak, output


def marks(out: Path) -> dict[str, dict]:
    with open(out / "marks.csv", newline="") as handle:
        return {row["folder"]: row for row in csv.DictReader(handle)}


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        cpu = model
    except (OSError, StopIteration):
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 1024**3:.0f} GB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


MATMUL = """
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
cores = os.cpu_count() or 1
tf.config.threading.set_intra_op_parallelism_threads(cores)
tf.config.threading.set_inter_op_parallelism_threads(1)
n = 2048
a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
product = tf.function(lambda: tf.matmul(a, b))
product().numpy()
best = 0.0
for _ in range(5):
    started = time.perf_counter()
    for _ in range(4):
        product().numpy()
    best = max(best, 4 * n**3 / (time.perf_counter() - started))
print("MATMUL=" + json.dumps({"macs_per_second": best, "cores": cores}))
"""


def matmul_rate() -> float:
    """TensorFlow's own fp32 matmul rate on every core of this machine (multiply-adds per second, the best of five
    rounds of four 2048x2048 products)."""
    done = subprocess.run([sys.executable, "-c", MATMUL], capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("MATMUL="))
    return float(json.loads(line.removeprefix("MATMUL="))["macs_per_second"])


def floor_and_overheads(out: Path, images: int, rate: float) -> tuple[float, float, list[dict]]:
    """From a run's gradebook: the cohort's multiply-adds (each evaluated model's per image, from its inspection,
    times the held-out images), the arithmetic floor (those over `rate`), and each evaluation's time apart from its
    own arithmetic (what grade spends on it beyond the floor: loading, tracing, checking, batching)."""
    import sqlite3

    db = sqlite3.connect(out / "gradebook.sqlite")
    macs = {
        sha: int(json.loads(result).get("multiply_adds") or 0)
        for sha, result in db.execute("SELECT sha256, result FROM inspections")
    }
    rows = []
    for sha, seconds, answer in db.execute("SELECT sha256, seconds, answer FROM evaluations WHERE status='answered'"):
        told = json.loads(answer or "{}")
        arithmetic = macs.get(sha, 0) * images / rate * (os.cpu_count() or 1)  # one single-threaded worker
        rows.append(
            {
                "macs": macs.get(sha, 0),
                "seconds": seconds,
                "arithmetic": arithmetic,
                "overhead": seconds - arithmetic,
                **{key: told.get(key, 0.0) for key in ("load_seconds", "trace_seconds", "check_seconds")},
                "predict_seconds": told.get("predict_seconds", 0.0),
                "compiled": bool(told.get("compiled")),
            }
        )
    total = sum(macs.get(sha, 0) for (sha,) in db.execute("SELECT sha256 FROM evaluations")) * images
    return total, total / rate, rows


def report_floor(out: Path, images: int, grade_seconds: float) -> None:
    rate = matmul_rate()
    total, floor, rows = floor_and_overheads(out, images, rate)
    print(
        f"arithmetic floor: {total / 1e9:,.0f} GMAC at TensorFlow's fp32 matmul rate on every core, "
        f"{rate / 1e9:.0f} GMAC/s: {floor:.1f} s; grade took {grade_seconds / floor:.2f}x the floor"
    )
    small = sorted(rows, key=lambda row: row["macs"])[: max(1, len(rows) // 4)]
    if small:
        median = sorted(row["overhead"] for row in small)[len(small) // 2]
        parts = {
            key: sum(row[key] for row in small) / len(small)
            for key in ("load_seconds", "trace_seconds", "check_seconds", "predict_seconds")
        }
        print(
            f"per-model overhead, the smallest quarter of models ({len(small)}, up to {small[-1]['macs']:,} MAC "
            f"per image): median {median:.3f} s beyond their arithmetic (mean load {parts['load_seconds']:.3f}, "
            f"trace {parts['trace_seconds']:.3f}, check {parts['check_seconds']:.3f}, predict "
            f"{parts['predict_seconds']:.3f} s; compiled {sum(row['compiled'] for row in small)} of {len(small)})"
        )


def speed(args: argparse.Namespace, work: Path) -> None:
    heldout = build_heldout(work)
    print(f"machine: {machine()}")
    print(f"building {args.students} submissions{' and a 50M-parameter one' if args.big else ''} ...", flush=True)
    cohort = build_cohort(
        work,
        args.students,
        args.big,
        seed=args.seed,
        architectures=REALISTIC.replace("cnn_big", "cnn_wide") if args.heavy else REALISTIC,
        independent=args.independent,
    )
    parameters = sorted(s["parameters"] for s in cohort)
    print(f"cohort: {len(cohort)} students, {parameters[0]:,} to {parameters[-1]:,} parameters; held-out 12,000")
    out = work / "reports"
    shutil.rmtree(out, ignore_errors=True)
    grade_seconds, peak, _ = run_grade(work / "submissions", heldout, out, *args.grade_args)
    print(
        f"grade (cold): {grade_seconds:.1f} s ({grade_seconds / len(cohort):.3f} s per student), "
        f"peak memory {peak:.2f} GB",
        flush=True,
    )
    report_floor(out, 12_000, grade_seconds)
    again, _, _ = run_grade(work / "submissions", heldout, out, *args.grade_args)
    print(f"grade again (everything cached): {again:.2f} s", flush=True)
    warm = None if args.skip_warm else warm_process(cohort, heldout)
    if warm is not None:
        print(f"one warm process, load + predict only (batch 1024): {warm:.1f} s", flush=True)
    if args.skip_official:
        return
    sample = cohort[:: args.official_every]
    measured, printed = official_loop(sample, heldout)
    official_seconds = measured * len(cohort) / len(sample)
    graded = marks(out)
    mismatches = [folder for folder, text in printed.items() if graded[Path(folder).name]["accuracy"] != text]
    if len(sample) == len(cohort):
        print(f"official script loop: {official_seconds:.1f} s ({official_seconds / len(cohort):.2f} s per student)")
    else:
        print(
            f"official script loop, every {args.official_every}th student ({len(sample)} of {len(cohort)}): "
            f"{measured:.1f} s measured, {official_seconds:.0f} s for all at that rate "
            f"({measured / len(sample):.2f} s per student)"
        )
    print(
        f"identical accuracies: {len(sample) - len(mismatches)} of {len(sample)}"
        + (f"; DIFFERENT: {mismatches}" if mismatches else "")
    )
    print(
        f"grade is {official_seconds / grade_seconds:.1f}x faster than the official loop"
        + (f", and takes {grade_seconds / warm:.2f}x the warm process's load-and-predict time" if warm else "")
    )


def remark(args: argparse.Namespace, work: Path) -> None:
    heldout = build_heldout(work)
    print(f"machine: {machine()}")
    print(f"building {args.remark} submissions ...", flush=True)
    build_cohort(work, args.remark, False, seed=1, architectures=LIGHT)
    out = work / "reports"
    shutil.rmtree(out, ignore_errors=True)
    first, _, _ = run_grade(work / "submissions", heldout, out, *args.grade_args)
    print(f"first run ({args.remark} evaluated): {first:.1f} s", flush=True)
    rebanded = work / "rebanded.toml"
    text = (ROOT / "grader" / "courseworks" / "kcl-dnn-cw1.toml").read_text()
    rebanded.write_text(text.replace('range = "[90, 94)"\nscore = 9', 'range = "[90, 94)"\nscore = 10'))
    before = marks(out)
    seconds, _, output = run_grade(work / "submissions", heldout, out, "--assignment", str(rebanded), *args.grade_args)
    after = marks(out)
    changed = sum(before[key]["score"] != after[key]["score"] for key in before)
    print(f"re-mark after a band change: {seconds:.2f} s for {args.remark} students ({changed} marks changed)")
    print(" ".join(output.split()[-24:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--big", action="store_true", help="add a 50M-parameter submission")
    parser.add_argument(
        "--heavy", action="store_true", help="a heavier CNN (64 and 128 filters at full resolution) instead of cnn_big"
    )
    parser.add_argument("--remark", type=int, default=0, help="benchmark re-marking this many cached students")
    parser.add_argument("--skip-official", action="store_true")
    parser.add_argument("--skip-warm", action="store_true", help="leave out the one-warm-process timing")
    parser.add_argument(
        "--independent",
        action="store_true",
        help="each student trains their own network (a random start and 2,000 images of their own) instead of "
        "perturbing one trained network per architecture, whose copies the integrity pass compares pair by pair",
    )
    parser.add_argument(
        "--official-every",
        type=int,
        default=1,
        metavar="K",
        help="run the official script on every Kth student only (a large cohort), its time scaled to all",
    )
    parser.add_argument("--seed", type=int, default=0, help="another seed builds another cohort")
    parser.add_argument("--work", type=Path, default=Path("/tmp/grader-bench"))
    parser.add_argument("--grade-args", nargs=argparse.REMAINDER, default=[], help="passed on to grade")
    args = parser.parse_args()
    if not (SHARED / "mnist.npz").exists():
        raise SystemExit(f"{SHARED} is missing: the benchmark needs mnist.npz and usps_test.npz")
    args.work.mkdir(parents=True, exist_ok=True)
    (remark if args.remark else speed)(args, args.work)


if __name__ == "__main__":
    main()
