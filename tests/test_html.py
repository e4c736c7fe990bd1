"""The HTML reports, opened in a real headless Chromium: they render offline, with no console error,
every figure loaded, and students' names shown as text, never run as markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import build_code
from .conftest import DEMO_HELDOUT, make_cohort

pytestmark = pytest.mark.tensorflow

XSS_NAME = "<img src=x onerror=alert(1)> Mallory"


@pytest.fixture(scope="module")
def html_run(tmp_path_factory: pytest.TempPathFactory, models: Path):
    from grader.cohort import grade_cohort

    root = make_cohort(
        tmp_path_factory.mktemp("html") / "submissions",
        models,
        {
            "Ada Lovelace_100001_assignsubmission_file_": {"mlp.h5": "ada.h5"},
            f"{XSS_NAME}_100002_assignsubmission_file_": {"cnn.h5": "mallory.h5"},
            "Grace Hopper_100003_assignsubmission_file_": {"lambda.h5": "grace.h5"},
        },
    )
    return grade_cohort(root, heldout=DEMO_HELDOUT, out=root.parent / "reports")


def open_page(browser, path: Path) -> dict:
    """Load a page offline; return its console messages, requests, dialogs and images."""
    context = browser.new_context(offline=True)
    page = context.new_page()
    seen: dict = {"console": [], "requests": [], "dialogs": [], "errors": []}
    page.on("console", lambda message: seen["console"].append((message.type, message.text)))
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("request", lambda request: seen["requests"].append(request.url))
    page.on("dialog", lambda dialog: (seen["dialogs"].append(dialog.message), dialog.dismiss()))
    page.goto(path.resolve().as_uri(), wait_until="load")
    seen["images"] = page.evaluate(
        "Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0, "
        "src: i.src.slice(0, 22)}))"
    )
    # Images inside inline SVG figures: decode each one the page embeds.
    seen["svg_images"] = page.evaluate("""async () => await Promise.all(
        Array.from(document.querySelectorAll('svg image')).map(node => new Promise(done => {
            const image = new Image();
            image.onload = () => done({ok: image.naturalWidth > 0, src: image.src.slice(0, 22)});
            image.onerror = () => done({ok: false, src: image.src.slice(0, 22)});
            image.src = node.getAttribute('href');
        })))""")
    seen["text"] = page.inner_text("body")
    seen["marked_row"] = page.evaluate("(document.querySelector('tr.mine td') || {}).textContent || null")
    seen["charts"] = page.evaluate(
        "Array.from(document.querySelectorAll('svg.figure')).map(s => s.getBoundingClientRect().width)"
    )
    context.close()
    return seen


def assert_clean(seen: dict, path: Path) -> None:
    assert [m for m in seen["console"] if m[0] in ("error", "warning")] == [], path
    assert seen["errors"] == [] and seen["dialogs"] == [], path
    assert all(url.startswith(("file:", "data:")) for url in seen["requests"]), seen["requests"]
    embedded = seen["images"] + seen["svg_images"]
    assert all(image["ok"] for image in embedded), embedded
    assert all(image["src"].startswith("data:image/png;base64") for image in embedded)


def test_graded_report_renders_with_every_figure(html_run, browser) -> None:
    """A graded student's report.html: the misclassified-digits figure renders, per-class accuracy and the
    confusion matrix are tables, the
    student's Table 1 row is marked, and the page needs nothing but itself."""
    path = html_run.out / "100001" / "report.html"
    seen = open_page(browser, path)
    assert_clean(seen, path)
    # The misclassified digits (inline SVG, eight digit images); per-class and confusion are tables.
    assert seen["images"] == [] and len(seen["svg_images"]) == 8 and len(seen["charts"]) == 1
    report = json.loads((html_run.out / "100001" / "report.json").read_text())
    assert seen["marked_row"] == report["mark"]["band"]
    for text in (
        "Table 1",
        "95% confidence interval",
        "Misclassified images",
        "Confusion matrix",
        "Accuracy per class",
        "saved with",
        "file sha256",
        report["file"]["sha256"],
        report["heldout"]["sha256"],
        "more correct image",
    ):
        assert text in seen["text"], text


def test_refused_report_explains_without_figures(html_run, browser) -> None:
    """A refused student's report renders cleanly and says why, with the fix."""
    path = html_run.out / "100003" / "report.html"
    seen = open_page(browser, path)
    assert [m for m in seen["console"] if m[0] == "error"] == [] and seen["images"] == seen["svg_images"] == []
    assert "refused" in seen["text"] and "replace the Lambda layer" in seen["text"]


def test_index_renders_the_cohort(html_run, browser) -> None:
    """index.html draws the cohort's two charts, the band counts, who needs attention, and links to reports."""
    path = html_run.out / "index.html"
    seen = open_page(browser, path)
    assert_clean(seen, path)
    assert len(seen["charts"]) == 2 and all(width > 100 for width in seen["charts"])
    for text in ("Students per band", "Needs attention", "Grace Hopper", "refused", "held-out set"):
        assert text in seen["text"], text
    links = (html_run.out / "index.html").read_text()
    assert 'href="100001/report.html"' in links and (html_run.out / "100001" / "report.html").exists()


def test_names_are_text_not_markup(html_run, browser) -> None:
    """A folder name carrying HTML is shown literally: nothing runs, nothing is fetched."""
    path = html_run.out / "100002" / "report.html"
    seen = open_page(browser, path)
    assert_clean(seen, path)
    assert XSS_NAME in seen["text"]
    assert "<img src=x" not in path.read_text()


def test_a_report_with_parts_renders_each_part_with_colour_images(tmp_path: Path, models: Path, browser) -> None:
    """An assignment with parts: the student's page shows the total and a section per part, the colour part's
    misclassified images decode, labelled by class name, and the summary page lists every part; both pages
    load cleanly and offline."""
    from grader.cohort import grade_cohort

    root = make_cohort(
        tmp_path / "submissions",
        models,
        {"Ada Lovelace_1_assignsubmission_file_": {"mlp.h5": "q5.h5", "cnn.h5": "q12.h5", "colour_cnn.h5": "q16.h5"}},
    )
    (root / "Ada Lovelace_1_assignsubmission_file_" / "functions.py").write_text(build_code.LOOPS)
    heldout = {"mnist": DEMO_HELDOUT, "cifar10": models / "colour_test_batch"}
    summary = grade_cohort(root, assignment="uva-lab1", heldout=heldout, out=tmp_path / "reports")
    path = summary.out / "1" / "report.html"
    seen = open_page(browser, path)
    assert_clean(seen, path)
    assert len(seen["svg_images"]) == 3 * 8  # eight misclassified images per model part
    for text in ("total", "Part mlp: Question 5", "Part cifar10: Questions 16-17", "True: ", "truck"):
        assert text in seen["text"], text
    # The code part: a row per question, then each question's cases; element-by-element loops cost points.
    for text in ("Part code: Exercise three", "Question 25: softmax: 1.5 / 2", "taken off for element-by-element"):
        assert text in seen["text"], text
    index = summary.out / "index.html"
    page = open_page(browser, index)
    assert_clean(page, index)
    assert "Part cnn: Question 12" in page["text"] and len(page["charts"]) == 7  # 2 per model part, 1 for code
    assert "students with full points" in page["text"]
