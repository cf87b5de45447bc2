"""Shared tools for the template's tests: finding Pythons, baked virtual environments,
running a baked project's own test suite, and skipping when an outside program is missing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IS_WINDOWS = sys.platform == "win32"
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
# The interpreter the full baked suite and start_server run with, when it is installed; the
# other supported Pythons get a smoke subset. TEMPLATE_MAIN_PYTHON=3.13 picks another one (the
# GitHub workflow sets its matrix version, so each job runs the full suite on its Python).
MAIN_PYTHON = os.environ.get("TEMPLATE_MAIN_PYTHON") or "3.11"
# The Pythons a CI matrix runs the full suite on, one job each (TEMPLATE_MATRIX_PYTHONS="3.10
# 3.11 ..."): no job runs a smoke subset on those.
MATRIX_PYTHONS = tuple(os.environ.get("TEMPLATE_MATRIX_PYTHONS", "").split())


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES") == "1"


def requirements_for_tests() -> str:
    """The requirements file a bake's test venv gets: requirements-kerberos.txt (the test tools
    and python-gssapi, which has no Linux wheels and builds on libkrb5-dev) where every test must
    run (REQUIRE_SERVICES=1; .ci/run installs libkrb5-dev) or libkrb5-dev is there (krb5-config),
    else requirements-dev.txt and the Kerberos tests skip."""
    if services_required() or shutil.which("krb5-config"):
        return "requirements-kerberos.txt"
    return "requirements-dev.txt"


def need(condition: bool, reason: str) -> None:
    """Skip (or, with REQUIRE_SERVICES=1, fail) when an outside program is missing."""
    if condition:
        return
    if services_required():
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def python_version(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(version: str) -> str | None:
    """Path of a Python ``version`` ("3.12") on this machine, or None.

    Looked for, in order: $PYTHON_3_12, this interpreter, pyenv's versions, python3.12 on
    PATH, and the py launcher on Windows.
    """
    override = os.environ.get("PYTHON_" + version.replace(".", "_"))
    if override:
        return override
    if "{}.{}".format(*sys.version_info[:2]) == version:
        return sys.executable
    candidates = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for found in sorted((pyenv_root / "versions").glob(f"{version}.*"), reverse=True):
        candidates.append(str(found / ("python.exe" if IS_WINDOWS else "bin/python")))
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    if IS_WINDOWS and shutil.which("py"):
        try:
            out = subprocess.run(["py", f"-{version}", "-c", "import sys; print(sys.executable)"],
                                 capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            out = None
        if out is not None and out.returncode == 0:
            candidates.append(out.stdout.strip())
    for candidate in candidates:
        if Path(candidate).exists() and python_version(candidate) == version:
            return candidate
    return None


def main_python() -> str:
    """Python 3.11 when installed, else the interpreter running these tests."""
    return find_python(MAIN_PYTHON) or sys.executable


def python_or_skip(version: str) -> str:
    """An interpreter is not a service: a machine without this version skips (3.14 is not
    installable on every Linux), while CI names every version in PYTHON_3_x and so runs all."""
    python = find_python(version)
    if python is None:
        pytest.skip(f"Python {version} not found on this machine (set PYTHON_{version.replace('.', '_')})")
    return python


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if IS_WINDOWS else "bin/python")


def clean_env(**extra: str) -> dict:
    """This process's environment without what would leak into a baked project."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "PYTHONPATH", "DJANGO_SETTINGS_MODULE", "PYTHONHOME"}
           and not k.startswith(("DJANGO_", "SERVER_", "PYTEST_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONUTF8"] = "1"
    env.update(extra)
    return env


def run(args: list, cwd: Path, env: dict | None = None, timeout: float = 900,
        on_start=None) -> subprocess.CompletedProcess:
    """Run a command, returning its combined output as ``stdout``; ``on_start`` gets the
    process once it runs (to kill it from another thread).

    Past ``timeout`` seconds the command and every process it started (servers of a baked
    suite among them, whatever their session) are killed, and the test fails with the output.
    Off Windows the command gets a process group of its own, killed once it ends: a baked
    suite stopped by its own per-test timeout leaves no server behind either.
    """
    args = [str(a) for a in args]
    group = {} if IS_WINDOWS else {"start_new_session": True}
    with subprocess.Popen(args, cwd=cwd, env=env or clean_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                          **group) as process:
        if on_start is not None:
            on_start(process)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            try:
                output, _ = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:  # something outside the tree holds the pipe
                output = ""
            pytest.fail(f"{' '.join(args)} did not finish in {timeout:g}s; its processes were "
                        f"killed. Its output ended with:\n{(output or '')[-20000:]}")
        except BaseException:  # Ctrl+C: leave nothing running
            kill_tree(process.pid)
            raise
        finally:
            if group:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass  # nothing left
    return subprocess.CompletedProcess(args, process.returncode, output, None)


def kill_tree(pid: int) -> None:
    """Kill a process and all its descendants, children first found, then killed at once."""
    import psutil  # only needed here

    try:
        parent = psutil.Process(pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)


def make_venv(project_dir: Path, python: str, requirements: str | None = None,
              venv_name: str = ".venv", env: dict | None = None, on_start=None) -> Path:
    """A fresh virtual environment in the project with ``requirements`` (by default
    requirements_for_tests()) installed; its python."""
    requirements = requirements or requirements_for_tests()
    venv = project_dir / venv_name
    created = run([python, "-m", "venv", "--clear", venv], cwd=project_dir, env=env, on_start=on_start)
    assert created.returncode == 0, created.stdout
    vpython = venv_python(venv)
    installed = run([vpython, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                     "-r", requirements], cwd=project_dir, env=env, on_start=on_start)
    assert installed.returncode == 0, installed.stdout
    return vpython


# Skip reasons of the baked project's need(): an outside service or program is missing. A run
# without REQUIRE_SERVICES=1 may skip for these and nothing else; with it, nothing may skip.
SERVICE_SKIP_REASONS = (
    r"PostgreSQL not reachable at ",
    r"Redis not reachable at ",
    r"nginx not installed",
    r"openssl not found",
    r"127\.0\.0\.2 is not a loopback address",
    r"systemd-analyze not found",
    r"running the server as another account needs root or passwordless sudo",
    r"Kerberos KDC programs not found",
    r"python-gssapi and krb5 not installed",
)

# "SKIPPED [2] tests/test_scaling.py:176: nginx not installed ..." from pytest's -rs summary.
_SKIP_LINE = re.compile(r"^SKIPPED \[(\d+)\] (\S+?):(\d+): (.*)$", re.M)
_COLLECTED = re.compile(r"^collected (\d+) items?\b", re.M)


def expected_skip_reasons() -> tuple[str, ...]:
    """The skip reasons (regular expressions) a baked suite may report in this run; on
    Windows the project's ci/windows-skips.txt lists the tests that may skip instead."""
    return () if services_required() else SERVICE_SKIP_REASONS


@dataclass
class SuiteResult:
    passed: int
    failed: int
    errors: int
    skipped: int
    returncode: int
    output: str
    collected: int | None = None
    # (count, location, reason) for every line of pytest's "short test summary" skips.
    skips: tuple = ()
    # Test files of the project the run was meant to cover (all of tests/ when none was named).
    files: tuple = ()
    # The baked project and its run's junit report (pytest --junitxml).
    project: Path | None = None
    report: Path | None = None

    def assert_passed(self, at_least: int = 1) -> None:
        assert self.returncode == 0 and self.failed == 0 and self.errors == 0, self.output[-20000:]
        assert self.passed >= at_least, self.output[-20000:]

    def assert_clean(self, allowed_skips: tuple[str, ...] | None = None) -> None:
        """Every collected test passed, except skips whose reason matches ``allowed_skips``
        (by default those this run expects: outside services, none with REQUIRE_SERVICES=1),
        and every test file of the run was collected."""
        allowed = expected_skip_reasons() if allowed_skips is None else allowed_skips
        tail = self.output[-20000:]
        assert self.returncode == 0 and self.failed == 0 and self.errors == 0, tail
        if IS_WINDOWS and allowed_skips is None:
            # On Windows the project's own list decides, test by test, as in its CI.
            checked = run([sys.executable, "ci/check_skips.py", self.report, "--allow", "ci/windows-skips.txt"],
                          cwd=self.project, timeout=60)
            assert checked.returncode == 0, checked.stdout + "\n" + tail
        unexpected = [f"{location}: {reason}" for _, location, reason in self.skips
                      if not any(re.search(pattern, reason) for pattern in allowed)]
        assert IS_WINDOWS and allowed_skips is None or not unexpected, \
            "unexpected skips:\n" + "\n".join(unexpected) + "\n" + tail
        assert sum(count for count, _, _ in self.skips) == self.skipped, \
            f"{self.skipped} skipped but the summary explains {len(self.skips)} lines\n{tail}"
        assert self.collected, f"no 'collected N items' line\n{tail}"
        assert self.passed + self.skipped == self.collected, \
            f"{self.collected} collected, {self.passed} passed, {self.skipped} skipped\n{tail}"
        missing = [name for name in self.files
                   if not re.search(rf"^{re.escape(name)} ", self.output, re.M)]
        assert not missing, f"test files that did not run: {missing}\n{tail}"


_SUMMARY = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")


def parse_pytest_summary(output: str) -> dict:
    """Counts from pytest's closing "=== 3 passed, 1 skipped in 2.0s ===" line."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    lines = [line for line in output.splitlines() if re.search(r"\d+ \w+.* in [\d.]+s", line)]
    if not lines:
        return counts
    for number, word in _SUMMARY.findall(lines[-1]):
        key = "errors" if word.startswith("error") else word
        counts[key] = counts.get(key, 0) + int(number)
    return counts


def parse_skips(output: str) -> tuple:
    """(count, location, reason) of each SKIPPED line in pytest's short test summary (-rs)."""
    return tuple((int(count), f"{path}:{line}", reason.strip())
                 for count, path, line, reason in _SKIP_LINE.findall(output))


def suite_files(project_dir: Path, args: tuple = ()) -> tuple:
    """The test files a run of the baked suite with ``args`` covers, relative to the project."""
    named = [a for a in args if str(a).endswith(".py")]
    if named:
        return tuple(sorted(str(a).replace("\\", "/") for a in named))
    ignored = tuple(str(a).partition("=")[2].rstrip("/") + "/" for a in args
                    if str(a).startswith("--ignore="))
    return tuple(sorted(name for name in (path.relative_to(project_dir).as_posix()
                                          for path in (project_dir / "tests").rglob("test_*.py"))
                        if not name.startswith(ignored)))


def run_baked_suite(project_dir: Path, python: str | None = None, env: dict | None = None,
                    args: tuple = (), timeout: float = 1500, requirements: str | None = None) -> SuiteResult:
    """Install the baked project's test requirements (requirements_for_tests()) into a fresh
    .venv made with ``python`` and run its own pytest with ``env`` added to a clean environment.

    Returns the parsed counts; call ``.assert_clean()`` (or ``.assert_passed()``) on it.
    """
    project_dir = Path(project_dir)
    vpython = make_venv(project_dir, python or main_python(), requirements or requirements_for_tests())
    return run_suite(project_dir, vpython, clean_env(**(env or {})), args, timeout)


def run_suite(project_dir: Path, vpython: Path, env: dict, args: tuple = (), timeout: float = 1500,
              on_start=None) -> SuiteResult:
    """The baked project's own pytest, run by ``vpython`` with exactly ``env``."""
    # -ra: one summary line per skip with its reason, whatever the project's addopts say.
    report = project_dir / "pytest-report.xml"
    completed = run([vpython, "-m", "pytest", "-p", "no:cacheprovider", "-ra", f"--junitxml={report}", *args],
                    cwd=project_dir, env=env, timeout=timeout, on_start=on_start)
    counts = parse_pytest_summary(completed.stdout)
    collected = _COLLECTED.search(completed.stdout)
    return SuiteResult(counts["passed"], counts["failed"], counts["errors"], counts["skipped"],
                       completed.returncode, completed.stdout,
                       collected=int(collected.group(1)) if collected else None,
                       skips=parse_skips(completed.stdout), files=suite_files(project_dir, args),
                       project=project_dir, report=report)


def read_env_file(path: Path) -> dict:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values
