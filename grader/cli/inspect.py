"""`grade inspect`: what a model file holds, read without running anything in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from grader.cli.base import OUTCOME_STYLES, assignment_option, cli, reported


@cli.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@assignment_option
@click.option("--json", "as_json", is_flag=True, help="Print the inspection as JSON.")
def inspect_command(file: Path, assignment: str | None, as_json: bool) -> None:
    """Show what a model file (.h5, .keras or .onnx) holds, read without running anything in it.

    \b
    Example:
        grade inspect submissions/Alice*/model.h5
    """
    from grader.checking import inspect_one
    from grader.courseworks.assignment import load_assignment

    with reported():
        rules = load_assignment(assignment)
        inspection, checks = inspect_one(file, rules)
    if as_json:
        click.echo(json.dumps({"inspection": inspection, "checks": [c.to_json() for c in checks]}, indent=2))
        return
    _print_inspection(file, inspection, checks)
    spec = rules.parts[0].architecture if rules.single else None
    if inspection and spec is not None:
        from rich.console import Console

        from grader.checks.architecture_spec import compare

        print_architecture(Console(), compare(inspection.get("layer_table") or (), spec).to_json())


def _print_inspection(file: Path, inspection: dict[str, Any] | None, checks: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    facts = Table(title=str(file), show_header=False, title_justify="left")
    facts.add_column("fact", style="bold")
    facts.add_column("value", overflow="fold")
    if inspection:
        for key, label in (
            ("size", "size (bytes)"),
            ("format", "format"),
            ("keras_version", "keras_version"),
            ("backend", "backend"),
            ("model_class", "model class"),
            ("input_shape", "input shape"),
            ("output_units", "output units"),
            ("parameter_count", "parameters (stored weights)"),
            ("layer_classes", "layer classes"),
            ("producer", "exported by"),
            ("opsets", "operator sets"),
        ):
            value = inspection.get(key)
            if isinstance(value, list | tuple):
                value = ", ".join(map(str, value)) if key == "layer_classes" else str(list(value))
            facts.add_row(label, "" if value is None else f"{value:,}" if isinstance(value, int) else str(value))
        lambdas = [layer["path"] for layer in inspection.get("layers", []) if layer["class_name"] == "Lambda"]
        facts.add_row("Lambda layers", ", ".join(lambdas) or "none")
    console.print(facts)
    if inspection and inspection.get("layer_table"):
        _print_parameters(console, inspection)
    table = Table(title="checks", title_justify="left")
    for column in ("check", "outcome", "found", "what to do"):
        table.add_column(column, overflow="fold")
    for check in checks:
        style = OUTCOME_STYLES[check.outcome]
        table.add_row(check.name, f"[{style}]{check.outcome}[/]", check.message, check.advice)
    console.print(table)


def print_architecture(console: Any, comparison: dict[str, Any]) -> None:
    """The layers the coursework asks for against the model's, each difference with what to change."""
    from rich.table import Table

    from grader.shapes import shape_text

    table = Table(title=f"architecture: against {comparison['document']}'s, layer by layer", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("the model has", overflow="fold")
    table.add_column(f"{comparison['document']} asks for", overflow="fold")
    table.add_column("output shape (expected / found)", overflow="fold")
    table.add_column("what to change", overflow="fold", ratio=2)
    for row in comparison["rows"]:
        style = "" if row["outcome"] == "match" else "yellow"
        table.add_row(
            str(row["number"]) if row["number"] is not None else "-",
            row["found"] or "(none)",
            row["expected"] or "(nothing)",
            f"{shape_text(row['expected_shape'])} / {shape_text(row['found_shape'])}",
            "; ".join(row["problems"]) or "as asked",
            style=style,
        )
    console.print(table)


def _print_parameters(console: Any, inspection: dict[str, Any]) -> None:
    """Each layer's parameter count and the formula behind it, with the totals and the stored weights."""
    from rich.table import Table

    from grader.formats.keras_layers import explain_inspection
    from grader.shapes import shape_text

    explained = explain_inspection(inspection)
    assert explained is not None
    table = Table(title="parameters, layer by layer (from the config)", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("layer (class)", overflow="fold")
    table.add_column("output shape")
    table.add_column("parameters", justify="right", no_wrap=True)
    table.add_column("how", overflow="fold", ratio=2)
    for row in explained["layers"]:
        shown = shape_text(row["output_shape"])
        count = f"{row['parameters']:,}" if row["parameters"] is not None else "?"
        how = row["formula"] if row["parameters"] else ""
        table.add_row(str(row["number"]), f"{row['name']} ({row['class_name']})", shown, count, how)
    console.print(table)
    console.print(explained["sentence"])
