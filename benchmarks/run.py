#!/usr/bin/env python
"""Benchmark tornado_server.py against the WSGI servers a user could pick, and against the app alone.

    python benchmarks/run.py                 # full run, 10 s per case (about 10 minutes)
    python benchmarks/run.py --quick         # smoke run, about 2 s per case, fewer cases
    python benchmarks/run.py --duration 20   # longer, steadier numbers

Bakes the template into a temporary directory, adds benchmark views to the baked copy only
(a ``bench`` app with its own settings and URLs), installs the project's requirements plus
the peer servers (waitress, cheroot, granian, gunicorn) into a cached virtual environment,
and loads every server with ``wrk`` on 127.0.0.1; the "in-process bound" calls the same
application in a loop on one thread, with no HTTP at all. Writes ``benchmarks/results/latest.md`` and, when matplotlib can be imported by the
interpreter running this script, ``benchmarks/results/latest.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import (  # a sibling module: benchmarks/ is not a package
    add_environment_options,
    leave_workdir,
    write_results,
)

ROOT = Path(__file__).resolve().parent.parent
IS_WINDOWS = sys.platform == "win32"
SLUG = "benchsite"
THREADS = 8
# The servers compared with, pinned so runs compare like with like. gunicorn does not run
# on Windows; the others install from wheels there.
PEERS = ("waitress==3.0.2", "cheroot==11.1.2", "granian==2.8.9", 'gunicorn==27.0.1; sys_platform != "win32"')
BIG_FILE_SIZE = 1024**3


# ----------------------------------------------------------------------------------------
# The benchmark app, written into the baked copy only.
# ----------------------------------------------------------------------------------------

BENCH_FILES = {
    "bench/__init__.py": "",
    "bench/settings.py": f"""
        from {SLUG}.settings import *  # noqa: F403
        from {SLUG}.settings import INSTALLED_APPS, LOGGING

        INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
        ROOT_URLCONF = "bench.urls"
        WSGI_APPLICATION = "{SLUG}.wsgi.application"
        DEBUG = False
        # No server in the comparison writes a line per request unless the table says so.
        LOGGING["loggers"]["django.server"] = {{"level": "WARNING"}}
        LOGGING["loggers"]["tornado.access"] = {{"level": "WARNING"}}
        LOGGING["loggers"]["waitress.queue"] = {{"level": "ERROR"}}
    """,
    "bench/urls.py": """
        from django.urls import path

        from . import views

        urlpatterns = [
            path("hello", views.hello),
            path("items", views.items),
            path("block", views.block),
            path("work", views.work),
            path("big", views.big),
            path("page", views.page),
        ]
    """,
    "bench/views.py": """
        import os
        import time

        from django.http import FileResponse, HttpResponse
        from django.shortcuts import render

        from .models import Item

        PAGE = b"x" * (4 * 1024**2)  # one object: every answer shares it


        def hello(request):
            return HttpResponse("Hello, world")


        def items(request):
            return render(request, "bench/items.html", {"items": Item.objects.order_by("id")[:20]})


        def block(request):
            time.sleep(1)
            return HttpResponse("slept 1s")


        def work(request):
            time.sleep(float(request.GET.get("seconds", "0.2")))
            return HttpResponse("done")


        def big(request):
            return FileResponse(open(os.environ["BENCH_BIG_FILE"], "rb"))


        def page(request):
            return HttpResponse(PAGE)  # a whole 4 MB page, sent as one body
    """,
    "bench/models.py": """
        from django.db import models


        class Item(models.Model):
            name = models.CharField(max_length=100)
            price = models.DecimalField(max_digits=8, decimal_places=2)
    """,
    "bench/migrations/__init__.py": "",
    "bench/migrations/0001_initial.py": """
        from decimal import Decimal

        from django.db import migrations, models


        def seed(apps, schema_editor):
            Item = apps.get_model("bench", "Item")
            Item.objects.bulk_create(
                Item(name=f"Item number {n}", price=Decimal(n) * Decimal("1.25")) for n in range(1, 101)
            )


        class Migration(migrations.Migration):
            initial = True
            dependencies = []
            operations = [
                migrations.CreateModel(
                    name="Item",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                        ("name", models.CharField(max_length=100)),
                        ("price", models.DecimalField(decimal_places=2, max_digits=8)),
                    ],
                ),
                migrations.RunPython(seed, migrations.RunPython.noop),
            ]
    """,
    "bench/templates/bench/items.html": """
        {% extends "base.html" %}
        {% block content %}
        <table>
          <tr><th>#</th><th>Name</th><th>Price</th></tr>
          {% for item in items %}<tr><td>{{ item.id }}</td><td>{{ item.name }}</td><td>{{ item.price }}</td></tr>
          {% endfor %}
        </table>
        {% endblock %}
    """,
    # The application alone: what one thread gets with no server, no socket and no HTTP.
    "bench_bound.py": """
        import io
        import os
        import sys
        import time

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

        from django.core.wsgi import get_wsgi_application

        application = get_wsgi_application()
        path, seconds = sys.argv[1], float(sys.argv[2])


        def environ():
            return {
                "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
                "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "bench", "HTTP_ACCEPT": "*/*",
                "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
                "wsgi.multiprocess": False, "wsgi.run_once": False,
            }


        def start_response(status, headers, exc_info=None):
            if not status.startswith("200"):
                raise SystemExit(f"{path} answered {status}")
            return lambda data: None


        def call():
            result = application(environ(), start_response)
            try:
                for _ in result:
                    pass
            finally:
                result.close()


        deadline = time.perf_counter() + 1.0  # warm-up
        while time.perf_counter() < deadline:
            call()
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            call()
            count += 1
        print(f"{count / (time.perf_counter() - started):.1f}")
    """,
    # Tornado's own WSGIContainer as its documentation shows it, on a pool of the same size.
    "bench_stock.py": f"""
        import asyncio
        import os
        import sys
        from concurrent.futures import ThreadPoolExecutor

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

        from django.core.wsgi import get_wsgi_application
        from tornado.httpserver import HTTPServer
        from tornado.wsgi import WSGIContainer


        async def main(port):
            container = WSGIContainer(get_wsgi_application(), executor=ThreadPoolExecutor({THREADS}))
            HTTPServer(container).listen(port, "127.0.0.1")
            print("stock WSGIContainer is running at", port, flush=True)
            await asyncio.Event().wait()


        asyncio.run(main(int(sys.argv[1])))
    """,
}


def write_bench_app(project: Path) -> None:
    for relative, text in BENCH_FILES.items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    static = project / "bench" / "static" / "bench"
    static.mkdir(parents=True, exist_ok=True)
    # 50 KB of text that does not compress to nothing.
    words = [hashlib.sha256(str(n).encode()).hexdigest()[: 4 + n % 9] for n in range(10000)]
    data = " ".join(words).encode()[: 50 * 1024]
    (static / "data.txt").write_bytes(data)


# ----------------------------------------------------------------------------------------
# Baking and the cached virtual environment.
# ----------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], check=True, **kwargs)


def bake(workdir: Path) -> Path:
    try:
        import cookiecutter  # noqa: F401
    except ImportError:
        raise SystemExit(
            "ERROR: cookiecutter is not installed for this interpreter; run this script with the "
            "template's test environment (.venv/bin/python benchmarks/run.py)"
        ) from None
    run([sys.executable, "-m", "cookiecutter", "--no-input", "-o", workdir, ROOT,
         f"project_name={SLUG}", f"threads={THREADS}"], stdout=subprocess.DEVNULL)
    return workdir / SLUG


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if IS_WINDOWS else "bin/python")


def cached_venv(project: Path, python: str, cache_dir: Path) -> Path:
    """A virtual environment with the project's requirements and the peer servers, reused
    while requirements.txt, the peers and the Python version stay the same."""
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    key = hashlib.sha256(
        (project / "requirements.txt").read_bytes() + " ".join(PEERS).encode() + version.encode()
    ).hexdigest()[:16]
    venv = cache_dir / f"venv-{key}"
    if venv_python(venv).exists() and (venv / ".complete").exists():
        log(f"reusing {venv}")
        return venv_python(venv)
    log(f"creating {venv} (requirements + {', '.join(PEERS)})")
    shutil.rmtree(venv, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    run([python, "-m", "venv", venv])
    run([venv_python(venv), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-r", project / "requirements.txt", *PEERS])
    (venv / ".complete").write_text(version)
    return venv_python(venv)


# ----------------------------------------------------------------------------------------
# Servers.
# ----------------------------------------------------------------------------------------


def bench_env(workdir: Path, big_file: Path | None = None) -> dict:
    """The environment every benchmarked server runs with: this one without what would
    leak into the project, plus the bench settings, a throwaway database and static root."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "SERVER_", "PYTEST_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_SECRET_KEY": "bench-" + "k" * 60,
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": f"sqlite:///{(workdir / 'bench.sqlite3').as_posix()}",
        "DJANGO_STATIC_ROOT": str(workdir / "static"),
        "PYTHONUNBUFFERED": "1",
    })
    if big_file is not None:
        env["BENCH_BIG_FILE"] = str(big_file)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerSpec:
    name: str
    args: list  # {python} and {port} are filled in
    note: str = ""
    stop_signal: int = signal.SIGINT

    @property
    def one_event_loop(self) -> bool:
        """One process whose main thread runs the event loop: its CPU time is measured."""
        return self.name.startswith("tornado") and "--workers" not in self.name


def server_specs() -> dict[str, ServerSpec]:
    ts = ["{python}", "tornado_server.py", "--port", "{port}", "--threads", str(THREADS),
          "--settings", "bench.settings"]
    app = f"{SLUG}.wsgi:application"
    # Blocking threads are granian's WSGI threads; the last argument is the worker count.
    granian = ["{python}", "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
               "--port", "{port}", "--blocking-threads", str(THREADS), "--log-level", "warning",
               "--no-ws", app, "--workers"]
    gunicorn = ["{python}", "-m", "gunicorn", "--worker-class", "gthread", "--threads", str(THREADS),
                "--bind", "127.0.0.1:{port}", "--log-level", "warning", app, "--workers"]
    return {spec.name: spec for spec in [
        ServerSpec("tornado_server", [*ts, "--no-access-log"], "1 process, 8 threads, no access log"),
        ServerSpec("tornado_server --workers 2", [*ts, "--no-access-log", "--workers", "2"],
                   "2 processes x 8 threads, no access log"),
        ServerSpec("tornado_server + access log", ts, "1 process, 8 threads, access log to stderr"),
        ServerSpec("tornado_server + metrics", [*ts, "--no-access-log", "--metrics", "{metrics_port}"],
                   "1 process, 8 threads, no access log, --metrics on (counting + 1 s snapshots)"),
        ServerSpec("waitress", ["{python}", "-m", "waitress", f"--threads={THREADS}",
                                "--listen=127.0.0.1:{port}", f"{SLUG}.wsgi:application"],
                   "1 process, 8 threads (logs no access lines)", signal.SIGTERM),
        ServerSpec("granian", [*granian, "1"], "1 worker (all Windows allows), 8 blocking threads"),
        ServerSpec("granian --workers 2", [*granian, "2"], "2 workers x 8 blocking threads (not on Windows)"),
        ServerSpec("cheroot", ["{python}", "-m", "cheroot", "--bind", "127.0.0.1:{port}",
                               "--threads", str(THREADS), "--max-threads", str(THREADS),
                               f"{SLUG}.wsgi:application"],
                   "1 process, 8 threads", signal.SIGTERM),
        ServerSpec("tornado WSGIContainer", ["{python}", "bench_stock.py", "{port}"],
                   "Tornado's stock container, ThreadPoolExecutor(8)", signal.SIGTERM),
        ServerSpec("runserver", ["{python}", "manage.py", "runserver", "--noreload",
                                 "127.0.0.1:{port}"],
                   "Django's development server (a thread per connection)", signal.SIGTERM),
        *([] if IS_WINDOWS else [
            ServerSpec("gunicorn gthread", [*gunicorn, "1"], "1 worker x 8 threads (Linux and macOS only)",
                       signal.SIGTERM),
            ServerSpec("gunicorn gthread --workers 2", [*gunicorn, "2"], "2 workers x 8 threads",
                       signal.SIGTERM),
        ]),
    ]}


class RunningServer:
    def __init__(self, spec: ServerSpec, python: Path, project: Path, env: dict, logdir: Path) -> None:
        self.spec = spec
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logfile = open(logdir / (re.sub(r"\W+", "_", spec.name) + ".log"), "wb")
        args = [a.format(python=python, port=self.port, metrics_port=free_port()) for a in spec.args]
        # A process group of its own: Ctrl+Break (Windows) or a signal to the group reaches
        # the workers too, as in a console window.
        self.process = subprocess.Popen(
            args, cwd=project, env=env, stdout=self.logfile, stderr=subprocess.STDOUT,
            start_new_session=not IS_WINDOWS,
            creationflags=subprocess.CREATE_NEW_PROCESS_GROUP if IS_WINDOWS else 0,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited with {self.process.returncode}; "
                                   f"see {self.logfile.name}")
            try:
                with urllib.request.urlopen(self.url + "/hello", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.spec.name} did not answer within {timeout}s")

    def wait_idle(self, timeout: float = 30) -> None:
        """Wait until requests a finished load left queued are done (wrk does not wait)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url + "/hello", timeout=timeout) as response:
                    response.read()
            except OSError:
                pass
            if time.monotonic() - started < 0.2:
                return

    def worker_pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            # Windows sends no SIGINT to another process: Ctrl+Break is its Ctrl+C.
            stop = signal.CTRL_BREAK_EVENT if IS_WINDOWS and self.spec.stop_signal == signal.SIGINT \
                else self.spec.stop_signal
            self.process.send_signal(stop)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                if IS_WINDOWS:  # the whole tree: --workers children too
                    subprocess.run(["taskkill", "/PID", str(self.process.pid), "/T", "/F"],
                                   capture_output=True, timeout=30, check=False)
                else:
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.logfile.close()


# ----------------------------------------------------------------------------------------
# Load with wrk.
# ----------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    path: str
    connections: int
    label: str


@dataclass
class Result:
    server: str
    case: str
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    errors: int = 0
    non_2xx: int = 0
    requests: int = 0
    failure: str = ""
    loop_us: float = float("nan")  # event-loop thread CPU per request (one-process Tornado servers)
    process_us: float = float("nan")  # the whole process's CPU per request, loop included
    rounds: tuple = ()  # req/s of every round, in order (the row shows the best)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * _UNITS_MS[match.group(2)] if match else float("nan")


def wrk(url: str, connections: int, seconds: float) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
         "--latency", url],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout
    parsed = {"raw": out}
    if match := re.search(r"Requests/sec:\s+([\d.]+)", out):
        parsed["rps"] = float(match.group(1))
    if match := re.search(r"(\d+) requests in", out):
        parsed["requests"] = int(match.group(1))
    for pct in ("50", "99"):
        if match := re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M):
            parsed[f"p{pct}"] = to_ms(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        parsed["errors"] = sum(int(g) for g in match.groups())
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        parsed["non_2xx"] = int(match.group(1))
    return parsed


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU time (user + system) of a process, or of one of its threads; Linux only."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(server: RunningServer, case: Case, seconds: float, warmup: float) -> Result:
    url = server.url + case.path
    if warmup:
        wrk(url, case.connections, warmup)
    pid = server.process.pid
    before = (cpu_seconds(pid, pid), cpu_seconds(pid)) if server.spec.one_event_loop else None
    data = wrk(url, case.connections, seconds)
    result = Result(server.spec.name, case.name)
    if before and data.get("requests"):
        # Requests wrk did not see finish still cost CPU: counted against those it did.
        result.loop_us = (cpu_seconds(pid, pid) - before[0]) / data["requests"] * 1e6
        result.process_us = (cpu_seconds(pid) - before[1]) / data["requests"] * 1e6
    if "rps" not in data:
        result.failure = data["raw"].strip().splitlines()[-1:] or ["no output from wrk"]
        return result
    result.rps = data["rps"]
    result.p50_ms = data.get("p50", float("nan"))
    result.p99_ms = data.get("p99", float("nan"))
    result.errors = data.get("errors", 0)
    result.non_2xx = data.get("non_2xx", 0)
    result.requests = data.get("requests", 0)
    return result


BOUND = "in-process bound"


def measure_bound(python: Path, project: Path, env: dict, case: Case, seconds: float) -> Result:
    """The application called in a loop on one thread (bench_bound.py): no server at all."""
    result = Result(BOUND, case.name)
    done = subprocess.run([python, "bench_bound.py", case.path, str(seconds)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=seconds + 120)
    try:
        result.rps = float(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result.failure = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
    return result


# ----------------------------------------------------------------------------------------
# Memory while downloading a large file.
# ----------------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class RssResult:
    server: str
    size: int
    baseline_mb: float = 0.0
    peak_mb: float = 0.0
    received: int = 0
    seconds: float = 0.0
    note: str = ""

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.baseline_mb


def measure_download(server: RunningServer, size: int, limit_mb: float, timeout: float) -> RssResult:
    """Download /big while sampling the server's VmRSS; stop early past ``limit_mb``."""
    pid = server.worker_pid()
    result = RssResult(server.spec.name, size, baseline_mb=rss_kb(pid) / 1024)
    peak = [rss_kb(pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            if peak[0] / 1024 - result.baseline_mb > limit_mb:
                result.note = f"stopped at {limit_mb:.0f} MB growth"
                server.process.kill()
                return
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        with urllib.request.urlopen(server.url + "/big", timeout=timeout) as response:
            while block := response.read(1024 * 1024):
                result.received += len(block)
                if time.monotonic() - started > timeout:
                    result.note = f"stopped after {timeout:.0f}s"
                    break
    except Exception as exc:  # the limit above kills the server mid-download
        result.note = result.note or f"{type(exc).__name__}: {exc}"
    result.seconds = time.monotonic() - started
    stop.set()
    sampler.join()
    result.peak_mb = peak[0] / 1024
    if result.received != size and not result.note:
        result.note = f"received {result.received} of {size} bytes"
    return result


# ----------------------------------------------------------------------------------------
# Report.
# ----------------------------------------------------------------------------------------


def machine_info(python: Path) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = subprocess.run(
        [python, "-c", "import json, sys, importlib.metadata as m\n"
         "def version(name):\n"
         "    try:\n        return m.version(name)\n"
         "    except m.PackageNotFoundError:\n        return '-'\n"
         "print(json.dumps({'python': sys.version.split()[0], **{p: version(p) for p in "
         "('Django', 'tornado', 'waitress', 'whitenoise', 'cheroot', 'granian', 'gunicorn')}}))"],
        capture_output=True, text=True, check=True,
    ).stdout
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "os": f"{platform.system()} {platform.release()}",
        "wrk": wrk_version[1] if len(wrk_version) > 1 else "?", **json.loads(versions),
    }


def fmt_ms(value: float) -> str:
    if value != value:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(results: list[Result], cases: list[Case], servers: list[str]) -> list[str]:
    # Every round's req/s beside the best: where threads land on the cores can move one
    # process by 20 % or more from round to round (benchmarks/README.md).
    rows = ["| case | server | req/s | every round | p50 ms | p99 ms | vs waitress | of bound | errors |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    by_key = {(r.case, r.server): r for r in results}
    for case in cases:
        base = by_key.get((case.name, "waitress"))
        bound = by_key.get((case.name, BOUND))
        for server in [*servers, BOUND]:
            r = by_key.get((case.name, server))
            if r is None:
                continue
            if r.failure:
                rows.append(f"| {case.label} | {server} | failed: {r.failure} | | | | | | |")
                continue
            ratio = f"{r.rps / base.rps:.2f}x" if base and base.rps else "-"
            of_bound = f"{r.rps / bound.rps:.2f}" if bound and bound.rps and not bound.failure else "-"
            errors = r.errors + r.non_2xx
            every = " / ".join(f"{rps:,.0f}" for rps in r.rounds)
            rows.append(f"| {case.label} | {server} | {r.rps:,.0f} | {every} | {fmt_ms(r.p50_ms)} | "
                        f"{fmt_ms(r.p99_ms)} | {ratio} | {of_bound} | {errors or ''} |")
    return rows


def cpu_table(results: list[Result], cases: list[Case], servers: list[str]) -> list[str]:
    """CPU per request of the one-process Tornado servers: their event-loop thread and all."""
    rows = ["| case | server | loop thread µs/request | whole process µs/request |",
            "| --- | --- | ---: | ---: |"]
    by_key = {(r.case, r.server): r for r in results}
    for case in cases:
        for server in servers:
            r = by_key.get((case.name, server))
            if r is not None and r.loop_us == r.loop_us:
                rows.append(f"| {case.label} | {server} | {r.loop_us:.0f} | {r.process_us:.0f} |")
    return rows if len(rows) > 2 else []


def rss_table(rss: list[RssResult]) -> list[str]:
    rows = ["| server | file | RSS before | RSS peak | growth | time | note |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rss:
        rows.append(f"| {r.server} | {r.size / 1024**2:,.0f} MB | {r.baseline_mb:.0f} MB | "
                    f"{r.peak_mb:.0f} MB | **{r.growth_mb:.0f} MB** | {r.seconds:.1f} s | {r.note} |")
    return rows


def write_chart(results: list[Result], cases: list[Case], servers: list[str], path: Path,
                title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed for this interpreter: no chart")
        return False
    by_key = {(r.case, r.server): r for r in results}
    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 4.8), squeeze=False)
    colors = plt.get_cmap("tab20").colors  # one colour per server: more than ten of them
    for ax, case in zip(axes[0], cases, strict=True):
        names = [s for s in servers if (case.name, s) in by_key]
        values = [by_key[(case.name, s)].rps for s in names]
        bars = ax.bar(range(len(names)), values, color=[colors[servers.index(s) % len(colors)] for s in names])
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7)
        bound = by_key.get((case.name, BOUND))
        if bound is not None and bound.rps:
            ax.axhline(bound.rps, color="black", linestyle="--", linewidth=0.8)
            ax.annotate(f"in-process bound {bound.rps:,.0f}", (0, bound.rps), fontsize=6,
                        xytext=(0, 2), textcoords="offset points")
        ax.set_title(case.label, fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=7)
        ax.set_ylabel("requests/s" if ax is axes[0][0] else "")
        ax.tick_params(axis="y", labelsize=7)
        ax.margins(y=0.12)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------------------
# Main.
# ----------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: ~2 s per case, hello page only, 3 servers, 64 MB download")
    parser.add_argument("--duration", type=float, default=None, help="seconds per case (default 10)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="measure every case this many times, keep the best (default 2, quick 1)")
    parser.add_argument("--servers", default="", help="comma-separated subset of server names")
    parser.add_argument("--cases", default="", help="comma-separated subset of: hello,items,static,block")
    add_environment_options(parser)
    parser.add_argument("--no-download", action="store_true", help="skip the large-download memory test")
    parser.add_argument("--no-bound", action="store_true", help="skip the in-process bound")
    parser.add_argument("--keep", action="store_true", help="keep the baked project directory")
    args = parser.parse_args(argv)

    if shutil.which("wrk") is None:
        raise SystemExit("ERROR: wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    seconds = args.duration or (2.0 if args.quick else 10.0)
    args.rounds = args.rounds or (1 if args.quick else 2)
    warmup = 1.0 if args.quick else 2.0
    specs = server_specs()
    server_names = list(specs)
    if args.quick:
        server_names = ["tornado_server", "waitress", "tornado WSGIContainer"]
    if args.servers:
        server_names = [s.strip() for s in args.servers.split(",") if s.strip()]
        unknown = set(server_names) - set(specs)
        if unknown:
            parser.error(f"unknown servers {sorted(unknown)}; choose from {list(specs)}")
    if "waitress" not in server_names:
        server_names.append("waitress")  # every ratio is against it
    all_cases = [
        Case("hello", "/hello", 20, "hello world, 20 conn"),
        Case("items", "/items", 20, "template + SQLite query, 20 conn"),
        Case("static", "/static/bench/data.txt", 20, "50 KB static file (WhiteNoise), 20 conn"),
        Case("block", "/block", 50, "1 s blocking view, 50 conn"),
    ]
    cases = [c for c in all_cases if c.name == "hello"] if args.quick else all_cases
    if args.cases:
        wanted = {c.strip() for c in args.cases.split(",")}
        cases = [c for c in all_cases if c.name in wanted]

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    servers_started: list[RunningServer] = []
    try:
        log(f"baking the template into {workdir}")
        project = bake(workdir)
        write_bench_app(project)
        python = cached_venv(project, args.python, args.cache_dir.resolve())
        big = workdir / "big.bin"
        size = 64 * 1024**2 if args.quick else BIG_FILE_SIZE
        with open(big, "wb") as f:
            f.truncate(size)  # sparse: no disk used, reads return zeros
        env = bench_env(workdir, big)
        for command in (["migrate", "-v0"], ["collectstatic", "--noinput", "-v0"]):
            run([python, "manage.py", *command], cwd=project, env=env)
        info = machine_info(python)
        log(f"{info['cpu']}, {info['cores']} cores, Python {info['python']}, "
            f"{seconds:g} s per case after {warmup:g} s warm-up")

        results: list[Result] = []
        rss: list[RssResult] = []
        logdir = workdir / "logs"
        logdir.mkdir()
        # Every server runs for the whole benchmark and each case loads them one after
        # another, round after round, so a burst of other work on the machine is spread
        # over all of them instead of landing on one. The best round counts.
        running: dict[str, RunningServer] = {}
        for name in server_names:
            server = RunningServer(specs[name], python, project, env, logdir)
            servers_started.append(server)
            running[name] = server
        for name, server in list(running.items()):
            try:
                server.wait_ready()
            except RuntimeError as exc:
                log(str(exc))
                results.extend(Result(name, c.name, failure=str(exc)) for c in cases)
                del running[name]
        best: dict[tuple, Result] = {}
        for round_number in range(1, args.rounds + 1):
            for case in cases:
                # The bound has no meaning for a view that sleeps.
                bound = [BOUND] if case.name != "block" and not args.no_bound else []
                for name in [*running, *bound]:
                    if name == BOUND:
                        result = measure_bound(python, project, env, case, seconds)
                    else:
                        server = running[name]
                        # A blocking view needs no warm-up, and one would leave requests queued.
                        result = measure(server, case, seconds, 0 if case.name == "block" else warmup)
                        if case.name == "block":
                            server.wait_idle()
                    key = (case.name, name)
                    rounds = (*best[key].rounds, result.rps) if key in best else (result.rps,)
                    if key not in best or result.rps > best[key].rps:
                        best[key] = result
                    best[key].rounds = rounds
                    log(f"round {round_number} {name:<28} {case.name:<7} {result.rps:>9,.0f} req/s  p50 "
                        f"{fmt_ms(result.p50_ms):>6} ms  p99 {fmt_ms(result.p99_ms):>6} ms"
                        + (f"  loop {result.loop_us:.0f} us/req" if result.loop_us == result.loop_us else "")
                        + (f"  errors {result.errors + result.non_2xx}" if result.errors + result.non_2xx else "")
                        + (f"  FAILED {result.failure}" if result.failure else ""))
        results.extend(best.values())
        for name, server in running.items():
            if args.no_download or name not in ("tornado_server", "waitress", "tornado WSGIContainer"):
                continue
            if args.quick and name != "tornado_server":
                continue
            r = measure_download(server, size, limit_mb=3 * size / 1024**2 + 256, timeout=120)
            rss.append(r)
            log(f"{name:<28} download {size / 1024**2:,.0f} MB: RSS {r.baseline_mb:.0f} -> "
                f"{r.peak_mb:.0f} MB (+{r.growth_mb:.0f} MB) in {r.seconds:.1f}s {r.note}")
        for server in running.values():
            server.stop()

        lines = table(results, cases, server_names)
        cpu_lines = cpu_table(results, cases, server_names)
        print()
        print("\n".join(lines))
        if cpu_lines:
            print()
            print("\n".join(cpu_lines))
        if rss:
            print()
            print("\n".join(rss_table(rss)))
        args.results.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d %H:%M")
        title = (f"{info['cpu']}, {info['cores']} cores - Python {info['python']}, Django "
                 f"{info['Django']}, tornado {info['tornado']}, waitress {info['waitress']}")
        notes = [
            f"Machine: {info['cpu']}, {info['cores']} cores, {info['os']}. Python {info['python']}, "
            f"Django {info['Django']}, tornado {info['tornado']}, waitress {info['waitress']}, "
            f"whitenoise {info['whitenoise']}, cheroot {info['cheroot']}, granian {info['granian']}, "
            f"gunicorn {info['gunicorn']}, wrk {info['wrk']}.",
            "",
            f"`wrk -t1 -cN -d{max(1, round(seconds))}s --latency` against 127.0.0.1 after a "
            f"{warmup:g} s warm-up, best of {args.rounds} round(s) (each round loads the servers "
            "one after another, all of them running throughout; `every round` gives each round's "
            "req/s in order); every server runs the same baked project with DEBUG off, "
            f"the full middleware stack and {THREADS} threads per process. `vs waitress` divides "
            "req/s by waitress's on the same case. `errors` counts socket errors and non-2xx "
            "responses.",
            "",
            *lines,
            "",
            "Notes: waitress writes no access log, so the tornado_server rows without "
            "\"access log\" run with `--no-access-log`; the \"+ access log\" row shows what one "
            "line per request costs. Django's runserver and the stock container are quietened "
            "the same way (their request loggers set to WARNING). The 1 s blocking view is bound "
            f"by threads: {THREADS} per process means at most {THREADS} req/s per process. "
            f"`{BOUND}` calls the same application in a loop on one thread, with no server and "
            "no HTTP (`bench_bound.py`); `of bound` divides req/s by it. With two cores, two "
            "processes can pass it.",
        ]
        if cpu_lines:
            notes += [
                "",
                "## CPU per request of the one-process Tornado servers",
                "",
                "CPU time (user + system, from `/proc`) during the measured run of the best "
                "round, divided by the requests wrk counted: the main thread, which runs the "
                "event loop, and the whole process (the loop plus the application's threads).",
                "",
                *cpu_lines,
            ]
        if rss:
            notes += [
                "",
                f"## Memory while one client downloads a {size / 1024**2:,.0f} MB FileResponse",
                "",
                "Growth of the serving process's resident memory (VmRSS sampled every 20 ms) "
                "from before the request to its peak. The stock container reads the whole body "
                "into memory before it sends a byte.",
                "",
                *rss_table(rss),
            ]
        stem = "quick" if args.quick else "latest"
        chart = args.results / f"{stem}.png"
        if write_chart(results, cases, server_names, chart, title):
            notes += ["", f"![requests per second]({chart.name})"]
            log(f"chart: {chart}")
        page = write_results(args.results, f"{stem}.md",
                             f"Benchmark results ({'quick smoke run' if args.quick else 'full run'}, {stamp})", notes)
        log(f"table: {page}")
        return 0
    finally:
        for server in servers_started:
            if server.process.poll() is None:
                server.stop()
        leave_workdir(workdir, args.keep, log)


if __name__ == "__main__":
    sys.exit(main())
