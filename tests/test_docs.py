"""The documentation site: the assignment-file reference is the schema's, and the KCL tutorial, followed word for
word on the demo cohort, ends with the marks it shows."""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.courseworks import schema

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_the_assignment_reference_lists_every_key_the_validator_accepts_and_no_other() -> None:
    """The page's table is generated from the schema the validator reads: a key added to one and not the other
    fails here (and test_assignment ties the schema's keys to the parser's)."""
    listed = re.findall(r"^\| `([^`]+)` \|", schema.reference(), flags=re.M)
    assert len(listed) == len(set(listed))
    assert set(listed) == schema.keys()
    sys.path.insert(0, str(DOCS))
    try:
        import hooks
    finally:
        sys.path.remove(str(DOCS))
    page = (DOCS / "assignment-files.md").read_text()
    assert hooks.MARKER in page
    assert schema.reference() in hooks.on_page_markdown(page, None, None, None)


def test_every_page_is_in_the_navigation_and_every_link_in_the_readme_resolves() -> None:
    """mkdocs.yml names every page (the strict build also refuses one left out), and the README's links into the
    site point at files that exist."""
    navigation = (ROOT / "mkdocs.yml").read_text()
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    assert {page for page in pages if page not in navigation} == set()
    for target in re.findall(r"\]\(((?:docs/)?[\w/.-]+\.md)(?:#[\w-]+)?\)", (ROOT / "README.md").read_text()):
        assert (ROOT / target).is_file(), target


def _commands(page: Path) -> list[str]:
    """The commands a tutorial shows (`$ ` lines, continued by a trailing backslash), in order."""
    commands, current = [], ""
    for line in page.read_text().splitlines():
        if line.startswith("$ ") or current:
            current += line.removeprefix("$ ").rstrip("\\").strip() + " "
            if not line.endswith("\\"):
                commands.append(current.strip())
                current = ""
    return commands


@pytest.mark.tensorflow
@pytest.mark.own_workers
def test_the_kcl_tutorial_followed_word_for_word_ends_with_the_marks_it_shows(tmp_path: Path, bubblewrap) -> None:
    """Every command of the KCL tutorial, run as written from the top of a clone (the demo cohort, the demo
    held-out set and the scripts), and marks.csv then holds the rows the tutorial prints."""
    for name in ("submissions", "heldout", "scripts"):
        shutil.copytree(ROOT / name, tmp_path / name)
    page = DOCS / "tutorials" / "kcl-cw1.md"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in _commands(page):
        if command.startswith(("head ", "cat ")):
            continue
        done = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    shown = re.search(r"```text\n(student_id,student_name,status,accuracy,score\n.*?)```", page.read_text(), re.S)
    assert shown is not None
    with open(tmp_path / "demo" / "moodle" / "reports" / "marks.csv", newline="") as handle:
        produced = [
            ",".join(row[key] for key in ("student_id", "student_name", "status", "accuracy", "score"))
            for row in csv.DictReader(handle)
        ]
    assert produced == shown.group(1).strip().splitlines()[1:]
    upload = (tmp_path / "demo" / "moodle" / "upload.csv").read_text()
    assert "Participant 100002,Alan Turing,alan.turing@example.ac.uk,Submitted for grading,18,20.00," in upload
