"""The documentation site: the assignment-file reference is the schema's, and each tutorial, followed word for
word on its demo cohort, shows what the page shows and ends with the file it shows."""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from grader.courseworks import schema

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SHARED = ROOT.parent / "shared"


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


@dataclass
class Step:
    """A command a tutorial shows (empty for a block that only shows a file), and the lines it shows after it."""

    command: str
    shown: list[str] = field(default_factory=list)


def steps(page: Path) -> list[Step]:
    """A tutorial's steps, in order: each `$ ` line of a text block (continued by a trailing backslash) and the
    lines shown under it; each line of a sh block; a text block with no command (a file's rows) as a Step of
    its own."""
    found: list[Step] = []
    block: str | None = None
    current = ""
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            block = line[3:].strip() if block is None else None
            if block is not None and block != "sh":
                found.append(Step(""))
            continue
        if block is None:
            continue
        if line.startswith("$ ") or block == "sh" or current:
            current += line.removeprefix("$ ").rstrip("\\").strip() + " "
            if not line.endswith("\\"):
                found.append(Step(current.strip()))
                current = ""
        else:
            found[-1].shown.append(line)
    return [step for step in found if step.command or step.shown]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _appears(shown: list[str], output: str) -> list[str]:
    """The shown lines (in runs between `...` lines, whitespace as the terminal wrapped it) that the output does
    not hold; a run's time (`in 13.3 s`) may differ."""
    runs, run = [], []
    for line in [*shown, "..."]:
        if line.strip() == "...":
            if run:
                runs.append(_flat("\n".join(run)))
            run = []
        else:
            run.append(line)
    flat = _flat(output)
    missing = []
    for text in runs:
        pattern = r"[\d.]+".join(re.escape(part) for part in re.split(r"(?<=in )[\d.]+(?= s\.)", text))
        if not re.search(pattern, flat):
            missing.append(text)
    return missing


def follow(page: Path, clone: Path) -> None:
    """Run a tutorial word for word in `clone` (a copy of the repository's top): every command must succeed;
    what the page shows under a command must be in its output; what it shows under `cat` or `head -N` must be
    the file's lines exactly; a block of marks.csv rows must be the first columns of the last run's marks.csv."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "200",
    }
    out = None
    for step in steps(page):
        words = shlex.split(step.command)
        if not words:
            assert out is not None and step.shown[0].startswith("student_id,"), step.shown[:1]
            columns = step.shown[0].split(",")
            with open(clone / out / "marks.csv", newline="") as handle:
                produced = [",".join(row[key] for key in columns) for row in csv.DictReader(handle)]
            assert produced == step.shown[1:], page.name
            continue
        if words[0] in ("cat", "head"):
            lines = (clone / words[-1]).read_text().splitlines()
            wanted = int(words[1].removeprefix("-")) if words[0] == "head" else len(lines)
            assert lines[:wanted] == step.shown, f"{page.name}: {step.command}"
            continue
        done = subprocess.run(words, cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
        said = done.stdout + done.stderr
        assert done.returncode == 0, f"{page.name}: {step.command}\n{said[-3000:]}"
        assert _appears(step.shown, said) == [], f"{page.name}: {step.command}\n{said[-3000:]}"
        if words[0] == "grade" and "--out" in words and words[1] not in ("check", "export"):
            out = words[words.index("--out") + 1]


def _clone(tmp_path: Path) -> Path:
    """What a fresh clone holds that the tutorials read (the demo cohort and held-out set, the scripts and the
    test builders some of them use), with ../shared beside it when this checkout has it."""
    clone = tmp_path / "clone"
    for name in ("submissions", "heldout", "scripts", "tests"):
        shutil.copytree(ROOT / name, clone / name, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED)
    return clone


def test_a_tutorial_is_read_as_its_commands_and_what_each_shows(tmp_path: Path) -> None:
    """The reader of the tutorials, on a page written for it: commands with their continuations, the lines shown
    under each, and a block of rows on its own."""
    page = tmp_path / "page.md"
    page.write_text(
        "Intro\n\n```sh\npython make.py --a 1 \\\n    --b 2\n```\n\n```text\n$ grade x --out r\n...\n"
        "2 graded, in 1.5 s.\n$ cat r/a.csv\nid,mark\n1,2\n```\n\n```text\nstudent_id,score\n1,2\n```\n"
    )
    assert steps(page) == [
        Step("python make.py --a 1 --b 2"),
        Step("grade x --out r", ["...", "2 graded, in 1.5 s."]),
        Step("cat r/a.csv", ["id,mark", "1,2"]),
        Step("", ["student_id,score", "1,2"]),
    ]
    assert _appears(["...", "2 graded, in 1.5 s."], "lots\n2   graded, in\n13.0 s.\n") == []
    assert _appears(["3 graded"], "2 graded") == ["3 graded"]


@pytest.mark.tensorflow
@pytest.mark.own_workers
def test_the_kcl_tutorial_followed_word_for_word_ends_with_the_marks_it_shows(tmp_path: Path, bubblewrap) -> None:
    """Every command of the KCL tutorial, run as written from the top of a clone (the demo cohort, the demo
    held-out set and the scripts), shows what the page shows, and marks.csv then holds the rows it prints."""
    clone = _clone(tmp_path)
    follow(DOCS / "tutorials" / "kcl-cw1.md", clone)
    upload = (clone / "demo" / "moodle" / "upload.csv").read_text()
    assert "Participant 100002,Alan Turing,alan.turing@example.ac.uk,Submitted for grading,18,20.00," in upload


@pytest.mark.tensorflow
@pytest.mark.own_workers
@pytest.mark.tutorial
@pytest.mark.parametrize("page", ["oxford-practical3.md", "kit-ex9.md", "syde522-a4.md", "uva-lab1.md"])
def test_each_tutorial_built_from_shared_data_ends_with_the_file_it_shows(page: str, tmp_path: Path, bubblewrap):
    """The four tutorials whose demo cohorts are trained from ../shared/data (minutes each: `pytest -m tutorial`),
    followed word for word from the top of a clone: the demo build, the platform's download, grading and the
    export, each showing what the page shows, down to the file the platform imports."""
    if not (SHARED / "data" / "mnist.npz").is_file():
        pytest.skip(f"{SHARED / 'data'} is absent: the demo cohorts of these tutorials are trained from it")
    follow(DOCS / "tutorials" / page, _clone(tmp_path))
