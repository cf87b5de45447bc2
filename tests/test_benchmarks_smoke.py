"""The benchmark scripts run end to end (bake, venv, servers, load, report) in their quick modes.

Only that they work is checked here; their numbers mean something only in a full run. So the
runs this session selects start together, once the first of these tests runs (after the
default bake's suite, whose timing tests their load would disturb: conftest.py), and each
test checks its own run's output.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from background import benchmark_venv
from helpers import ROOT, clean_env, main_python, need, run

# Above the runs' own limit (RUN_TIMEOUT), which kills what they started.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
# Each run is a smoke of a few seconds of load per server; together on two cores they take
# longer than one alone.
RUN_TIMEOUT = 600


def can_bind(address: str) -> bool:
    try:
        with socket.socket() as sock:
            sock.bind((address, 0))
        return True
    except OSError:
        return False


def on_linux() -> bool:
    return sys.platform.startswith("linux")


# Test name -> (whether it can run here, the script and its arguments).
RUNS = {
    "test_quick_benchmark_prints_a_table": (
        lambda: shutil.which("wrk") is not None, ("run.py", "--quick")),
    "test_quick_overload_benchmark_prints_a_table": (
        lambda: True, ("overload.py", "--quick")),
    "test_quick_attack_benchmark_prints_a_table": (
        lambda: on_linux() and shutil.which("slowhttptest") is not None and can_bind("127.0.0.2"),
        ("attack.py", "--quick", "--attacks", "read")),
    "test_quick_attack_benchmark_runs_its_own_attackers_and_the_office": (
        lambda: on_linux() and all(can_bind(a) for a in ("127.0.0.2", "127.0.0.3", "127.0.1.1")),
        ("attack.py", "--quick", "--attacks", "dup-length,unread,nat", "--servers", "tornado_server")),
}


@pytest.fixture(scope="module")
def started(request, tmp_path_factory):
    """Every selected run that can run here, started at once: name -> (future, results folder)."""
    benchmark_venv(request.config).wait()  # made in a thread from the start (background.py)
    selected = {item.originalname for item in request.session.items if item.originalname in RUNS}
    runs = {name: RUNS[name] for name in selected if RUNS[name][0]()}
    with ThreadPoolExecutor(max(len(runs), 1)) as pool:
        futures = {}
        for name, (_, (script, *args)) in runs.items():
            results = tmp_path_factory.mktemp(name)
            command = [sys.executable, ROOT / "benchmarks" / script, *args, "--python", main_python(),
                       "--results", results]
            futures[name] = (pool.submit(run, command, cwd=ROOT, env=clean_env(), timeout=RUN_TIMEOUT), results)
        yield futures


def result_of(started: dict, name: str):
    future, results = started[name]
    return future.result(timeout=RUN_TIMEOUT + 120), results


def test_quick_benchmark_prints_a_table(started):
    need(shutil.which("wrk") is not None, "wrk not installed (apt-get install wrk)")
    result, results = result_of(started, "test_quick_benchmark_prints_a_table")
    assert result.returncode == 0, result.stdout
    rows = re.findall(r"^\| hello world, 20 conn \| (.+?) \| ([\d,]+) \|", result.stdout, re.M)
    servers = {name for name, rps in rows if int(rps.replace(",", "")) > 0}
    assert {"tornado_server", "waitress", "tornado WSGIContainer"} <= servers, result.stdout
    assert re.search(r"^\| tornado_server \| 64 MB \|", result.stdout, re.M), result.stdout
    report = (results / "quick.md").read_text(encoding="utf-8")
    assert "| hello world, 20 conn | tornado_server |" in report


def test_quick_overload_benchmark_prints_a_table(started):
    result, results = result_of(started, "test_quick_overload_benchmark_prints_a_table")
    assert result.returncode == 0, result.stdout
    for server in ("tornado_server", "waitress"):
        row = re.search(rf"^\| {server} \| ([\d.]+) \| ([\d.]+) \|", result.stdout, re.M)
        assert row and float(row.group(1)) > 0 and float(row.group(2)) > 0, result.stdout
    assert "| tornado_server |" in (results / "overload-latest.md").read_text(encoding="utf-8")


@pytest.mark.skipif(not on_linux(), reason="the attack benchmark runs on Linux")
def test_quick_attack_benchmark_prints_a_table(started):
    need(shutil.which("slowhttptest") is not None, "slowhttptest not installed (apt-get install slowhttptest)")
    need(can_bind("127.0.0.2"), "127.0.0.2 is not a loopback address here")
    result, results = result_of(started, "test_quick_attack_benchmark_prints_a_table")
    assert result.returncode == 0, result.stdout
    rows = re.findall(r"^\| slow read \(-X\)[^|]* \| (.+?) \| (\d+)/(\d+) ", result.stdout, re.M)
    assert {name for name, ok, sent in rows if int(sent) > 0} == {
        "tornado_server", "tornado_server (no per-address cap)", "waitress"}, result.stdout
    report = (results / "attack-quick.md").read_text(encoding="utf-8")
    assert "| slow read (-X) of a 20 MB FileResponse | tornado_server |" in report


@pytest.mark.skipif(not on_linux(), reason="the attack benchmark runs on Linux")
def test_quick_attack_benchmark_runs_its_own_attackers_and_the_office(started):
    for address in ("127.0.0.2", "127.0.0.3", "127.0.1.1"):
        need(can_bind(address), f"{address} is not a loopback address here")
    result, results = result_of(started, "test_quick_attack_benchmark_runs_its_own_attackers_and_the_office")
    assert result.returncode == 0, result.stdout
    rows = re.findall(r"^\| ([^|]+) \| tornado_server \| (\d+)/(\d+) \(", result.stdout, re.M)
    labels = {label for label, ok, sent in rows if int(sent) > 0}
    assert labels == {"slow body, duplicated Content-Length, many addresses",
                      "4 MB HttpResponse never read, many addresses",
                      "office behind NAT: 20 browsers x 6 keep-alive conns, 1 address"}, result.stdout
    report = (results / "attack-quick.md").read_text(encoding="utf-8")
    assert "| office behind NAT: 20 browsers x 6 keep-alive conns, 1 address | tornado_server |" in report


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sign-on benchmark's realm is an MIT KDC")
def test_quick_signon_benchmark_prints_a_table(tmp_path):
    kdc = shutil.which("krb5kdc", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    need(kdc is not None, "krb5kdc not installed (apt-get install krb5-kdc krb5-admin-server krb5-user)")
    need(shutil.which("krb5-config") is not None, "krb5-config not found: python-gssapi builds on it "
                                                  "(apt-get install libkrb5-dev)")
    result = run(
        [sys.executable, ROOT / "benchmarks" / "signon.py", "--quick", "--python", main_python(),
         "--results", tmp_path],
        cwd=ROOT, env=clean_env(), timeout=400,
    )
    assert result.returncode == 0, result.stdout
    rows = dict(re.findall(r"^\| ([^|]+?) \| ([\d,]+) \| [\d.]+ \|$", result.stdout, re.M))
    assert len(rows) == 5 and all(int(rps.replace(",", "")) > 0 for rps in rows.values()), result.stdout
    assert "Kerberos, new connection per request (1 request)" in rows, rows
    assert "| NTLM, new connection per request (3 requests) |" in (tmp_path / "signon-latest.md").read_text(
        encoding="utf-8")
