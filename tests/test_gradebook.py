"""The SQLite gradebook: outputs kept exactly, older gradebooks brought up to date, notes on results."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from grader.errors import GraderError
from grader.gradebook import SCHEMA_VERSION, Gradebook


def store(book: Gradebook, outputs: np.ndarray) -> int:
    return book.add_evaluation(
        sha256="f" * 64,
        images_sha256="i" * 64,
        evaluation_key="k",
        grader_version="v",
        status="answered",
        reason="",
        answer={"ok": True},
        predictions=np.argmax(outputs, axis=1),
        outputs=outputs,
        nonfinite=0,
        seconds=1.0,
        isolation="test",
        keep=True,
        ties={"images": 0, "classes": {}},
    )


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_outputs_are_kept_exactly_so_their_argmax_is_the_mark(tmp_path: Path, dtype: str) -> None:
    """A near-tie that float16 would merge (0.50001 against 0.50002) comes back bit for bit, in the model's
    own dtype, so the class a figure or a TA derives from the stored outputs is the class graded."""
    outputs = np.array([[0.50001, 0.50002, 0.0], [0.9, 0.05, 0.05]], dtype=dtype)
    with Gradebook(tmp_path) as book:
        evaluation = book.evaluation_by_id(store(book, outputs))
        stored = book.outputs(evaluation.id)
    assert stored.dtype == np.dtype(dtype) and np.array_equal(stored, outputs)
    assert np.array_equal(np.argmax(stored, axis=1), evaluation.predictions)
    assert evaluation.ties == {"images": 0, "classes": {}}


def test_a_schema_1_gradebook_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    """A gradebook written by the first schema (float16 outputs, no ties, a result per student) is brought up
    to date on open: its evaluations stay readable (as the float16 they were), its results become part
    'main' of their students, and new evaluations are stored exactly."""
    from grader.gradebook import MIGRATIONS, SCHEMA

    added = ("outputs_dtype TEXT", "ties TEXT", "part TEXT")  # the columns schemas 2 and 3 added
    old_schema = "\n".join(line for line in SCHEMA.splitlines() if not line.strip().startswith(added))
    old_schema = old_schema.replace("PRIMARY KEY (run_id, student_id, part)", "PRIMARY KEY (run_id, student_id)")
    assert "outputs_dtype" not in old_schema and "part TEXT" not in old_schema and {1, 2} <= set(MIGRATIONS)
    db = sqlite3.connect(tmp_path / "gradebook.sqlite")
    db.executescript(old_schema)
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.execute(
        "INSERT INTO runs (started_at, status, grader_version, assignment_name, assignment_path, assignment_sha256, "
        "heldout_source, heldout_sha256, heldout_images_sha256, heldout_size, submissions, isolation, options) "
        "VALUES ('then', 'completed', '0.1.0', 'kcl-dnn-cw1', 'p', 's', 'h', 'h', 'h', 1, 'x', 'process', '{}')"
    )
    db.execute(
        "INSERT INTO results (run_id, student_id, student_name, folder, file, sha256, status, reason, score, "
        "detail) VALUES (1, '42', 'Ada', 'Ada_42', 'm.h5', 'f', 'graded', '', 18, '{}')"
    )
    import zlib

    legacy = np.array([[0.25, 0.75]], dtype="<f2")
    db.execute(
        "INSERT INTO evaluations (sha256, images_sha256, evaluation_key, grader_version, status, reason, outputs, "
        "output_shape, created_at) VALUES ('a', 'b', 'c', 'd', 'answered', '', ?, '[1, 2]', 'now')",
        (zlib.compress(legacy.tobytes()),),
    )
    db.commit()
    db.close()
    with Gradebook(tmp_path) as book:
        assert np.array_equal(book.outputs(1), legacy)
        exact = np.array([[0.1, 0.7, 0.2]], np.float32)
        assert np.array_equal(book.outputs(store(book, exact)), exact)
        schema = book.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
        results = book.results(1)
    assert int(schema) == SCHEMA_VERSION
    assert [(row["student_id"], row["part"], row["score"]) for row in results] == [("42", "main", 18)]


def test_a_gradebook_from_a_newer_grader_is_refused(tmp_path: Path) -> None:
    """A gradebook of a schema this grader does not know stops with what to do, and is left untouched."""
    with Gradebook(tmp_path) as book:
        book.db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    with pytest.raises(GraderError, match="gradebook schema 99, this grader reads schema"):
        Gradebook(tmp_path)


def test_notes_are_appended_to_a_result(tmp_path: Path) -> None:
    """A note on a committed result joins its reason (for marks.csv) and its detail's notes."""
    with Gradebook(tmp_path) as book:
        run = book.start_run(
            grader_version="v",
            assignment_name="a",
            assignment_path="p",
            assignment_sha256="s",
            heldout_source="h",
            heldout_sha256="h",
            heldout_images_sha256="h",
            heldout_size=1,
            submissions="x",
            isolation="process",
            options={},
        )
        row = {
            "student_id": "1",
            "student_name": "",
            "folder": "1",
            "file": "m.h5",
            "sha256": "",
            "status": "graded",
            "reason": "",
            "detail": {},
        }
        book.add_result(run, row)
        book.note_result(run, "1", ["report: could not be written (OSError())"])
        book.note_result(run, "1", ["figure: x"])
        result = book.results(run)[0]
    assert result["reason"] == "report: could not be written (OSError()); figure: x"
    assert result["detail"]["notes"] == ["report: could not be written (OSError())", "figure: x"]
    assert json.dumps(result["detail"])


def test_a_reader_opens_read_only_and_never_waits_for_the_writer(tmp_path: Path) -> None:
    """While a run holds the gradebook (its lock, and a write transaction open), a reader opens it read-only
    without waiting, sees what was committed, and cannot write."""
    with Gradebook(tmp_path) as writer:
        exact = np.array([[0.1, 0.9]], np.float32)
        stored = store(writer, exact)
        writer.db.execute("BEGIN IMMEDIATE")
        writer.db.execute("UPDATE meta SET value = value WHERE key = 'schema'")
        with Gradebook.reading(tmp_path) as reader:
            assert np.array_equal(reader.outputs(stored), exact)
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reader.db.execute("DELETE FROM evaluations")
        writer.db.execute("COMMIT")


def test_a_finished_run_leaves_only_the_gradebook_and_its_readers_add_no_files(tmp_path: Path) -> None:
    """A run's WAL files go when it closes, readers after it add none (SQLite makes -wal and -shm for a reader
    of a WAL database, which read-only cannot remove), and the next run writes in WAL again."""
    with Gradebook(tmp_path) as writer:
        store(writer, np.array([[0.1, 0.9]], np.float32))
        assert (tmp_path / "gradebook.sqlite-wal").exists()
        with Gradebook.reading(tmp_path) as reader:  # a reader during the run keeps it in WAL: nothing lost
            assert reader.db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 1
    with Gradebook.reading(tmp_path) as reader:
        assert reader.db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gradebook.lock", "gradebook.sqlite"]
    with Gradebook(tmp_path) as writer:
        assert writer.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_alignments_are_kept_exactly_and_a_reader_keeps_none(tmp_path: Path) -> None:
    """A pair's matching comes back as it was stored (floats exactly, by revision); a reader asks for it and keeps
    nothing new; a gradebook without the table answers None."""
    layers = [[0, 0.1 + 0.2, True, 50176], [1, 1 / 3, False, 640]]
    with Gradebook(tmp_path) as book:
        book.add_alignment("a" * 64, "b" * 64, "1.1", layers)
        assert book.alignment("a" * 64, "b" * 64, "1.1") == layers
        assert book.alignment("b" * 64, "a" * 64, "1.1") is None
        assert book.alignment("a" * 64, "b" * 64, "1.2") is None
    with Gradebook.reading(tmp_path) as reader:
        assert reader.alignment("a" * 64, "b" * 64, "1.1") == layers
        reader.add_alignment("c" * 64, "d" * 64, "1.1", layers)
        assert reader.alignment("c" * 64, "d" * 64, "1.1") is None
    db = sqlite3.connect(tmp_path / "gradebook.sqlite")
    db.execute("DROP TABLE alignments")
    db.commit()
    db.close()
    with Gradebook.reading(tmp_path) as reader:
        assert reader.alignment("a" * 64, "b" * 64, "1.1") is None


def test_a_reader_refuses_an_older_gradebook_and_names_the_command_that_upgrades_it(tmp_path: Path) -> None:
    """A reader never migrates: a gradebook of an older schema is refused with `grade upgrade`, left untouched,
    and readable once upgraded."""
    from click.testing import CliRunner

    from grader.cli import cli

    with Gradebook(tmp_path) as book:
        book.db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION - 1),))
    with pytest.raises(GraderError, match=f"bring it up to date with `grade upgrade {tmp_path}`"):
        Gradebook.reading(tmp_path)
    with sqlite3.connect(tmp_path / "gradebook.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(SCHEMA_VERSION - 1)
    done = CliRunner().invoke(cli, ["upgrade", str(tmp_path)], catch_exceptions=False)
    assert done.exit_code == 0 and f"schema {SCHEMA_VERSION}" in done.output
    Gradebook.reading(tmp_path).close()


@pytest.mark.parametrize(
    ("folder", "refused"),
    [
        ("/mnt/share/course/reports", "nfs4"),
        ("/home/ta/reports", ""),
        ("/mnt/sshfs/reports", "fuse.sshfs"),
        ("/mnt/shared-not/reports", ""),
    ],
)
def test_a_gradebook_on_a_network_file_system_is_refused(folder: str, refused: str) -> None:
    """The mount holding the folder decides (as /proc/mounts lists them, longest prefix first): on NFS, SMB or
    sshfs the gradebook is refused with why (SQLite's WAL mode does not work there); a local disk is taken."""
    from grader.gradebook import file_system, local_disk

    mounts = [("/", "ext4"), ("/home", "ext4"), ("/mnt/share", "nfs4"), ("/mnt/sshfs", "fuse.sshfs")]
    assert file_system(Path(folder), mounts) == (refused or "ext4")
    if refused:
        with pytest.raises(GraderError, match=f"network file system \\({refused}\\).*WAL mode, which does not work"):
            local_disk(Path(folder), mounts)
    else:
        local_disk(Path(folder), mounts)
