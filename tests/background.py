"""The default bake's full test suite, run in a thread while the template's other tests run;
and the benchmarks' virtual environment, made meanwhile.

It is the longest part of the template's suite (about nine minutes on two cores) and keeps
less than one core busy on average (its servers wait on clocks and sockets), so the other
tests, which mostly bake, install, lint or parse one process at a time, use the other core
meanwhile; the benchmark smokes, which load every core, run only after it has ended
(conftest.py orders them last), all at once (test_benchmarks_smoke.py). Its virtual environment, made first, is shared with the
tests that need the same requirements (test_workflows.py, test_update.py): one pip install
instead of three. The benchmark smokes' cached venv (the requirements plus the peer servers)
is made in another thread at the start too, so that its pip install is not added to the time
the smokes take at the end.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from helpers import ROOT, SuiteResult, clean_env, kill_tree, main_python, make_venv, run, run_suite

# A developer's .env with every documented SERVER_* and DJANGO_* variable set to a valid
# value other than its default (what the README suggests for production, a proxy, a busy
# site): the project's own tests decide their settings and must pass with it all the same.
DEVELOPER_ENV = {
    "SERVER_HOST": "0.0.0.0", "SERVER_PORT": "8765", "SERVER_THREADS": "3", "SERVER_WORKERS": "2",
    "SERVER_STATIC_FROM_LOOP": "false",
    "SERVER_ACCESS_LOG": "false", "SERVER_LOG_FILE": "logs/elsewhere.log", "SERVER_LOG_MAX_BYTES": "1M",
    "SERVER_LOG_BACKUPS": "2", "SERVER_TRUSTED_PROXIES": "127.0.0.1", "SERVER_MAX_CONNECTIONS": "40",
    "SERVER_MAX_CONNECTIONS_PER_IP": "4", "SERVER_MAX_QUEUE": "5", "SERVER_MAX_QUEUE_WAIT": "1",
    "SERVER_MAX_BODY_SIZE": "2K", "SERVER_MAX_HEADER_SIZE": "2K", "SERVER_IDLE_TIMEOUT": "2",
    "SERVER_BODY_TIMEOUT": "2", "SERVER_MIN_BODY_RATE": "100K", "SERVER_BODY_RATE_WINDOW": "1",
    "SERVER_WRITE_TIMEOUT": "1", "SERVER_MIN_SEND_RATE": "100K", "SERVER_DRAIN_TIMEOUT": "1", "SERVER_REQUEST_TIMEOUT": "1",
    "SERVER_MAX_REQUESTS": "20", "SERVER_MAX_REQUESTS_JITTER": "3", "SERVER_MAX_WEBSOCKETS": "1",
    "SERVER_WEBSOCKET_MAX_MESSAGE_SIZE": "1K", "SERVER_WEBSOCKET_PING_INTERVAL": "1",
    "SERVER_WEBSOCKET_PING_TIMEOUT": "1", "SERVER_METRICS": "9464", "SERVER_METRICS_PUBLIC": "true",
    "SERVER_CERTFILE": "missing-cert.pem", "SERVER_KEYFILE": "missing-key.pem",
    "SERVER_CERT_PASSWORD": "not-the-password",
    "DJANGO_DEBUG": "true", "DJANGO_HTTPS": "true", "DJANGO_ALLOWED_HOSTS": "example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://example.com", "DJANGO_LOG_LEVEL": "DEBUG",
    "DJANGO_TIME_ZONE": "Asia/Tokyo", "DJANGO_ADMINS": "Ops <ops@example.com>",
    "DJANGO_DEFAULT_FROM_EMAIL": "site@example.com", "DJANGO_SERVER_EMAIL": "errors@example.com",
    "DJANGO_SECURE_SSL_REDIRECT": "true", "DJANGO_SECURE_HSTS_SECONDS": "60",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true", "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "DJANGO_SESSION_COOKIE_AGE": "60", "DJANGO_SESSION_EXPIRE_AT_BROWSER_CLOSE": "true",
    "DJANGO_STATIC_ROOT": "elsewhere/static", "DJANGO_MEDIA_ROOT": "elsewhere/media",
    "DJANGO_EMAIL_FILE_PATH": "elsewhere/mail",
    "SERVER_WINDOWS_AUTH": "paths", "SERVER_WINDOWS_AUTH_PATHS": "/intranet-sign-on/",
    "SERVER_WINDOWS_AUTH_USER_FORMAT": "lower", "SERVER_WINDOWS_AUTH_HEADER": "X-Intranet-User",
    "DJANGO_WINDOWS_GROUPS": "CORP\\Site Editors=Editors", "DJANGO_WINDOWS_STAFF_GROUPS": "CORP\\Site Editors",
    "DJANGO_WINDOWS_SUPERUSER_GROUPS": "S-1-5-32-544",
}

# Bounds of each step (each kills what it started when it runs out), and of the wait for all.
VENV_TIMEOUT = 900
SUITE_TIMEOUT = 1500
WAIT_TIMEOUT = VENV_TIMEOUT * 2 + SUITE_TIMEOUT + 300


class DefaultSuite:
    """A default bake whose full suite runs (main Python, DEVELOPER_ENV in its .env) in a
    thread of its own. Everything it runs is a subprocess with an explicit working folder
    and environment, taken when it starts: nothing the other tests change (the current
    folder, os.environ) reaches it, and a bake in a thread of this process could not say so
    (cookiecutter changes the current folder)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env = clean_env()
        self.python = main_python()
        self.project: Path | None = None
        self.venv_python: Path | None = None
        self.suite: SuiteResult | None = None
        self.error: BaseException | None = None
        self.venv_ready = threading.Event()
        self.done = threading.Event()
        self.running: subprocess.Popen | None = None  # the step under way, for stop()
        self.thread = threading.Thread(target=self._work, name="default-suite", daemon=True)

    def start(self) -> DefaultSuite:
        self.thread.start()
        return self

    def _work(self) -> None:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            baked = run([sys.executable, "-m", "cookiecutter", "--no-input", "-o", self.workdir, ROOT],
                        cwd=self.workdir, env=self.env, timeout=300, on_start=self._started)
            assert baked.returncode == 0, baked.stdout
            (project,) = (path.parent for path in self.workdir.glob("*/manage.py"))
            self.project = project
            self.venv_python = make_venv(project, self.python, env=self.env, on_start=self._started)
            self.venv_ready.set()
            env_file = project / ".env"
            original = env_file.read_text(encoding="utf-8")
            extra = "".join(f"{name}={value}\n" for name, value in DEVELOPER_ENV.items())
            env_file.write_text(original + "\n# A developer's own settings\n" + extra, encoding="utf-8")
            try:
                self.suite = run_suite(project, self.venv_python, env=self.env, timeout=SUITE_TIMEOUT,
                                       on_start=self._started)
            finally:
                env_file.write_text(original, encoding="utf-8")
        except BaseException as exc:  # pytest.fail() included: re-raised in the waiting test
            self.error = exc
        finally:
            self.venv_ready.set()
            self.done.set()

    def _started(self, process: subprocess.Popen) -> None:
        self.running = process

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def shared_venv(self) -> Path:
        """The python of the bake's venv (requirements_for_tests(), main Python), once made."""
        assert self.venv_ready.wait(VENV_TIMEOUT + 360), "the default bake's venv was not made in time"
        if self.venv_python is None:
            self._raise()
        return self.venv_python

    def result(self) -> tuple[Path, SuiteResult]:
        """(project, suite result) once the suite has run; its failure if it could not run."""
        assert self.done.wait(WAIT_TIMEOUT), "the default bake's suite did not end in time"
        self._raise()
        return self.project, self.suite

    def stop(self) -> None:
        """Kill what is still running (the session ended early)."""
        process = self.running
        if not self.done.is_set() and process is not None and process.poll() is None:
            kill_tree(process.pid)


def default_suite(config) -> DefaultSuite:
    """The default bake's suite of this pytest session, started on first use (conftest.py
    starts it once the tests are collected)."""
    suite = getattr(config, "_default_suite", None)
    if suite is None:
        factory = getattr(config, "_tmp_path_factory", None)
        workdir = factory.mktemp("default-suite") if factory else Path(tempfile.mkdtemp(prefix="default-suite-"))
        suite = config._default_suite = DefaultSuite(workdir).start()
    return suite


# What benchmarks/run.py does before it measures anything: bake, then make (or reuse) its venv.
_BENCHMARK_VENV = ("import pathlib, shutil, sys, tempfile\n"
                   "sys.path.insert(0, 'benchmarks')\n"
                   "import run\n"
                   "workdir = pathlib.Path(tempfile.mkdtemp(prefix='bench-venv-'))\n"
                   "try:\n"
                   "    run.cached_venv(run.bake(workdir), sys.argv[1], pathlib.Path(sys.argv[2]).resolve())\n"
                   "finally:\n"
                   "    shutil.rmtree(workdir, ignore_errors=True)\n")


class BenchmarkVenv:
    """benchmarks/run.py's cached venv for the main Python, made in a thread; the smokes wait
    for it (two pip installs into one folder would break it)."""

    def __init__(self) -> None:
        self.env = clean_env()
        self.cache_dir = Path(self.env.get("BENCH_CACHE_DIR") or ROOT / "benchmarks" / ".cache")
        self.output = ""
        self.done = threading.Event()
        self.running: subprocess.Popen | None = None
        self.thread = threading.Thread(target=self._work, name="benchmark-venv", daemon=True)

    def _work(self) -> None:
        try:
            made = run([sys.executable, "-c", _BENCHMARK_VENV, main_python(), self.cache_dir], cwd=ROOT,
                       env=self.env, timeout=VENV_TIMEOUT, on_start=self._started)
            self.output = "" if made.returncode == 0 else made.stdout
        except BaseException as exc:  # the smoke that waits reports it
            self.output = repr(exc)
        finally:
            self.done.set()

    def _started(self, process: subprocess.Popen) -> None:
        self.running = process

    def wait(self) -> None:
        """Once made; a failure here is left to the smoke, which makes the venv itself."""
        self.done.wait(VENV_TIMEOUT + 120)

    def stop(self) -> None:
        process = self.running
        if not self.done.is_set() and process is not None and process.poll() is None:
            kill_tree(process.pid)


def benchmark_venv(config) -> BenchmarkVenv:
    """The benchmark venv of this pytest session, started on first use."""
    prepared = getattr(config, "_benchmark_venv", None)
    if prepared is None:
        prepared = config._benchmark_venv = BenchmarkVenv()
        prepared.thread.start()
    return prepared
