"""`grade assignments`: the assignment files grader can load by name, and where each came from."""

from __future__ import annotations

from grader.cli.base import cli, reported


@cli.command("assignments")
def assignments_command() -> None:
    """List the assignment files grader ships and installed packages register, with what each one grades and
    where it came from.

    \b
    Example:
        grade assignments
        grade submissions/ --assignment uva-lab1
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from grader.courseworks.assignment import load_assignment
    from grader.courseworks.catalogue import catalogue

    table = Table(title="assignments (pass one with --assignment NAME)", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("parts")
    table.add_column("description", overflow="fold", ratio=1)
    table.add_column("from")
    with reported():
        found = catalogue()
    for name, sources in sorted(found.items()):
        for source in sources:
            with reported():
                rules = load_assignment(source.path)
            parts = ", ".join(part.name for part in rules.parts) if not rules.single else "one model"
            clash = f" (the name is taken {len(sources)} times: pass the path)" if len(sources) > 1 else ""
            table.add_row(escape(name), escape(parts), escape(rules.description), escape(source.origin + clash))
    Console().print(table)
