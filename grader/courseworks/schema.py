"""The assignment file's declared schema (assignment.schema.json, JSON Schema 2020-12), and its errors in the words
grader's messages use: the file, the key, what is wrong and the fix.

The schema declares every key, its type, its choices and its range, which keys a table must have, and that no
other key is taken; an editor that reads JSON Schema checks a TOML file against it as it is written. What one key
means for another (a band's score within the part's max_score, a mean per channel) is checked by
grader.courseworks.assignment once the file is valid here. Two annotations are grader's own: `x-missing` (what a
missing key's message adds) and `x-invalid` (what a value that does not fit is told, `{value}` standing for it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

SCHEMA_FILE = Path(__file__).with_name("assignment.schema.json")
TYPE_NAMES = {"integer": "int", "number": "int or float", "string": "str", "array": "list", "object": "dict"}


@cache
def schema() -> dict[str, Any]:
    """The schema, as declared in assignment.schema.json."""
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def problem(document: dict[str, Any]) -> str:
    """What is wrong with the document, in grader's words ('limits.max_file_bytes is missing: give ...'), the first
    thing in the file's own order; '' when it fits the schema."""
    errors = list(_validator().iter_errors(document))
    if not errors:
        return ""
    first = min(errors, key=lambda error: _place(document, error))
    return _describe(document, first)


def _describe(document: dict[str, Any], error: ValidationError) -> str:
    path = list(error.absolute_path)
    instance = error.instance
    if error.validator == "required":
        missing = next(key for key in error.validator_value if key not in instance)
        declared = error.schema.get("properties", {}).get(missing, {})
        return f"{_dotted([*path, missing])} is missing{declared.get('x-missing', '')}"
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        extra = next(key for key in instance if key not in known)
        return f"{_dotted([*path, extra])} is not a known key; known keys here: {', '.join(known)}"
    owner_path, owner = _owner(document, path)
    # The schema that says what to write: the failing key's own, or its list's when an item of a list of values
    # (a shape's number) fails; a key inside a table of a list of tables speaks for itself.
    inside_list = owner is not None and all(isinstance(step, int) for step in path[len(owner_path) :])
    if owner is not None and inside_list and (error.validator != "type" or len(owner_path) < len(path)):
        value = _at(document, owner_path)
        return f"{_dotted(owner_path)} {owner['x-invalid'].format(value=value)}"
    if error.validator == "type":
        expected = error.validator_value
        if expected == "boolean":
            return f"{_dotted(path)} must be true or false, not {instance!r}"
        given = f"{type(instance).__name__} ({instance!r})"
        return f"{_dotted(path)} must be of type {TYPE_NAMES.get(expected, expected)}, not {given}"
    if error.validator == "enum":
        return f"{_dotted(path)} is {instance!r}; choose one of: {', '.join(error.validator_value)}"
    return f"{_dotted(path)} is {instance!r}, which it cannot be ({error.message})"


def _owner(document: dict[str, Any], path: list[Any]) -> tuple[list[Any], dict[str, Any] | None]:
    """The deepest schema along the path that says what a value that does not fit is told (x-invalid)."""
    found: tuple[list[Any], dict[str, Any] | None] = ([], None)
    for depth, declared in enumerate(_chain(document, path)):
        if "x-invalid" in declared:
            found = (path[:depth], declared)
    return found


def _chain(document: Any, path: list[Any]) -> Iterator[dict[str, Any]]:
    """The schema that applies at each step of the path: the root's, then each key's or item's in turn."""
    instance = document
    declared = _resolve(schema(), instance)
    yield declared
    for step in path:
        declared = _resolve(declared, instance)
        declared = declared.get("items", {}) if isinstance(step, int) else declared.get("properties", {}).get(step, {})
        instance = instance[step]
        declared = _resolve(declared, instance)
        yield declared


def _resolve(declared: dict[str, Any], instance: Any) -> dict[str, Any]:
    """A schema with its reference followed and its if/then/else chosen for this instance."""
    declared = _resolve_ref(declared)
    while "if" in declared:
        branch = "then" if Draft202012Validator(declared["if"]).is_valid(instance) else "else"
        rest = {key: value for key, value in declared.items() if key not in ("if", "then", "else")}
        declared = {**_resolve_ref(declared.get(branch, {})), **rest}
    return declared


def _place(document: dict[str, Any], error: ValidationError) -> tuple[int, ...]:
    """Where an error is in the order grader reads a file: each key by its place in the schema (which declares
    them in that order), a list's items by their number, a missing key where it is declared and an unknown key
    after every known one."""
    path = list(error.absolute_path)
    chain = list(_chain(document, path))  # the schema holding each step, then the one at the error
    place = [
        step if isinstance(step, int) else _order(declared, step) for step, declared in zip(path, chain, strict=False)
    ]
    if error.validator == "required":
        missing = next(key for key in error.validator_value if key not in error.instance)
        place += [_order(chain[-1], missing), -1]  # where it is declared, before that table's other errors
    elif error.validator == "additionalProperties":
        place.append(len(error.schema.get("properties", {})) + 1)
    return tuple(place)


def _order(declared: dict[str, Any], key: str) -> int:
    names = list(declared.get("properties", {}))
    return names.index(key) if key in names else len(names)


def _at(document: Any, path: list[Any]) -> Any:
    for step in path:
        document = document[step]
    return document


def _dotted(path: list[Any]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def keys() -> set[str]:
    """Every key the schema declares, as a dotted path with [] for a list's items ('parts[].data.classes')."""
    return set(_declarations())


def declared(key: str) -> dict[str, Any]:
    """The schema of one key, named as keys() names it."""
    return _declarations()[key]


def reference() -> str:
    """Every key an assignment file may hold, as a Markdown table in the order the schema declares them: its
    type, what it means, and the values it takes (the documentation's reference is this, so the page and the
    validator cannot disagree)."""
    lines = ["| key | type | meaning | values |", "|---|---|---|---|"]
    for key, declared in _declarations().items():
        meaning = _cell(declared.get("description", ""))
        lines.append(f"| `{key}` | {_type(declared)} | {meaning} | {_values(declared)} |")
    return "\n".join(lines) + "\n"


def _type(declared: dict[str, Any]) -> str:
    kinds: Any = declared.get("type", "")
    if isinstance(kinds, list):
        return " or ".join(TYPE_NAMES.get(str(kind), str(kind)) for kind in kinds)
    if kinds == "array" and isinstance(declared.get("items"), dict) and "type" in declared["items"]:
        return f"list of {_type(declared['items'])}"
    if not kinds and "oneOf" in declared:
        return " or ".join(_type(option) for option in declared["oneOf"])
    return TYPE_NAMES.get(str(kinds), str(kinds))


def _values(declared: dict[str, Any]) -> str:
    said = []
    if "enum" in declared:
        said.append("one of " + ", ".join(f"`{value}`" for value in declared["enum"]))
    if "const" in declared:
        said.append(f"`{declared['const']}`")
    for word, bound in (("at least", "minimum"), ("above", "exclusiveMinimum"), ("at most", "maximum")):
        if bound in declared:
            said.append(f"{word} {declared[bound]}")
    if "default" in declared:
        said.append(f"default `{declared['default']}`")
    if "pattern" in declared:
        said.append(f"matching `{declared['pattern']}`")
    return _cell("; ".join(said))


def _cell(text: str) -> str:
    """Text as one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


@cache
def _declarations() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def walk(declared: dict[str, Any], prefix: str) -> None:
        declared = _resolve_ref(declared)
        for branch in ("then", "else"):  # a part is a model part or a code part: both declare keys
            if branch in declared:
                walk(declared[branch], prefix)
        for name, value in declared.get("properties", {}).items():
            dotted = f"{prefix}.{name}" if prefix else name
            value = _resolve_ref(value)
            found[dotted] = value
            walk(value, dotted)
            if "items" in value:
                walk(value["items"], f"{dotted}[]")

    walk(schema(), "")
    return found


def _resolve_ref(declared: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in declared:
        target: Any = schema()
        for part in declared["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        declared = {**target, **{key: value for key, value in declared.items() if key != "$ref"}}
    return declared
