"""The one way shapes are written, in messages, reports and pages."""

from __future__ import annotations

from grader.shapes import shape_text


def test_shapes_are_written_as_python_and_keras_print_them() -> None:
    assert shape_text([None, 28, 28, 1]) == "(None, 28, 28, 1)"
    assert shape_text((784,)) == "(784,)"
    assert shape_text([3000, 784]) == "(3000, 784)"
    assert shape_text(None) == "-" and shape_text([]) == "-"
    assert shape_text(None, "unknown") == "unknown"
    assert shape_text("a list of inputs") == "a list of inputs"
