"""How a child process that touches a student's file is started: bubblewrap where it works, else a plain
subprocess with resource limits.

With bubblewrap the child gets its own network namespace (no network), its own PID, IPC, UTS and user
namespaces, a root file system that holds only the Python installation, the grader package, the
held-out images and the one folder it is told to read, a private size-capped /tmp, and a cleared
environment. Either way it runs in its own session with hard resource limits that it cannot raise
(memory, CPU time, file size, open files, processes), and is killed with its whole process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from grader import defaults
from grader.errors import SandboxUnavailable
from grader.status import NOT_ISOLATED

GRADER_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"grader's own package folder, which every child imports grader from."

ISOLATIONS = ("auto", "bubblewrap", "process")
SANDBOX_TMP_BYTES = 256 * 1024 * 1024
NOBODY = 65534
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Limits:
    """Hard limits for one child process and everything it starts."""

    address_space_bytes: int = 16 * 1024**3
    "Virtual memory (RLIMIT_AS); TensorFlow alone reserves about 2.5 GB of it."
    cpu_seconds: int = 6 * 3600
    "CPU time over the child's whole life (RLIMIT_CPU); a warm worker serves many submissions."
    file_bytes: int = 256 * 1024 * 1024
    "Largest file the child may write (RLIMIT_FSIZE)."
    open_files: int = 1024
    processes: int = 4096
    "RLIMIT_NPROC, counted per user (threads count too). The scheduler also counts processes itself."


@dataclass(frozen=True)
class Isolation:
    """The isolation a run uses, recorded in every report."""

    kind: str
    "'bubblewrap' or 'process'."
    detail: str
    "One line a TA can read: what the isolation is, or why bubblewrap was not used."

    @property
    def isolated(self) -> bool:
        """Whether students' files were kept in a sandbox; every output of a run that was not says so."""
        return self.kind == "bubblewrap"


BUBBLEWRAP = "bubblewrap: no network, read-only view of the model and images only, private /tmp, limits"


@functools.cache
def bubblewrap_problem() -> str:
    """'' when bubblewrap can start a sandbox here, else why not (one line)."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux (this is {sys.platform})"
    binary = shutil.which("bwrap")
    if binary is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt install bubblewrap)"
    probe = [binary, *_namespace_args(), *_system_binds(), "--", "/bin/true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not start ({error})"
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        return f"bubblewrap could not start a sandbox ({message[-1] if message else done.returncode})"
    return ""


def choose_isolation(preference: str = defaults.ISOLATION, *, untrusted: str = "") -> Isolation:
    """Bubblewrap when asked for or available; a plain subprocess when asked for, or, for model files read
    safely, when bubblewrap cannot start here (the run says so).

    `untrusted` names work that runs students' code ('the code part', '--allow-lambda', 'grade serve', 'a Dask
    worker'): it never loses the sandbox silently. Without a working bubblewrap, 'auto' then stops with
    SandboxUnavailable saying why and the two ways on; only an explicit 'process' runs it unsandboxed.
    """
    if preference not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}")
    if preference == "process":
        return Isolation("process", f"{NOT_ISOLATED}: a plain subprocess with resource limits (--isolation process)")
    problem = bubblewrap_problem()
    if not problem:
        return Isolation("bubblewrap", BUBBLEWRAP)
    if preference == "bubblewrap":
        raise SandboxUnavailable(f"--isolation bubblewrap: {problem}")
    if untrusted:
        raise SandboxUnavailable(unsandboxed(untrusted, problem))
    return Isolation(
        "process", f"{NOT_ISOLATED}: a plain subprocess with resource limits, no network or file isolation: {problem}"
    )


def was_isolated(isolation: str) -> bool:
    """Whether work recorded with this isolation (a kind, or the detail an evaluation stored) ran in the
    sandbox."""
    return isolation.startswith("bubblewrap")


def unsandboxed(untrusted: str, problem: str) -> str:
    """Why work that runs students' code stops where bubblewrap cannot start, and the two ways on."""
    return (
        f"{untrusted} runs students' code, which needs the bubblewrap sandbox, and {problem}. Either make "
        "bubblewrap work here (Debian/Ubuntu: apt install bubblewrap; user namespaces must be allowed), or pass "
        "--isolation process to run it without isolation, with the grading user's rights (every output then "
        f"says '{NOT_ISOLATED}')"
    )


def visible_paths(isolation: Isolation, wanted: dict[str, str]) -> dict[str, str]:
    """Where the child sees each host path: at the path asked for in a sandbox, where it is otherwise (made
    absolute: the child runs in a folder of its own, so a path relative to this process's would miss)."""
    if isolation.kind == "bubblewrap":
        return dict(wanted)
    return {host: os.path.abspath(host) for host in wanted}


def command(
    isolation: Isolation,
    argv: list[str],
    *,
    readable: dict[str, str],
    workdir: Path,
    env: dict[str, str],
) -> tuple[list[str], dict[str, str], str]:
    """The argv, environment and working directory that run `python argv...` isolated.

    `readable` maps host paths to the paths the child sees them at (read-only), as `visible_paths`
    gives them; `argv` must already use the child's paths. Host paths may be relative to this process's
    folder (a user's `--state serve`): bubblewrap and the child are given them absolute.
    """
    workdir = Path(os.path.abspath(workdir))
    base_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONHASHSEED": "0",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "KERAS_HOME": "/tmp/keras",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **env,
    }
    plugins = _plugin_paths()
    if plugins.search:
        # A course's package that registers a format or coursework from outside this Python's prefix: the
        # child imports it (and reads its entry points) from where it lies.
        base_env["PYTHONPATH"] = os.pathsep.join(plugins.search)
    if isolation.kind != "bubblewrap":
        private = {
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "MPLCONFIGDIR": str(workdir / "matplotlib"),
            "KERAS_HOME": str(workdir / "keras"),
        }
        return [sys.executable, *argv], {**base_env, **private}, str(workdir)
    binds: list[str] = []
    for host in (*_python_paths(), *plugins.folders):
        binds += ["--ro-bind", host, host]
    for host, inside in sorted(readable.items()):
        binds += ["--ro-bind", os.path.abspath(host), inside]
    full = [
        shutil.which("bwrap") or "bwrap",
        *_namespace_args(),
        *_system_binds(),
        # The private /tmp first: binds that live under /tmp on the host (a venv, a work folder) then
        # sit on top of it instead of being hidden by it.
        "--size",
        str(SANDBOX_TMP_BYTES),
        "--tmpfs",
        "/tmp",
        *binds,
        "--chdir",
        "/tmp",
        "--clearenv",
        *[part for key, value in sorted(base_env.items()) for part in ("--setenv", key, value)],
        "--",
        sys.executable,
        *argv,
    ]
    return full, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, str(workdir)


def popen(argv: list[str], env: dict[str, str], cwd: str, limits: Limits, stderr_path: Path) -> subprocess.Popen[bytes]:
    """Start a child in its own session under hard limits; stdin/stdout are pipes, stderr goes to a file.

    On Windows (students running `grade check`) there are no rlimits or sessions: the child gets its own
    process group and the grading process's memory and time watch."""
    stderr = open(stderr_path, "ab")  # noqa: SIM115 (the child owns it; closed when the child is reaped)
    options: dict[str, Any]
    if sys.platform == "win32":
        environment = {**os.environ, **env}  # Windows needs SYSTEMROOT and friends to start Python
        options = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP, "env": environment}
    else:
        options = {
            "start_new_session": True,
            "env": env,
            "preexec_fn": functools.partial(_apply_limits, limits, os.getpid()),
        }  # only setrlimit and prctl
    try:
        return subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=cwd, close_fds=True, **options
        )
    finally:
        stderr.close()


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """Kill a child and everything it started: its session on POSIX, its process tree on Windows."""
    if sys.platform != "win32":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return
    import psutil

    with contextlib.suppress(psutil.Error):
        root = psutil.Process(process.pid)
        for child in [*root.children(recursive=True), root]:
            with contextlib.suppress(psutil.Error):
                child.kill()


def _apply_limits(limits: Limits, parent: int) -> None:
    import resource

    _die_with_parent(parent)
    # Soft and hard limits set together: the child (and a payload in it) cannot raise them again.
    for kind, value in (
        (resource.RLIMIT_AS, limits.address_space_bytes),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_CORE, 0),
    ):
        with contextlib.suppress(ValueError, OSError):  # a limit already lower than asked for stays so
            resource.setrlimit(kind, (value, value))


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this child when the grading process dies, even by SIGKILL. A grading process that died
    between the fork and this request sends no signal: the child, seeing another parent already, exits."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _namespace_args() -> list[str]:
    return [
        "--unshare-all",  # user, ipc, pid, net, uts, cgroup: the network namespace has no interfaces up
        "--uid",
        str(NOBODY),
        "--gid",
        str(NOBODY),
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]


def _system_binds() -> list[str]:
    """/usr read-only, and /bin, /lib, /lib64, /sbin as they are on the host (merged-/usr symlinks or folders)."""
    binds = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        if os.path.islink(top):
            binds += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            binds += ["--ro-bind", top, top]
    return binds


@dataclass(frozen=True)
class _Plugins:
    search: tuple[str, ...]
    "The sys.path entries that hold the packages and their metadata."
    folders: tuple[str, ...]
    "The packages' own folders and their .dist-info folders, bound read-only and nothing around them."


@functools.cache
def _plugin_paths() -> _Plugins:
    """Where the packages that register grader formats or courseworks lie, when outside this Python's prefix and
    grader's own folder (which every child sees already): a course's package on PYTHONPATH, or installed
    editable from its source folder. Only each package's folder and its metadata are bound, never the folder
    around them (which may hold a course's private data); the child finds them through PYTHONPATH."""
    seen = _python_paths()
    search: dict[str, None] = {}
    folders: dict[str, None] = {}
    for group in ("grader.formats", "grader.courseworks"):
        for point in metadata.entry_points(group=group):
            spec = importlib.util.find_spec(point.value.split(":")[0].split(".")[0])
            places = list(spec.submodule_search_locations or ()) if spec is not None else []
            if spec is not None and spec.origin and not places:
                places = [spec.origin]
            info = getattr(point.dist, "_path", None)  # the .dist-info folder (PathDistribution's own)
            for place in [*places, *([str(info)] if info is not None else [])]:
                real = os.path.realpath(place)
                if any(real == p or real.startswith(p + "/") for p in seen):
                    continue
                folders[real] = None
                search[os.path.dirname(real)] = None
    return _Plugins(tuple(search), tuple(folders))


@functools.cache
def _python_paths() -> tuple[str, ...]:
    """Folders the child needs to run this Python with grader importable, and nothing more.

    Only the interpreter's prefixes and grader's own package folder: never the project folder around
    it, which holds the held-out set and the submissions.
    """
    paths = {
        os.path.realpath(sys.base_prefix),
        os.path.realpath(sys.prefix),
        os.path.realpath(GRADER_FOLDER),
    }
    paths = {p for p in paths if not p.startswith("/usr/") and p != "/usr"}
    executable = os.path.realpath(sys.executable)
    if not any(executable.startswith(p + "/") for p in paths) and not executable.startswith("/usr/"):
        paths.add(os.path.dirname(executable))
    # Drop paths inside others, so that each is bound once.
    return tuple(sorted(p for p in paths if not any(p != q and p.startswith(q + "/") for q in paths)))
