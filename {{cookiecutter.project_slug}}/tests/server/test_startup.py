"""Start-up and the listening socket on real-world systems: a project name the console's
code page lacks, a port another server holds, running out of file descriptors."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import httpx
import pytest

from ..conftest import PROJECT_DIR, READY_LINE, free_port

# tornado_server.py with a project name outside cp1252 (what a Russian-named project on an
# English-locale Windows meets).
CYRILLIC_PROJECT = """
import sys
from dataclasses import replace
sys.path.insert(0, {project!r})
from tornado_wsgi_server.cli import main
from tornado_wsgi_server.project import load_project
sys.exit(main(replace(load_project({project!r}), name="Портал «Проекты»")))
"""


# The access line of the request for /страница (the only 404), whatever became of its path.
ACCESS_404 = re.compile(r'\[tornado_server\.access\] 127\.0\.0\.1 "GET /[^"]+ HTTP/1\.1" 404 ')


@pytest.mark.parametrize("workers", ["1", "2"])
def test_name_outside_the_console_code_page_does_not_stop_the_server(server_env, tmp_path, workers):
    """Windows encodes redirected output (a file, Task Scheduler, NSSM) in the ANSI code page;
    PYTHONIOENCODING=cp1252 does the same here."""
    port = free_port()
    env = {**server_env, "PYTHONIOENCODING": "cp1252", "SERVER_ACCESS_LOG": "true"}
    env.pop("PYTHONUTF8", None)
    log = tmp_path / "out.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", CYRILLIC_PROJECT.format(project=str(PROJECT_DIR)),
             "--settings", "tests.settings", "--port", str(port), "--workers", workers],
            cwd=PROJECT_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while READY_LINE not in log.read_bytes().decode("cp1252", "replace"):
            assert process.poll() is None, log.read_bytes().decode("cp1252", "replace")
            assert time.monotonic() < deadline, log.read_bytes().decode("cp1252", "replace")
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
        # The access log line has a path the code page lacks, too: sent as UTF-8 bytes, not
        # percent-encoded as httpx would.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall("GET /страница HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                         .encode())
            assert sock.recv(12) == b"HTTP/1.1 404"
        deadline = time.monotonic() + 30
        while not ACCESS_404.search(log.read_bytes().decode("cp1252", "replace")):
            assert time.monotonic() < deadline, log.read_bytes().decode("cp1252", "replace")
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(30)
    output = log.read_bytes().decode("cp1252", "replace")
    assert "\\u041f\\u043e\\u0440\\u0442\\u0430\\u043b" in output  # "Портал", escaped
    assert "Logging error" not in output and "UnicodeEncodeError" not in output, output


def test_port_in_use_is_a_clear_error(start_server):
    first = start_server()
    second = start_server(port=first.port, wait=False)
    assert second.process.wait(60) != 0
    output = second.output()
    assert f"ERROR: cannot listen on 127.0.0.1:{first.port}" in output, output
    assert "--port" in output and "Traceback" not in output, output
    assert httpx.get(f"{first.url}/healthz", timeout=30).status_code == 200


def tiny_open_file_limit() -> None:
    """In the server's process before it starts: a hard limit it cannot raise."""
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="not on Windows: it has no RLIMIT_NOFILE (and /proc is Linux)")
def test_out_of_file_descriptors_neither_spins_nor_floods_the_log(start_server):
    # 80 clients from one address: lift the per-address cap so the file limit is what they hit.
    server = start_server("--max-connections-per-ip", "1000", preexec_fn=tiny_open_file_limit)
    clients = []
    try:
        for _ in range(80):  # more than the process can hold
            clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        server.wait_for_output("Cannot accept connections")
        before = cpu_seconds(server.process.pid)
        time.sleep(3)
        used = cpu_seconds(server.process.pid) - before
        assert used < 1.0, f"{used:.2f}s of CPU in 3s while out of file descriptors"
    finally:
        for sock in clients:
            sock.close()
    # Once connections close, it serves again.
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, server.output()[-3000:]
        time.sleep(0.2)
    output = server.output()
    assert output.count("Cannot accept connections") == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert server.process.poll() is None


def test_address_this_machine_lacks_is_a_clear_error(start_server):
    # 192.0.2.0/24 is for documentation: no machine has it.
    server = start_server("--host", "192.0.2.55", wait=False)
    assert server.process.wait(60) != 0
    output = server.output()
    assert "ERROR: cannot listen on 192.0.2.55" in output and "has no address 192.0.2.55" in output, output
    assert "another server" not in output and "Traceback" not in output, output


def test_time_zone_name_is_checked_at_start(start_server):
    # Django checks it only where time.tzset exists; a Windows name would start and then
    # fail every page that shows a date.
    server = start_server(env={"DJANGO_TIME_ZONE": "W. Europe Standard Time"}, wait=False)
    assert server.process.wait(60) != 0
    output = server.output()
    assert "ERROR:" in output and "DJANGO_TIME_ZONE='W. Europe Standard Time'" in output, output
    assert "Traceback" not in output, output


def test_the_pinned_tornado_is_the_one_the_server_supports():
    from tornado_wsgi_server.tornado_check import SUPPORTED

    pins = [line.split(";")[0].strip() for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines()
            if line.lower().startswith("tornado==")]
    assert len(pins) == 1, pins
    assert pins[0].partition("==")[2] in SUPPORTED, f"requirements.txt pins {pins[0]}; supported: {SUPPORTED}"


def test_another_tornado_is_named_with_the_supported_one_and_the_fix():
    from tornado_wsgi_server.tornado_check import SUPPORTED, tornado_problem

    assert all(tornado_problem(version) is None for version in SUPPORTED)
    for version in ("6.6.1", "6.5.9", "6.5.100"):
        problem = tornado_problem(version)
        assert f"Tornado {version} is installed" in problem
        assert SUPPORTED[0] in problem and "pip install -r requirements.txt" in problem


# Makes the server see another installed Tornado version (the check reads tornado.version).
OTHER_TORNADO = 'import tornado\ntornado.version = "6.6.1"\ntornado.version_info = (6, 6, 1, 0)\n'


@pytest.mark.parametrize("workers", ["1", "2"])
def test_server_refuses_to_start_on_an_untested_tornado(start_server, tmp_path, workers):
    (tmp_path / "sitecustomize.py").write_text(OTHER_TORNADO, encoding="utf-8")
    server = start_server("--workers", workers, env={"PYTHONPATH": str(tmp_path)}, wait=False)
    assert server.process.wait(60) == 1
    output = server.output()
    assert "ERROR: Tornado 6.6.1 is installed" in output and "pip install -r requirements.txt" in output
    assert READY_LINE not in output


def test_untested_tornado_can_be_allowed_with_a_warning(start_server, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(OTHER_TORNADO, encoding="utf-8")
    server = start_server(env={"PYTHONPATH": str(tmp_path), "SERVER_ALLOW_UNTESTED_TORNADO": "1"})
    assert "Tornado 6.6.1 is installed" in server.output() and "unsupported" in server.output()
    assert server.stop() == 0
