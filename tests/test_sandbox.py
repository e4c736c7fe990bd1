"""The sandbox itself: what a child can see and reach under bubblewrap, and the fallback without it."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.cohort import grade_cohort
from grader.errors import SandboxUnavailable
from grader.evaluation import sandbox

from .conftest import DEMO_HELDOUT, ROOT

PROBE = r"""
import json, os, socket, sys
facts = {"uid": os.getuid(), "env": sorted(os.environ), "root": sorted(os.listdir("/"))}
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    facts["network"] = "reached"
except OSError as error:
    facts["network"] = type(error).__name__
for name, path in (("project", sys.argv[2]), ("heldout", sys.argv[3]), ("home", os.path.expanduser("~root"))):
    facts[name] = os.path.exists(path)
try:
    open(sys.argv[4] + "/written-from-sandbox", "w").write("x")
    facts["wrote"] = True
except OSError:
    facts["wrote"] = False
with open(sys.argv[5], "w") as handle:
    handle.write("x")
print(json.dumps(facts))
"""


def run_in(isolation: sandbox.Isolation, tmp_path: Path, args: list[str]) -> str:
    """Run `python ARGS` as grader runs its children: isolated, with hard limits."""
    readable = sandbox.visible_paths(isolation, {str(tmp_path): "/job"})
    argv, env, cwd = sandbox.command(isolation, args, readable=readable, workdir=tmp_path, env={"SANDBOX_PROBE": "1"})
    done = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        preexec_fn=functools.partial(
            sandbox._apply_limits, sandbox.Limits(address_space_bytes=8 * 1024**3), os.getpid()
        ),
    )
    return done.stdout


def run_probe(isolation: sandbox.Isolation, tmp_path: Path, port: int, scratch: Path) -> dict:
    job = sandbox.visible_paths(isolation, {str(tmp_path): "/job"})[str(tmp_path)]
    args = ["-c", PROBE, str(port), str(ROOT / "tests"), str(DEMO_HELDOUT), job, str(scratch)]
    return json.loads(run_in(isolation, tmp_path, args))


@pytest.fixture
def listening_port():
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.usefixtures("bubblewrap")
def test_bubblewrap_child_sees_only_what_it_is_given(
    tmp_path: Path, listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under bubblewrap: no network, no project, labels or home folder, nothing written back to the host,
    a private /tmp, a cleared environment, and an unprivileged user."""
    monkeypatch.setenv("GRADER_TEST_SECRET", "do not pass on")
    scratch = Path("/tmp") / f"grader-sandbox-scratch-{os.getpid()}"
    scratch.unlink(missing_ok=True)
    facts = run_probe(sandbox.choose_isolation("bubblewrap"), tmp_path, listening_port, scratch)
    assert facts["network"] in ("ConnectionRefusedError", "OSError") or "Error" in facts["network"]
    assert facts["network"] != "reached"
    assert (facts["project"], facts["heldout"], facts["home"], facts["wrote"]) == (False, False, False, False)
    assert not (tmp_path / "written-from-sandbox").exists()
    assert not scratch.exists()  # written to the sandbox's private /tmp, gone with it
    assert facts["uid"] == sandbox.NOBODY
    assert "SANDBOX_PROBE" in facts["env"] and "HOME" in facts["env"]
    assert "GRADER_TEST_SECRET" not in facts["env"]
    # The root holds the system folders, the job and the tops of the Python folders the child runs from
    # (wherever the clone and its virtualenv live), and nothing else of the host.
    python_tops = {Path(path).parts[1] for path in sandbox._python_paths()}
    system = {"usr", "bin", "lib", "lib64", "lib32", "sbin", "proc", "dev", "tmp", "job"}
    assert set(facts["root"]) <= system | python_tops


def test_plain_subprocess_fallback_is_said_and_limited(
    tmp_path: Path, listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback is a plain subprocess: it is labelled "not isolated", and its environment is still cleared."""
    monkeypatch.setenv("GRADER_TEST_SECRET", "do not pass on")
    isolation = sandbox.choose_isolation("process")
    assert isolation.detail.startswith("not isolated: ") and not isolation.isolated
    facts = run_probe(isolation, tmp_path, listening_port, tmp_path / "scratch")
    assert "SANDBOX_PROBE" in facts["env"] and "GRADER_TEST_SECRET" not in facts["env"]


@pytest.fixture
def no_bubblewrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """bubblewrap made unavailable: no bwrap on PATH (as on a laptop, a container or macOS)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    sandbox.bubblewrap_problem.cache_clear()
    yield
    monkeypatch.undo()
    sandbox.bubblewrap_problem.cache_clear()


def test_without_bubblewrap_model_files_fall_back_and_say_why(no_bubblewrap) -> None:
    """With no bwrap on PATH: for model files read safely, auto falls back to a plain subprocess labelled "not
    isolated" with the reason; asking for bubblewrap is a clear error."""
    fallback = sandbox.choose_isolation("auto")
    assert fallback.kind == "process" and not fallback.isolated
    assert fallback.detail.startswith("not isolated: ")
    assert "bubblewrap is not installed (Debian/Ubuntu: apt install bubblewrap)" in fallback.detail
    with pytest.raises(SandboxUnavailable, match="--isolation bubblewrap: bubblewrap is not installed"):
        sandbox.choose_isolation("bubblewrap")


def test_without_bubblewrap_students_code_never_runs_unless_asked_for(no_bubblewrap) -> None:
    """Work that runs students' code (a code part, --allow-lambda, the page, a Dask worker) never falls back
    silently: auto stops with why and the two ways on; only an explicit --isolation process runs it."""
    with pytest.raises(SandboxUnavailable) as stopped:
        sandbox.choose_isolation("auto", untrusted="the code part")
    message = str(stopped.value)
    assert message.startswith("the code part runs students' code, which needs the bubblewrap sandbox, and ")
    assert "bubblewrap is not installed" in message
    assert "apt install bubblewrap" in message and "pass --isolation process" in message
    chosen = sandbox.choose_isolation("process", untrusted="the code part")
    assert chosen.kind == "process" and chosen.detail.startswith("not isolated")


def test_allow_lambda_stops_before_grading_without_a_sandbox(tmp_path: Path, no_bubblewrap) -> None:
    """--allow-lambda with the default isolation and no working bubblewrap: the run stops before it starts (no
    gradebook, nothing read), saying why; a Lambda's code is never run with the grader's rights silently."""
    (tmp_path / "subs").mkdir()
    with pytest.raises(SandboxUnavailable, match="--allow-lambda runs students' code"):
        grade_cohort(tmp_path / "subs", heldout=DEMO_HELDOUT, out=tmp_path / "out", allow_lambda=True)
    assert not (tmp_path / "out").exists()


RAISE_LIMIT = """
import resource
try:
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("raised")
except (ValueError, OSError):
    print("kept")
"""


@pytest.mark.usefixtures("bubblewrap")
def test_sandboxed_child_cannot_lift_its_limits(tmp_path: Path) -> None:
    """Hard limits are set before the sandbox starts, and its child has no capability to lift them."""
    assert run_in(sandbox.choose_isolation("bubblewrap"), tmp_path, ["-c", RAISE_LIMIT]).strip() == "kept"


def test_a_missing_sandbox_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under CI=true (as .ci/run sets it) a test that needs bubblewrap or Chromium fails with the reason when
    it is missing; on a developer's machine it skips, saying why."""
    from .conftest import require

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="bubblewrap is required under CI and is missing: not installed"):
        require("not installed", "bubblewrap")
    require("", "bubblewrap")  # present: nothing happens
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="needs Chromium: not installed"):
        require("not installed", "Chromium")
    assert 'CI="${CI:-true}"' in (ROOT / ".ci" / "run").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_child_whose_grading_process_died_before_it_asked_for_the_signal_exits() -> None:
    """A child asks for SIGKILL on its parent's death, then checks its parent is still the grading process: one
    that died between the fork and the request (the child reparented) sends no signal, so the child exits."""
    code = (
        "import sys\nfrom grader.evaluation import sandbox\nsandbox._die_with_parent(int(sys.argv[1]))\nprint('alive')"
    )
    kept = subprocess.run([sys.executable, "-c", code, str(os.getpid())], capture_output=True, text=True, timeout=60)
    assert (kept.returncode, kept.stdout) == (0, "alive\n"), kept.stderr
    orphaned = subprocess.run([sys.executable, "-c", code, "1"], capture_output=True, text=True, timeout=60)
    assert (orphaned.returncode, orphaned.stdout, orphaned.stderr) == (1, "", "")
