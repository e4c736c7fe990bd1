"""integrity.csv and integrity.html: each flagged pair with its evidence, strongest first."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from grader.courseworks.assignment import Assignment
from grader.courseworks.heldout import HeldoutSet
from grader.evidence import Evidence
from grader.marking import integrity
from grader.outputs import figures
from grader.outputs.reports import student_folder, template, write_whole

CSV_COLUMNS = ("part", "kind", "first", "first_name", "second", "second_name", "evidence", "strength")
SHOWN_IMAGES = 12
"Images shown per shared-mistakes finding."


def integrity_csv(evidence: Evidence) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for part, found in evidence.findings.items():
        names = evidence.networks[part]
        for finding in found:
            writer.writerow(
                [
                    part,
                    finding.kind,
                    finding.first,
                    names[finding.first].label,
                    finding.second,
                    names[finding.second].label,
                    finding.summary,
                    f"{finding.strength:.6g}",
                ]
            )
    return buffer.getvalue()


def integrity_html(evidence: Evidence, rules: Assignment, heldouts: Mapping[str, HeldoutSet]) -> str:
    sections = []
    for part in rules.model_parts:
        found = evidence.findings.get(part.name, [])
        names = evidence.networks.get(part.name, {})
        heldout = heldouts.get(part.name)
        rows = []
        for finding in found:
            picture = None
            if finding.images and heldout is not None:
                shown = list(finding.images[:SHOWN_IMAGES])
                given = names[finding.first].predictions
                picture = figures.shared_mistakes(
                    heldout.images[shown],
                    heldout.labels[shown],
                    np.asarray(given)[shown] if given is not None else heldout.labels[shown],
                    part.data.names,
                    shown,
                )
            rows.append(
                {
                    "finding": finding,
                    "first": _network(names[finding.first]),
                    "second": _network(names[finding.second]),
                    "picture": picture,
                }
            )
        sections.append({"part": part, "rows": rows, "compared": len(names)})
    return template("integrity.html.j2").render(
        assignment=rules,
        sections=sections,
        evidence=evidence,
        settings={
            "derived": integrity.DERIVED_SIMILARITY,
            "false_alarm": integrity.FALSE_ALARM,
            "margin": integrity.SHARED_MARGIN,
        },
    )


def _network(network: integrity.Network) -> dict[str, Any]:
    link = None if network.library else f"{student_folder(network.key)}/report.html"
    return {"label": network.label, "link": link, "library": network.library}


def write_integrity(evidence: Evidence, out: Path, rules: Assignment, heldouts: Mapping[str, HeldoutSet]) -> list[str]:
    """Write integrity.csv, then integrity.html; return what could not be written (never raise)."""
    problems = []
    try:
        write_whole(out / "integrity.csv", integrity_csv(evidence))
    except Exception as error:  # evidence is advice: the marks stand without it
        problems.append(f"integrity.csv could not be written: {error!r}")
    try:
        write_whole(out / "integrity.html", integrity_html(evidence, rules, heldouts))
    except Exception as error:
        problems.append(f"integrity.html could not be written: {error!r}")
    return problems
