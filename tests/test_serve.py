"""`grade serve`: the self-check page, run as its own process (uvicorn, warm sandboxed workers) and used as a
student uses it, through a headless Chromium and as a plain form. It gives the result `grade check` gives,
keeps its queue in order under load, and turns away what it must without keeping a byte of it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest

from grader.checking import check
from grader.courseworks.assignment import builtin_assignments
from grader.serve.limits import HOUR, RateLimit, Spool
from grader.serve.receiving import safe_name
from grader.serve.store import RESTARTED

from . import hostile
from .conftest import DEMO_HELDOUT, Traps
from .serve_client import Server, form, streamed_form

LIMIT = 30 * 1024 * 1024
"The test coursework's file-size limit: KCL's rules with 30 MB instead of 500 MB."
TIME_LIMIT, MEMORY_LIMIT = "10", "1.5"


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Coursework 1's rules with a 30 MB upload limit (an upload over it is cheap to send in a test)."""
    text = builtin_assignments()["kcl-dnn-cw1"].read_text()
    assert "max_file_bytes = 524_288_000" in text
    path = tmp_path_factory.mktemp("rules") / "kcl-30mb.toml"
    path.write_text(text.replace("max_file_bytes = 524_288_000", f"max_file_bytes = {LIMIT}"))
    return path


def running(folder: Path, rules: Path, *options: str) -> Iterator[Server]:
    """A server on the test rules and the demo digits (its public set) until the module ends; it must stop
    cleanly."""
    started = Server(folder / "state", "--assignment", str(rules), "--data", str(DEMO_HELDOUT), *options)
    yield started
    assert started.stop() == 0, started.log.read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, rules: Path):
    """One server for the module: one warm worker, the demo digits as its public set, a high rate limit."""
    yield from running(
        tmp_path_factory.mktemp("serve"),
        rules,
        *("--uploads-per-hour", "1000", "--time-limit", TIME_LIMIT, "--memory-limit", MEMORY_LIMIT),
    )


def direct(path: Path, rules: Path):
    """What `grade check` gives for a file, with the server's data and limits."""
    return check(
        path, data=DEMO_HELDOUT, assignment=rules, time_limit=float(TIME_LIMIT), memory_limit_gb=float(MEMORY_LIMIT)
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# In a browser ----------------------------------------------------------------------------------------------


def _checks_on_page(page) -> list[tuple[str, str, str]]:
    return page.eval_on_selector_all(
        "#checks tbody tr",
        "rows => rows.map(r => [r.cells[0].textContent, r.className, r.cells[2].textContent])",
    )


@pytest.mark.tensorflow
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "plain-form"])
def test_a_student_uploads_through_the_page_and_reads_what_grade_check_says(
    server: Server, browser, models: Path, rules: Path, tmp_path: Path, javascript: bool
) -> None:
    """In Chromium (with JavaScript, and as a plain form without it) a student chooses a file, presses the
    button, waits on the page that refreshes itself and reads the accuracy, the checks and the receipt:
    the same as `grade check` on that file. On a phone's width nothing runs off the side."""
    source = models / ("cnn.h5" if javascript else "logits.h5")
    upload = tmp_path / ("my_cnn.h5" if javascript else "my_logits.h5")
    shutil.copyfile(source, upload)
    expected = direct(upload, rules)
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 390, "height": 844})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(server.url + "/")
    page.set_input_files("#file", str(upload))
    page.click("button[type=submit]")
    page.wait_for_selector("#receipt", timeout=120_000)
    assert page.text_content("h1") == upload.name
    accuracy = page.text_content("#accuracy")
    assert f"{expected.accuracy!r}%" in accuracy
    assert f"({expected.correct:,} of {expected.total:,} correct)" in " ".join(accuracy.split())
    assert expected.verdict in " ".join(accuracy.split())
    assert [tuple(row) for row in _checks_on_page(page)] == [(c.name, c.outcome, c.message) for c in expected.checks]
    assert page.text_content("#receipt") == expected.receipt()
    assert expected.sha256 == sha256(upload)
    assert page.text_content("#status").strip().startswith("Would be graded")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert errors == []
    context.close()


@pytest.mark.tensorflow
def test_the_readme_first_example_works_from_a_fresh_folder(tmp_path: Path, models: Path, bubblewrap) -> None:
    """`grade serve --assignment kcl-dnn-cw1 --data mnist.npz`, as the README starts it: in a fresh folder, the
    data named relatively and the state in the default relative folder (serve/). The sandboxed worker is given
    absolute paths, so an upload is checked (it once failed every upload: bubblewrap cannot bind a relative
    path)."""
    shutil.copyfile(DEMO_HELDOUT, tmp_path / "mnist.npz")
    started = Server(Path("serve"), "--assignment", "kcl-dnn-cw1", "--data", "mnist.npz", cwd=tmp_path)
    try:
        answer = started.upload(models / "mlp.h5", "mlp.h5")
        done = started.wait([answer.token])[answer.token]
    finally:
        assert started.stop() == 0, started.log.read_text()
    assert done["state"] == "done", done["message"]
    assert done["result"]["status"] == "graded"
    assert done["result"]["isolation"].startswith("bubblewrap")
    assert (tmp_path / "serve" / "serve.sqlite").is_file()


@pytest.mark.tensorflow
def test_the_what_to_do_column_keeps_its_width_when_every_check_passed(server: Server, browser, models: Path) -> None:
    """At a laptop's width (900 px), a result whose checks all pass still shows its "What to do" column at a
    readable width (it once collapsed to one letter, its heading broken letter by letter)."""
    answer = server.upload(models / "mlp.h5", "all_pass.h5")
    server.wait([answer.token])
    page = browser.new_page(viewport={"width": 900, "height": 900})
    page.goto(answer.url)
    outcomes = page.eval_on_selector_all("#checks tbody tr", "rows => rows.map(r => r.className)")
    assert outcomes and set(outcomes) <= {"pass", "info"}
    heading = page.eval_on_selector("#checks thead th:last-child", "cell => cell.getBoundingClientRect()")
    letter = page.evaluate(
        "() => { const s = document.createElement('span'); s.textContent = 'W';"
        " document.querySelector('#checks thead th:last-child').appendChild(s);"
        " const width = s.getBoundingClientRect().width; s.remove(); return width; }"
    )
    assert heading["width"] >= 6 * letter
    lines = page.eval_on_selector(
        "#checks thead th:last-child",
        "cell => { const r = document.createRange(); r.selectNodeContents(cell);"
        " return new Set([...r.getClientRects()].map(rect => Math.round(rect.top))).size; }",
    )
    assert lines == 1
    page.close()


@pytest.mark.tensorflow
def test_the_page_stops_a_file_over_the_limit_before_sending_it(server: Server, browser, tmp_path: Path) -> None:
    """With JavaScript, a file over the coursework's limit is named and stopped in the page: no request leaves."""
    big = tmp_path / "huge.h5"
    with open(big, "wb") as handle:
        handle.truncate(LIMIT + 1)
    context = browser.new_context()
    page = context.new_page()
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    page.goto(server.url + "/")
    page.set_input_files("#file", str(big))
    page.click("button[type=submit]")
    page.wait_for_function("document.getElementById('message').textContent.length > 0")
    assert f"over the coursework's limit of {LIMIT:,} bytes" in page.text_content("#message")
    assert posts == []
    context.close()


@pytest.mark.tensorflow
def test_a_model_off_the_prescribed_architecture_gets_its_table(architecture_models: Path, browser) -> None:
    """Oxford's exact CNN with other strides: the result page lists the layers against the practical's, with
    what to change on the row that differs, as `grade check` prints them."""
    from grader.serve.checker import page_data
    from grader.serve.pages import render

    result = check(architecture_models / "oxford_stride1.h5", data=DEMO_HELDOUT, assignment="oxford-practical3")
    comparison = result.architecture
    assert comparison is not None and comparison["status"] != "exact"
    shown = {"title": "oxford_stride1.h5", "course": "Oxford", "root": "", "home": "/", "here": ""}
    html = render("result.html.j2", result=page_data(result), **shown)
    page = browser.new_page()
    page.set_content(html)
    assert page.text_content("#architecture") == comparison["summary"]
    rows = page.eval_on_selector_all("#architecture + table tbody tr", "rows => rows.map(r => r.className)")
    assert len(rows) == len(comparison["rows"]) and "warn" in rows
    changes = page.eval_on_selector_all(
        "#architecture + table tbody tr.warn td:last-child", "cells => cells.map(cell => cell.textContent)"
    )
    assert changes == ["; ".join(row["problems"]) for row in comparison["rows"] if row["outcome"] != "match"]
    page.close()


# Many at once ----------------------------------------------------------------------------------------------


@pytest.mark.tensorflow
def test_twenty_uploads_at_once_all_complete_in_order(
    server: Server, models: Path, rules: Path, tmp_path: Path
) -> None:
    """Twenty different files sent at the same moment: each gets its own result (its own hash, name and
    accuracy, equal to what `grade` gives that file), checked in the order they arrived, none lost."""
    from grader.cohort import grade_cohort

    cohort = tmp_path / "cohort"
    files = []
    for index in range(20):
        folder = cohort / f"Student {index:02d}_{400000 + index}_assignsubmission_file_"
        folder.mkdir(parents=True)
        path = folder / f"student{index:02d}.h5"
        shutil.copyfile(models / "mlp.h5", path)
        with h5py.File(path, "r+") as handle:  # silence the first `index` hidden units: a different network
            kernel = handle[hostile.KERNEL]
            kernel[:, :index] = 0
        files.append(path)
    graded = grade_cohort(cohort, assignment=rules, heldout=DEMO_HELDOUT, out=tmp_path / "reports", reports=False)
    expected = {row["file"]: row["accuracy"] for row in graded.rows}
    assert len(set(expected.values())) > 10  # the files really differ

    barrier = threading.Barrier(len(files))
    tokens: dict[str, str] = {}

    def send(path: Path) -> None:
        barrier.wait()
        answer = server.upload(path, path.name)
        assert answer.status == 200, answer.body
        tokens[path.name] = answer.token

    threads = [threading.Thread(target=send, args=(path,)) for path in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tokens) == 20 and len(set(tokens.values())) == 20
    states = server.wait(list(tokens.values()))
    for path in files:
        state = states[tokens[path.name]]
        result = state["result"]
        assert state["state"] == "done", state
        assert (result["file"], result["sha256"]) == (path.name, sha256(path))
        assert result["accuracy"] == expected[path.name], path.name
    arrival = sorted(states.values(), key=lambda state: state["created"])
    assert [s["started"] for s in arrival] == sorted(s["started"] for s in arrival)
    assert [s["finished"] for s in arrival] == sorted(s["finished"] for s in arrival)
    assert server.kept_files() == []


@pytest.mark.tensorflow
def test_a_file_checked_before_is_answered_at_once_under_a_new_token(server: Server, models: Path) -> None:
    """The same file again: its result comes from the store straight away, at a new address; addresses are
    random (not the file's hash) and an address nobody was given finds nothing."""
    first = server.upload(models / "mlp.h5", "again.h5")
    done = server.wait([first.token])[first.token]
    second = server.upload(models / "mlp.h5", "again.h5")
    answer = server.state_of(second.token)
    assert answer["state"] == "done" and answer["result"] == done["result"]
    assert second.token != first.token and len(second.token) >= 43
    assert done["sha256"] not in second.url and done["sha256"][:16] not in second.url
    assert server.get("/r/" + first.token[:-1] + "x").status == 404
    assert server.get("/r/").status == 404
    assert "receipt" in server.get(f"/r/{second.token}/receipt.txt").body


# Turned away, keeping nothing ------------------------------------------------------------------------------


@pytest.mark.tensorflow
def test_an_upload_over_the_limit_is_cut_off_and_nothing_is_kept(server: Server, tmp_path: Path) -> None:
    """One byte over the coursework's limit: a clear page (413), sent as a plain form would send it; an
    upload that hides its length (chunked) is cut off as it streams; neither leaves anything on disk."""
    big = tmp_path / "big.h5"
    big.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(LIMIT + 1 - 8))
    answer = server.upload(big, big.name)
    assert answer.status == 413
    assert f"larger than the {LIMIT:,}-byte limit of this coursework" in answer.body
    body, _, boundary = streamed_form(big, big.name)
    request = urllib.request.Request(
        f"{server.url}/check",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413
    assert "it was not kept" in refused.value.read().decode()
    assert server.kept_files() == []
    assert server.get("/").status == 200


@pytest.mark.tensorflow
def test_a_file_far_over_the_limit_leaves_nothing_and_the_server_goes_on(server: Server, tmp_path: Path) -> None:
    """A 600 MB file (sparse): its declared length is over the limit, so nothing of it is written; the
    server reads no more than twice the limit before it answers, and serves the next student."""
    huge = hostile.oversized_file(tmp_path / "huge.h5")
    body, length, boundary = streamed_form(huge, huge.name)
    request = urllib.request.Request(
        f"{server.url}/check",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=60)
        status = 200
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError:  # the server stopped reading: the connection breaks before the answer is read
        status = None
    assert status in (413, None)
    assert server.kept_files() == []
    assert server.get("/").status == 200


@pytest.mark.tensorflow
def test_files_that_are_not_models_get_a_clear_page(server: Server, models: Path) -> None:
    """A PDF named .h5 is screened and refused with the reason (as `grade check` refuses it); a file whose
    name is not a model file's is turned away at once; a form without a file is asked for one."""
    pdf = server.upload(b"%PDF-1.7\n" + b"x" * 2000, "model.h5")
    result = server.wait([pdf.token])[pdf.token]["result"]
    assert result["status"] == "refused" and result["reason"].startswith("HDF5 file: the file is")
    page = server.get(f"/r/{pdf.token}").body
    assert "Would NOT be graded (refused)" in page and "HDF5 file" in page
    other = server.upload(b"%PDF-1.7\n", "report.pdf")
    assert other.status == 400 and "The file report.pdf is not a model file this page checks (.h5)" in other.body
    keras = server.upload((models / "mlp.h5").read_bytes(), "model.keras")
    assert keras.status == 400 and "model.save(&#39;model.h5&#39;)" in keras.body
    body = b'--b\r\nContent-Disposition: form-data; name="part"\r\n\r\n\r\n--b--\r\n'
    empty = urllib.request.Request(
        f"{server.url}/check", data=body, headers={"Content-Type": "multipart/form-data; boundary=b"}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as no_file:
        urllib.request.urlopen(empty, timeout=30)
    assert no_file.value.code == 400 and "Choose a model file to check" in no_file.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as not_a_form:
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/check", data=b"x=1", method="POST"), timeout=30)
    assert not_a_form.value.code == 400
    assert server.kept_files() == []


@pytest.mark.tensorflow
def test_every_hostile_file_gets_its_reason_and_touches_nothing(
    server: Server, models: Path, traps: Traps, tmp_path: Path
) -> None:
    """Every hostile or broken file of the suite, uploaded: each page gives the status and reason `grade`
    gives it, no payload reaches the host, nothing is left on disk, and the server still checks a good file."""
    made = hostile.cases(models, tmp_path, traps)
    expected = {case: (status, reason) for case, status, reason in hostile.EXPECTED if case in made}
    tokens = {}
    for case, path in made.items():
        if case == "oversized_file":
            continue  # over the upload limit: the tests above
        answer = server.upload(path, "model.h5")
        assert answer.status == 200, (case, answer.body)
        tokens[case] = answer.token
    states = server.wait(list(tokens.values()), timeout=600)
    for case, token in tokens.items():
        result = states[token]["result"]
        status, reason = expected[case]
        assert (result["status"], result["reason"][: len(reason)]) == (status, reason), case
        page = server.get(f"/r/{token}").body
        assert "Would NOT be graded" in page or "flagged" in page, case
    assert not traps.canary.exists()
    assert traps.secret.read_text() == "the instructor's secret"
    assert server.kept_files() == []
    assert list(server.tmp.glob("grader-*")) == []  # nothing left in the server's /tmp
    retried = server.upload(made["slow"], "model.h5")  # a timeout is not stored: checked again, as grade retries
    assert server.state_of(retried.token)["state"] in ("queued", "running")
    good = server.upload(models / "cnn.h5", "after.h5")
    states = server.wait([retried.token, good.token])
    assert states[retried.token]["result"]["status"] == "timeout"
    assert states[good.token]["result"]["status"] == "graded"
    assert server.kept_files() == []


@pytest.mark.tensorflow
def test_a_restart_keeps_results_and_tells_unchecked_uploads_to_upload_again(
    tmp_path_factory: pytest.TempPathFactory, rules: Path, models: Path
) -> None:
    """Stopped while checking: the file under way and the one queued are told, on their pages, to upload
    again; a result made before is still at its address; a second server on the same state folder is
    refused; no upload is left on disk."""
    folder = tmp_path_factory.mktemp("restart")
    options = ("--assignment", str(rules), "--data", str(DEMO_HELDOUT), "--time-limit", TIME_LIMIT)
    first = Server(folder / "state", *options)
    done = first.upload(models / "mlp.h5", "mlp.h5")
    result = first.wait([done.token])[done.token]["result"]
    slow = first.upload(models / "slow.h5", "slow.h5")
    queued = first.upload(models / "cnn.h5", "cnn.h5")
    while first.state_of(slow.token)["state"] != "running":
        time.sleep(0.2)
    with pytest.raises(RuntimeError, match="another grade serve is using"):
        Server(folder / "state", *options)
    assert first.stop() == 0, first.log.read_text()
    again = Server(folder / "state", *options)
    try:
        assert again.state_of(done.token)["result"] == result
        for token in (slow.token, queued.token):
            state = again.state_of(token)
            assert (state["state"], state["message"]) == ("failed", RESTARTED)
            assert (
                "The server restarted before your file was checked: upload it again." in again.get(f"/r/{token}").body
            )
        assert again.kept_files() == []
    finally:
        assert again.stop() == 0


# Limits of one server: rate and course token ----------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, rules: Path):
    """A server with a course token, two uploads per hour per client, and a folder keeping what it checks."""
    folder = tmp_path_factory.mktemp("guarded")
    yield from running(
        folder,
        rules,
        *("--uploads-per-hour", "2", "--course-token", "s3cret-course", "--keep-uploads", str(folder / "kept")),
    )


@pytest.mark.tensorflow
def test_without_the_course_token_nothing_is_taken(guarded: Server, models: Path) -> None:
    """The page asks for the course's link; an upload without the token is refused before its file is
    written; the link's token lets a student in (and --keep-uploads keeps the file checked)."""
    assert guarded.get("/").status == 403
    page = guarded.get("/?token=s3cret-course")
    assert page.status == 200 and 'value="s3cret-course"' in page.body
    for anyone in ("/", "/?token=guess", "/r/nothing-here", "/static/none.css"):  # pages anyone can reach
        assert "s3cret-course" not in guarded.get(anyone).body, anyone
    refused = guarded.upload(models / "mlp.h5", "mlp.h5", client="10.0.0.1")
    assert refused.status == 403 and "link on the course page" in refused.body
    wrong = guarded.upload(models / "mlp.h5", "mlp.h5", fields={"course_token": "guess"}, client="10.0.0.2")
    assert wrong.status == 403
    taken = guarded.upload(models / "mlp.h5", "mlp.h5", fields={"course_token": "s3cret-course"}, client="10.0.0.3")
    assert taken.status == 200 and "/r/" in taken.url
    assert 'href="/?token=s3cret-course"' in taken.body  # the student's own page leads back to the form
    assert guarded.wait([taken.token])[taken.token]["result"]["status"] == "graded"
    assert guarded.kept_files() == []
    kept = guarded.state.parent / "kept" / f"{sha256(models / 'mlp.h5')[:16]}-mlp.h5"
    assert kept.read_bytes() == (models / "mlp.h5").read_bytes()  # --keep-uploads: kept there, not in the spool


@pytest.mark.tensorflow
def test_a_client_over_its_hourly_uploads_is_told_when_to_come_back(guarded: Server, models: Path) -> None:
    """The third upload in an hour from one address is refused (429, Retry-After) with the wait in words;
    another address is not affected."""
    fields = {"course_token": "s3cret-course"}
    for _ in range(2):
        assert guarded.upload(b"not a model", "a.h5", fields=fields, client="10.1.1.1").status == 200
    third = guarded.upload(b"not a model", "a.h5", fields=fields, client="10.1.1.1")
    assert third.status == 429 and "try again in 60 minutes" in third.body
    assert guarded.upload(b"not a model", "a.h5", fields=fields, client="10.1.1.2").status == 200


# Pure parts ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("model.h5", "model.h5"),
        ("C:\\fakepath\\k1234567_tf213.h5", "k1234567_tf213.h5"),
        ("../../etc/passwd.h5", "passwd.h5"),
        ("..h5", "h5"),
        ("line\nbreak\x00.h5", "linebreak.h5"),
        ("Zoë Ångström.h5", "Zoë Ångström.h5"),
    ],
)
def test_an_uploaded_file_keeps_only_its_own_name(given: str, kept: str) -> None:
    """Whatever path or control characters a browser sends, the file is stored under its plain name."""
    assert safe_name(given) == kept


def test_the_rate_limit_is_a_sliding_hour() -> None:
    """Uploads per client in any hour: the next is allowed once the oldest is an hour old."""
    now = [0.0]
    limit = RateLimit(3, clock=lambda: now[0])
    assert [limit.allow("a") for _ in range(3)] == [0, 0, 0]
    now[0] = 600
    assert limit.allow("a") == HOUR - 600 and limit.allow("b") == 0
    now[0] = HOUR + 1
    assert limit.allow("a") == 0


def test_the_spool_refuses_past_its_cap_and_frees_what_is_released() -> None:
    """Bytes are reserved as they arrive; past the cap nothing is taken; a released file frees its bytes."""
    spool = Spool(100)
    assert spool.reserve(60) and not spool.reserve(41) and spool.used == 60
    spool.release(60)
    assert spool.reserve(100)


def test_serve_help_shows_an_example() -> None:
    """`grade serve --help` has a copy-paste example and names the limits."""
    from click.testing import CliRunner

    from grader.cli import cli

    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "grade serve --assignment kcl-dnn-cw1 --data mnist.npz" in result.output
    assert "--uploads-per-hour" in result.output and "--course-token" in result.output


def test_serve_refuses_to_start_without_usable_data(tmp_path: Path) -> None:
    """A --data path that is not a test set stops `grade serve` before it listens, with the reason (exit 1)."""
    from click.testing import CliRunner

    from grader.cli import cli

    result = CliRunner().invoke(cli, ["serve", "--data", str(tmp_path / "missing.npz"), "--state", str(tmp_path)])
    assert result.exit_code == 1
    assert "missing.npz" in result.output and "Traceback" not in result.output


def test_serve_will_not_start_without_a_sandbox_unless_asked(tmp_path: Path) -> None:
    """Uploads come from anyone with the page's address: with the default isolation and bubblewrap unable to start,
    `grade serve` stops before it reads anything or listens (exit 1), saying why and the two ways on."""
    (tmp_path / "empty-path").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "grader", "serve", "--data", str(DEMO_HELDOUT), "--state", str(tmp_path / "state")],
        env={**os.environ, "PATH": str(tmp_path / "empty-path")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    said = " ".join(done.stderr.split())
    assert "grade serve (it checks files from anyone who has the page's address) runs students' code" in said
    assert "bubblewrap is not installed" in said and "pass --isolation process" in said
    assert not (tmp_path / "state").exists()


@pytest.mark.tensorflow
def test_a_page_asked_to_run_unsandboxed_says_so_on_every_result(tmp_path: Path, models: Path, rules: Path) -> None:
    """--isolation process, asked for explicitly: the page runs, and each result (page and JSON) says "not
    isolated"."""
    started = Server(
        tmp_path / "state", "--assignment", str(rules), "--data", str(DEMO_HELDOUT), "--isolation", "process"
    )
    try:
        answer = started.upload(models / "mlp.h5", "mlp.h5")
        done = started.wait([answer.token])[answer.token]
        page = started.get(f"/r/{answer.token}").body
    finally:
        assert started.stop() == 0, started.log.read_text()
    assert done["result"]["status"] == "graded"
    assert done["result"]["isolation"].startswith("not isolated: ")
    assert 'id="not-isolated"' in page and "checked without the sandbox" in page
    assert "warning: not isolated" in started.log.read_text()


# Under hostile use ------------------------------------------------------------------------------------------

PERSONAL = ("personal-token-of-ann-0001", "personal-token-of-bob-0002")
OLD = 40 * 24 * 3600


def _old_state(state: Path, kept: Path) -> dict[str, str]:
    """A state folder a server left 40 days ago (an upload and its result) beside yesterday's, and kept files
    of both ages: what a restart with --keep-days 30 must prune, and keep."""
    from grader.serve.store import DONE, Store

    store = Store(state)
    now = time.time()
    tokens = {"old": "o" * 43, "recent": "r" * 43}
    for age, token in tokens.items():
        created = now - (OLD if age == "old" else 24 * 3600)
        store.add(token, file_name=f"{age}.h5", sha256=age, size=1, part="", result_key=f"key-{age}")
        store.save_result(f"key-{age}", age, 1.0, {"status": "graded", "receipt": age}, [token])
        store._db.execute("UPDATE uploads SET created = ? WHERE token = ?", (created, token))
        store._db.execute("UPDATE results SET created = ? WHERE key = ?", (created, f"key-{age}"))
        assert store.upload(token).state == DONE
    store.close()
    kept.mkdir()
    for age in tokens:
        path = kept / f"{age}.h5"
        path.write_bytes(b"kept")
        if age == "old":
            os.utime(path, (now - OLD, now - OLD))
    return tokens


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, rules: Path):
    """A server with personal tokens (two uploads an hour each), a short upload grace, --keep-days 30, and the
    state of an earlier server: an upload and kept file 40 days old, and yesterday's."""
    folder = tmp_path_factory.mktemp("strict")
    tokens = folder / "tokens.txt"
    tokens.write_text(
        "# course tokens, one per student\n" + "".join(f"{t} student {i}\n" for i, t in enumerate(PERSONAL))
    )
    earlier = _old_state(folder / "state", folder / "kept")
    options = ["--course-tokens", str(tokens), "--uploads-per-hour", "2", "--upload-grace", "3"]
    options += ["--keep-days", "30", "--keep-uploads", str(folder / "kept")]
    for started in running(folder, rules, *options):
        started.earlier = earlier  # type: ignore[attr-defined]
        yield started


@pytest.mark.tensorflow
def test_only_taken_uploads_count_per_personal_token(strict: Server, models: Path) -> None:
    """Behind one campus address, each personal token has its own allowance; uploads refused (no token, an unknown
    one, a file that is not a model file) are not counted against anyone; the allowance's end is told (429)."""
    nat = "10.9.9.9"
    ann, bob = ({"course_token": token} for token in PERSONAL)
    assert strict.upload(models / "mlp.h5", "mlp.h5", client=nat).status == 403
    assert strict.upload(models / "mlp.h5", "mlp.h5", fields={"course_token": "x" * 30}, client=nat).status == 403
    assert strict.upload(b"%PDF-1.4", "report.pdf", fields=ann, client=nat).status == 400
    assert strict.get(f"/?token={PERSONAL[0]}").status == 200
    for _ in range(2):
        taken = strict.upload(models / "mlp.h5", "mlp.h5", fields=ann, client=nat)
        assert taken.status == 200 and "/r/" in taken.url
    again = strict.upload(models / "mlp.h5", "mlp.h5", fields=ann, client=nat)
    assert again.status == 429 and "Your link has checked 2 files" in again.body
    assert strict.upload(models / "mlp.h5", "mlp.h5", fields=bob, client=nat).status == 200


@pytest.mark.tensorflow
def test_an_upload_slower_than_the_stated_rate_is_cut_off(strict: Server) -> None:
    """A client that sends a form's first bytes and then trickles (a slow-body attack): the page itself cuts it
    off once the grace has passed (408), keeps nothing, and goes on serving."""
    with socket.create_connection(("127.0.0.1", strict.port), timeout=30) as connection:
        connection.sendall(
            b"POST /check HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b'Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name="course_token"\r\n\r\n'
            + PERSONAL[1].encode()
            + b'\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="slow.h5"\r\n\r\n'
        )
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer and time.monotonic() - started < 20:
            try:
                connection.sendall(b"x")
            except OSError:
                break
            connection.settimeout(1)
            with contextlib.suppress(TimeoutError):
                answer += connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 15
    deadline = time.monotonic() + 120  # other tests' uploads may still be checked (their files then go)
    while strict.kept_files() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert strict.kept_files() == [] and strict.get("/healthz").status == 200


@pytest.mark.tensorflow
def test_what_is_older_than_keep_days_is_pruned_at_start(strict: Server) -> None:
    """At start, the upload record, its result and the kept file older than --keep-days are deleted (the old page
    is not found); yesterday's are kept."""
    earlier = strict.earlier  # type: ignore[attr-defined]
    assert strict.get(f"/r/{earlier['old']}.json").status == 404
    recent = strict.get(f"/r/{earlier['recent']}.json")
    assert recent.status == 200 and json.loads(recent.body)["result"]["receipt"] == "recent"
    kept = strict.state.parent / "kept"
    assert not (kept / "old.h5").exists() and (kept / "recent.h5").exists()


@pytest.mark.tensorflow
def test_result_and_course_tokens_never_reach_the_access_log(strict: Server, models: Path) -> None:
    """uvicorn's access log shows a result's address by its token's first characters only, and no course token."""
    answer = strict.upload(models / "cnn.h5", "cnn.h5", fields={"course_token": PERSONAL[1]}, client="10.3.3.3")
    strict.wait([answer.token])
    for path in (f"/r/{answer.token}", f"/r/{answer.token}.json", f"/?token={PERSONAL[0]}"):
        strict.get(path)
    log = strict.log.read_text()
    assert f"/r/{answer.token[:6]}…" in log
    assert answer.token not in log and answer.token[:12] not in log
    assert PERSONAL[0] not in log and PERSONAL[1] not in log


def test_disk_and_sqlite_work_runs_off_the_event_loop(tmp_path: Path, monkeypatch) -> None:
    """An upload's writes to disk and every SQLite call behind a page run in a worker thread, never on the event
    loop (a slow disk would stall every visitor): each is watched where it runs while the app takes an upload and
    serves its page."""
    import asyncio

    from grader.courseworks.assignment import load_assignment
    from grader.serve import receiving, store
    from grader.serve.app import create_app
    from grader.serve.settings import ServeSettings, public_sets

    where: list[tuple[str, bool]] = []

    def watched(name: str, original):
        def run(*args, **kwargs):
            try:
                asyncio.get_running_loop()
                on_loop = True
            except RuntimeError:
                on_loop = False
            where.append((name, on_loop))
            return original(*args, **kwargs)

        return run

    for owner, name in ((store.Store, "add"), (store.Store, "upload"), (receiving._Form, "_part_data")):
        monkeypatch.setattr(owner, name, watched(name, getattr(owner, name)))
    rules = load_assignment("kcl-dnn-cw1")
    settings = ServeSettings(
        assignment=rules, data=public_sets(rules, DEMO_HELDOUT), state=tmp_path, isolation="process"
    )
    app = create_app(settings)
    (tmp_path / "spool").mkdir()
    body, boundary = form(b"\x89HDF\r\n\x1a\n" + bytes(300_000), "model.h5", {})

    async def call(method: str, path: str, content: bytes = b"") -> list[dict]:
        pending = [{"type": "http.request", "body": content, "more_body": False}]
        sent: list[dict] = []

        async def receive() -> dict:
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        headers = [(b"content-type", f"multipart/form-data; boundary={boundary}".encode())] if content else []
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        await app(scope, receive, send)
        return sent

    async def session() -> tuple[int, int]:
        posted = await call("POST", "/check", body)
        location = dict(posted[0]["headers"])[b"location"].decode()
        shown = await call("GET", location + ".json")
        return posted[0]["status"], shown[0]["status"]

    # In a thread of its own: a browser fixture of the same session may hold an event loop in this one.
    statuses: list[tuple[int, int]] = []
    runner = threading.Thread(target=lambda: statuses.append(asyncio.run(session())))
    runner.start()
    runner.join(60)
    assert statuses == [(303, 200)]
    assert {name for name, _ in where} == {"add", "upload", "_part_data"}
    assert [name for name, on_loop in where if on_loop] == []
