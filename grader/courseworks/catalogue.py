"""The assignment files grader loads by name: its own (grader/courseworks/*.toml) and those a course's package
registers in the entry-point group `grader.courseworks`, each entry point naming a package whose folder holds
TOML files:

    [project.entry-points."grader.courseworks"]
    toycourse = "toycourse.courseworks"

grader registers its own folder the same way (and falls back to it when it runs uninstalled). A name is the file's
name without .toml; two packages giving the same name is an error when that name is asked for, naming both.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from grader.errors import AssignmentError

ENTRY_POINTS = "grader.courseworks"
OWN = "grader.courseworks"
"grader's own folder of assignment files, as pyproject.toml registers it."


@dataclass(frozen=True)
class Source:
    """Where one assignment file came from."""

    path: Path
    origin: str
    "The distribution that registered it and its version ('grader 0.1.0', 'toycourse 0.1')."


def catalogue() -> dict[str, tuple[Source, ...]]:
    """Every registered assignment file by name, grader's own first (a name two packages use has two)."""
    packages: dict[str, str] = {}
    for point in metadata.entry_points(group=ENTRY_POINTS):
        dist = point.dist
        packages.setdefault(point.value, f"{dist.name} {dist.version}" if dist is not None else point.value)
    own = packages.pop(OWN, None) or _own_origin()
    found: dict[str, tuple[Source, ...]] = {}
    for package, origin in [(OWN, own), *sorted(packages.items())]:
        for path in _tomls(package, origin):
            found[path.stem] = (*found.get(path.stem, ()), Source(path, origin))
    return found


def lookup(name: str) -> Path | None:
    """The registered assignment file of this name, or None when no package registers one."""
    sources = catalogue().get(name, ())
    if len(sources) > 1:
        where = "; ".join(f"{source.origin} ({source.path})" for source in sources)
        raise AssignmentError(
            f"{name}: {len(sources)} installed packages register an assignment of this name ({where}): "
            "pass the file's path with --assignment, or uninstall one"
        )
    return sources[0].path if sources else None


def _tomls(package: str, origin: str) -> list[Path]:
    try:
        folder = resources.files(package)
    except (ImportError, TypeError) as error:
        raise AssignmentError(
            f"{origin} registers assignment files in {package!r} (entry-point group {ENTRY_POINTS}), which "
            f"cannot be imported ({error}): reinstall it or remove it"
        ) from None
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml"))


def _own_origin() -> str:
    try:
        return f"grader {metadata.version('grader')}"
    except metadata.PackageNotFoundError:
        return "grader (not installed)"
