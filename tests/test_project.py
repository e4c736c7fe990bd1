"""The project's front door: the README's two commands, CI running the second, the demo cohort."""

from __future__ import annotations

import re
import subprocess

from grader.discovery import discover_submissions

from .conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_readme_opens_with_two_commands() -> None:
    """The README's first two code blocks are the demo command and the test command, nothing else before."""
    commands = readme_commands()
    assert len(commands) >= 2
    demo, test = commands[:2]
    assert demo.endswith(".venv/bin/grade submissions/") and "run.lock" in demo
    assert test.endswith(".venv/bin/pytest") and "dev.lock" in test
    before = (ROOT / "README.md").read_text().split("```sh")[0]
    assert "```" not in before


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs the README's second command verbatim."""
    script = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in script.splitlines()


def test_demo_cohort_is_named_as_moodle_names_it() -> None:
    """submissions/ holds 6-8 Moodle folders covering the cases the README lists."""
    found = discover_submissions(ROOT / "submissions")
    assert 6 <= len(found) <= 8
    assert all(s.folder.endswith("_assignsubmission_file_") and s.student_name for s in found)
    problems = {s.student_name: s.problem for s in found if s.chosen is None}
    assert list(problems) == ["Donald Knuth"]
    assert any(len([f for f in s.files if f.name.endswith(".h5")]) == 2 for s in found)


def test_a_private_heldout_set_is_ignored_by_git(tmp_path) -> None:
    """Only the demo set and its README are tracked in heldout/: git ignores an instructor's own set."""
    private = ROOT / "heldout" / "my_testset.npz"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(private)], cwd=ROOT, check=False)
    assert ignored.returncode == 0
    demo = subprocess.run(
        ["git", "check-ignore", "-q", str(ROOT / "heldout" / "demo-mnist-test-3000.npz")], cwd=ROOT, check=False
    )
    assert demo.returncode == 1


def test_changelog_keeps_an_unreleased_section() -> None:
    """CHANGELOG.md follows Keep a Changelog with Unreleased on top."""
    text = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(r"^## \[Unreleased\]", text, re.MULTILINE)
    assert text.index("## [Unreleased]") < text.index("### Added")
