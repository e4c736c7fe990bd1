"""The project's front door: the README's two commands, CI running the second, the demo cohort."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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
    # The tests, then the documentation site, every warning an error.
    assert test.endswith(".venv/bin/pytest && .venv/bin/mkdocs build --strict") and "dev.lock" in test
    before = (ROOT / "README.md").read_text().split("```sh")[0]
    assert "```" not in before


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs the README's second command verbatim."""
    script = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in script.splitlines()


def test_demo_cohort_is_named_as_moodle_names_it() -> None:
    """submissions/ holds 6-8 Moodle folders covering the cases the README lists."""
    found = discover_submissions(ROOT / "submissions", ("keras-h5",))
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


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalised as PyPI compares names."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()


def _locked(path: Path) -> dict[str, tuple[str, set[str]]]:
    """A uv lock file: each pinned distribution, its version, and what it is there for ('# via')."""
    entries: dict[str, tuple[str, set[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if pinned:
            current = _name(pinned.group(1))
            entries[current] = (pinned.group(2), set())
        elif current and (via := re.match(r"^\s+#\s+(?:via\s+)?(\S.*)$", line)) and via.group(1) != "via":
            entries[current][1].add(via.group(1).strip())
    return entries


def _declared() -> tuple[dict[str, str], dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    run = {_name(item): item for item in project["dependencies"]}
    dev = {_name(item): item for item in project["optional-dependencies"]["dev"]}
    return run, dev


@pytest.mark.parametrize(("lock", "extras"), [("run.lock", False), ("dev.lock", True)])
def test_lock_files_pin_exactly_what_pyproject_declares(lock: str, extras: bool) -> None:
    """Each lock file's direct requirements are pyproject.toml's dependencies (plus the dev extra for
    dev.lock), no more and no fewer, and every pinned version satisfies its declared range."""
    from packaging.requirements import Requirement

    run, dev = _declared()
    declared = {**run, **(dev if extras else {})}
    locked = _locked(ROOT / "requirements" / lock)
    direct = {name for name, (_, via) in locked.items() if "grader (pyproject.toml)" in via}
    assert direct == set(declared)
    for name, requirement in declared.items():
        assert Requirement(requirement).specifier.contains(locked[name][0], prereleases=True), (name, locked[name])


def test_every_imported_library_is_declared_and_every_declared_one_imported() -> None:
    """grader imports no third-party module that pyproject.toml leaves undeclared, and declares no runtime
    dependency that grader never imports."""
    import ast
    from importlib.metadata import packages_distributions

    imported = set()
    for path in (ROOT / "grader").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"grader", "__future__"}
    providers = packages_distributions()
    used = {_name(providers[module][0]) for module in third_party if module in providers}
    assert third_party - set(providers) <= {"msvcrt"}  # Windows-only standard library
    run, _ = _declared()
    assert used - set(run) == set(), "imported but not declared"
    assert set(run) - used == set(), "declared but never imported"


def _import_cycles() -> list[set[str]]:
    """The cycles among grader's modules, read from their syntax trees: every import counts, at the top or
    inside a function (an import moved into a function hides a cycle from Python, not from a reader)."""
    import ast

    modules = {}
    for path in (ROOT / "grader").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("grader."):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    graph[name].add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names if alias.name.startswith("grader."))
        graph[name].discard(name)  # run as a script (python -m), a module may import itself by name
    reach: dict[str, set[str]] = {}
    for start in graph:  # every module each one reaches (the package is small)
        seen, todo = set(), [start]
        while todo:
            for target in graph.get(todo.pop(), ()):
                if target in modules and target not in seen:
                    seen.add(target)
                    todo.append(target)
        reach[start] = seen
    cycles: list[set[str]] = []
    for name in sorted(graph):
        if name in reach[name] and not any(name in cycle for cycle in cycles):
            cycles.append({other for other in reach[name] if name in reach[other]})
    return cycles


def test_grader_s_modules_import_each_other_without_cycles() -> None:
    """No import cycle among grader's modules: a model format's reader lives in grader/formats/ and imports
    nothing that imports it back; presentation imports the domain, never the other way round."""
    assert _import_cycles() == []
