"""Screenshots of the real pages a run writes, for the documentation: generated, never drawn by hand.

    python scripts/screenshots.py                      # grades the demo cohort into a scratch folder first
    python scripts/screenshots.py --reports reports/   # or shoots an existing run's pages

Renders, with the system's Chromium through Playwright (no browser download, nothing fetched: the pages are
self-contained), the run's summary (index.html), one student's report and the integrity page, and writes them as
PNGs to docs/images/. The demo cohort's run is deterministic, so running this again gives the same pictures
up to the run's date and timings.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOTS = {
    "summary.png": "index.html",
    "report.png": "100002/report.html",
    "integrity.png": "integrity.html",
}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    raise SystemExit("no Chromium here (Debian: apt install chromium)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, help="an existing run's reports (default: grade the demo cohort)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    reports = args.reports
    if reports is None:
        reports = Path(tempfile.mkdtemp()) / "reports"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grader",
                str(ROOT / "submissions"),
                "--heldout",
                str(ROOT / "heldout"),
                "--out",
                str(reports),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium(), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        for name, source in SHOTS.items():
            page.goto((reports / source).resolve().as_uri())
            page.screenshot(path=str(args.out / name), full_page=False)
            print(f"wrote {args.out / name} ({source})")
        browser.close()


if __name__ == "__main__":
    main()
