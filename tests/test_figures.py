"""The figures say what the mark counted: a near-tie is labelled with the class graded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grader.outputs import figures


def test_the_coursework_figure_labels_the_predicted_class_the_mark_counted(tmp_path: Path) -> None:
    """Where the outputs drawn would give another argmax than the stored prediction (a near-tie rounded for
    drawing, or predicted again alone), 'Pred:' shows the stored prediction: a figure never contradicts a
    mark."""
    import matplotlib

    images = np.zeros((3, 28, 28), np.uint8)
    labels = np.array([0, 1, 2])
    predicted = np.array([1, 0, 2])  # image 0 graded as 1, image 1 graded as 0
    outputs = np.array([[0.5, 0.5, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]], np.float32)  # argmax of row 0 is 0
    target = tmp_path / "figure.svg"
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text, so the test can read it
        shown = figures.coursework_figure(images, labels, predicted, outputs, str(target))
    assert shown == [(0, 0, 1), (1, 1, 0)]
    svg = target.read_text()
    assert svg.count("Pred: 1") == 1 and svg.count("Pred: 0") == 1 and "True: 0" in svg


def test_the_report_figure_labels_the_predicted_class_too() -> None:
    """The HTML report's SVG figure labels each misclassified image with the stored prediction."""
    images = np.zeros((2, 28, 28), np.uint8)
    svg = figures.misclassified(images, np.array([0, 1]), np.array([1, 1]), np.array([[0.5, 0.5], [0.2, 0.8]]))
    assert svg is not None and "Pred: 1" in svg and "True: 0" in svg and "Pred: 0" not in svg
