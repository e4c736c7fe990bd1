"""A whole cohort through `grade`, with and without the integrity pass: its cost, its false alarms, its finds.

    python bench/integrity_cohort.py --students 300      # needs ../shared/data and ../shared/corpus

Builds N students who each train their own network (MLPs and CNNs of six shapes in turn, each from its own
seed, on its own 3,000 MNIST training images, for one or two epochs), and five planted ones:
- a copied file (student 0's, under another name);
- the same weights re-saved by Keras 2 (tf_keras), student 1's (an MLP);
- a network fine-tuned for one epoch from student 2's;
- a public network from ../shared/corpus handed in as it is;
- that public network with its last layer re-initialised and retrained (the others frozen).
Then grades the cohort cold with --no-integrity, cold with the integrity pass, warm with --library
../shared/corpus (which grades the library once), and warm again, and prints the times, every finding,
whether each planted case was found and whether any student who trained their own network was named.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench import SHARED, build_heldout, run_grade  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
PUBLIC = "Bear997__FGSM__mnist_cnn.h5"
BUILD = r"""
import json, os, shutil, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import keras
from keras import layers
out, students, mnist, public = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with np.load(mnist) as data:
    x, y = data["x_train"].astype("float32") / 255, data["y_train"]

def mlp(*widths):
    return lambda: keras.Sequential([keras.Input((28, 28)), layers.Flatten(),
                                     *[layers.Dense(w, activation="relu") for w in widths],
                                     layers.Dense(10, activation="softmax")])

def cnn(filters):
    return lambda: keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(filters, 3, activation="relu"),
                                     layers.MaxPooling2D(), layers.Conv2D(2 * filters, 3, activation="relu"),
                                     layers.MaxPooling2D(), layers.Flatten(), layers.Dense(10, activation="softmax")])

SHAPES = [mlp(64), mlp(128), cnn(8), mlp(256, 128), cnn(16), mlp(32)]

def fit(model, seed, epochs):
    chosen = np.random.default_rng(seed).choice(len(x), 3000, replace=False)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    inputs = x[chosen] if len(model.input_shape) == 3 else x[chosen][..., None]
    model.fit(inputs, y[chosen], epochs=epochs, batch_size=64, verbose=0)
    return model

def folder(name, number):
    path = os.path.join(out, f"{name}_{number}_assignsubmission_file_")
    os.makedirs(path)
    return path

models = []
for index in range(students):
    keras.utils.set_random_seed(1000 + index)
    model = fit(SHAPES[index % len(SHAPES)](), 1000 + index, 1 + index % 2)
    model.save(os.path.join(folder(f"Student {index:03d}", 700000 + index), "model.h5"))
    models.append(model)
shutil.copyfile(os.path.join(out, "Student 000_700000_assignsubmission_file_", "model.h5"),
                os.path.join(folder("Planted CopiedFile", 799001), "final_model.h5"))
import tf_keras
dense = tf_keras.layers.Dense
again = tf_keras.Sequential([tf_keras.layers.InputLayer((28, 28)), tf_keras.layers.Flatten(),
                             dense(128, activation="relu"), dense(10, activation="softmax")])
again.set_weights(models[1].get_weights())
again.save(os.path.join(folder("Planted Resaved", 799002), "model.h5"))
tuned = keras.models.clone_model(models[2])
tuned.set_weights(models[2].get_weights())
fit(tuned, 5, 1).save(os.path.join(folder("Planted Finetuned", 799003), "model.h5"))
shutil.copyfile(public, os.path.join(folder("Planted Public", 799004), "mnist_cnn.h5"))
downloaded = keras.models.load_model(public, compile=False, safe_mode=True)
for layer in downloaded.layers[:-1]:
    layer.trainable = False
last = downloaded.layers[-1]
fresh = np.random.default_rng(7)
last.set_weights([fresh.normal(0, 0.05, w.shape).astype(w.dtype) for w in last.get_weights()])
fit(downloaded, 6, 1).save(os.path.join(folder("Planted PublicRetrained", 799005), "model.h5"))
print("BUILT")
"""
PLANTED = {
    "same file: copied": ("799001", "700000", {"same file"}),
    "same weights: re-saved by Keras 2": ("799002", "700001", {"same weights"}),
    "derived: fine-tuned one epoch": ("799003", "700002", {"derived weights"}),
    "library: public network as it is": ("799004", f"library:corpus/{PUBLIC}", {"same file"}),
    "library: public, last layer retrained": ("799005", f"library:corpus/{PUBLIC}", {"shared layers"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--work", type=Path, default=Path("/tmp/grader-integrity"))
    parser.add_argument("--reuse", action="store_true", help="Keep a cohort already built under --work.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    heldout = build_heldout(args.work)
    cohort = args.work / "submissions"
    if not (args.reuse and cohort.is_dir()):
        shutil.rmtree(cohort, ignore_errors=True)
        cohort.mkdir()
        subprocess.run(
            [
                sys.executable,
                "-c",
                BUILD,
                str(cohort),
                str(args.students),
                str(SHARED / "mnist.npz"),
                str(CORPUS / PUBLIC),
            ],
            check=True,
        )
    plain, with_evidence = args.work / "plain", args.work / "evidence"
    for folder in (plain, with_evidence):
        shutil.rmtree(folder, ignore_errors=True)
    seconds_plain, _, _ = run_grade(cohort, heldout, plain, "--no-integrity")
    seconds_cold, _, _ = run_grade(cohort, heldout, with_evidence)
    seconds_library, _, _ = run_grade(cohort, heldout, with_evidence, "--library", str(CORPUS))
    seconds_warm, _, _ = run_grade(cohort, heldout, with_evidence, "--library", str(CORPUS))
    same_marks = (plain / "marks.csv").read_bytes() == (with_evidence / "marks.csv").read_bytes()
    with open(with_evidence / "integrity.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        print(f"  {row['kind']}: {row['first']} ~ {row['second']}: {row['evidence'][:150]}")
    found = {}
    for case, (student, other, kinds) in PLANTED.items():
        found[case] = any({row["first"], row["second"]} == {student, other} and row["kind"] in kinds for row in rows)
    own = {f"{700000 + index}" for index in range(args.students)}
    # Students 0-2 are the originals the planted copies were made from: named with them, rightly.
    named = ({row["first"] for row in rows} | {row["second"] for row in rows}) & own - {"700000", "700001", "700002"}
    print(
        json.dumps(
            {
                "students": args.students + len(PLANTED),
                "seconds_without_integrity_cold": round(seconds_plain, 1),
                "seconds_with_integrity_cold": round(seconds_cold, 1),
                "integrity_overhead_cold": round(seconds_cold / seconds_plain - 1, 3),
                "seconds_warm_indexing_the_library": round(seconds_library, 1),
                "seconds_warm_with_library": round(seconds_warm, 1),
                "marks_identical": same_marks,
                "findings": len(rows),
                "planted_found": found,
                "students_who_trained_their_own_named": sorted(named),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
