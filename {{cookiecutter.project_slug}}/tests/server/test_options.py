"""Options from the command line and environment, the access log, the rotating log file."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tornado_wsgi_server import __version__
from tornado_wsgi_server.options import options_for
from tornado_wsgi_server.project import load_project

from ..conftest import PROJECT_DIR

ACCESS_LINE = re.compile(r'127\.0\.0\.1 "GET /healthz\?n=1 HTTP/1\.1" 200 2 \d+\.\dms')


def run_server_cli(*args: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tornado_server.py", *args], cwd=PROJECT_DIR,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_option_with_its_variable(server_env):
    result = run_server_cli("--help", env={**server_env, "COLUMNS": "200"})
    assert result.returncode == 0
    for option in options_for(load_project(PROJECT_DIR)):
        assert option.cli_name in result.stdout, option.name
        assert option.env_name in result.stdout, option.name
    assert "--no-access-log" in result.stdout


def test_version_is_printed_shown_at_start_and_reported_by_status(start_server, server_env):
    result = run_server_cli("--version", env=server_env)
    assert (result.returncode, result.stdout) == (0, f"tornado_wsgi_server {__version__}\n"), result.stderr
    server = start_server()
    assert f"Server {__version__};" in server.output()
    status = run_server_cli("status", "--port", str(server.port), env=server_env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["version"] == __version__
    assert server.stop() == 0


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--port", "abc"], {}, "--port='abc'"),
        (["--threads", "0"], {}, "--threads='0'"),
        (["--max-body-size", "lots"], {}, "--max-body-size='lots'"),
        (["--trusted-proxies", "10.0.0.0/33"], {}, "--trusted-proxies"),
        ([], {"SERVER_THREADS": "0"}, "SERVER_THREADS='0'"),
        ([], {"SERVER_IDLE_TIMEOUT": "-1"}, "SERVER_IDLE_TIMEOUT='-1'"),
        ([], {"SERVER_ACCESS_LOG": "maybe"}, "SERVER_ACCESS_LOG='maybe'"),
        (["--no-such-option"], {}, "unrecognized arguments: --no-such-option"),
        ([], {"SERVER_WINDOWS_AUTH": "kerberos"}, "must be one of off, negotiate, paths"),
        (["--windows-auth-paths", "accounts/windows"], {}, "paths starting with /"),
        (["--windows-auth-user-format", "upper"], {}, "--windows-auth-user-format='upper'"),
        (["--windows-auth-header", "X Forwarded User"], {}, "--windows-auth-header"),
        (["--windows-auth-header", "X-Forwarded-User"], {}, "needs --trusted-proxies"),
    ],
)
def test_bad_value_exits_2_naming_it(server_env, args, env, named):
    result = run_server_cli("--settings", "tests.settings", *args, env={**server_env, **env})
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_environment_variables_apply(start_server):
    server = start_server(env={"SERVER_THREADS": "3", "SERVER_MAX_BODY_SIZE": "1K"})
    assert "3 threads x 1 process" in server.output()
    response = httpx.post(f"{server.url}/__test__/echo", content=b"z" * 2048, timeout=10)
    assert response.status_code == 413
    small = httpx.post(f"{server.url}/__test__/echo", content=b"z" * 100, timeout=10)
    assert small.json()["length"] == 100


def test_command_line_beats_environment(start_server):
    server = start_server("--threads", "5", env={"SERVER_THREADS": "3"})
    assert "5 threads x 1 process" in server.output()


def test_port_in_use_exits_1_with_clear_message(start_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = start_server(port=port, wait=False)
        assert server.process.wait(60) == 1
    output = server.output()
    assert f"ERROR: cannot listen on 127.0.0.1:{port}" in output
    assert "--port" in output
    assert "Traceback" not in output


def wait_for(predicate, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_access_log_line_per_request(start_server):
    server = start_server()
    assert httpx.get(f"{server.url}/healthz?n=1", timeout=10).status_code == 200
    httpx.post(f"{server.url}/__test__/echo", content=b"12345", timeout=10)
    httpx.get(f"{server.url}/no/such/page", timeout=10)
    assert wait_for(lambda: '"GET /no/such/page' in server.output())
    output = server.output()
    assert ACCESS_LINE.search(output), output
    assert re.search(r'"POST /__test__/echo HTTP/1\.1" 200 \d+ ', output)
    assert re.search(r'"GET /no/such/page HTTP/1\.1" 404 \d+ ', output)
    assert len(re.findall(r'" \d{3} \d+ [\d.]+ms', output)) == 3


def test_no_access_log(start_server):
    server = start_server("--no-access-log")
    assert httpx.get(f"{server.url}/healthz?n=1", timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/__fault__/raise-before", timeout=10).status_code == 500
    # Errors are still logged; only the per-request lines are gone.
    assert wait_for(lambda: "failed before start_response" in server.output())
    assert "/healthz" not in server.output()


def test_log_file_rotates(start_server, tmp_path):
    log_file = tmp_path / "logs" / "server.log"
    server = start_server("--log-file", str(log_file), "--log-max-bytes", "2K", "--log-backups", "2")
    with httpx.Client(timeout=10) as http:
        for number in range(60):
            assert http.get(f"{server.url}/healthz?n={number}").status_code == 200
        assert wait_for(lambda: Path(f"{log_file}.2").exists())
        assert http.get(f"{server.url}/healthz?after-rotation").status_code == 200
    assert wait_for(lambda: "after-rotation" in log_file.read_text(encoding="utf-8"))
    # Each file stays near the limit and only two backups are kept.
    assert not Path(f"{log_file}.3").exists()
    for path in (log_file, Path(f"{log_file}.1"), Path(f"{log_file}.2")):
        assert path.stat().st_size <= 2048 + 512, path
    assert "is running at" in server.output()  # the console keeps its log as well
    assert "after-rotation" in server.output()


def test_log_file_rotates_with_two_workers(start_server, tmp_path):
    """Two worker processes share one rotated file: it rotates, each keeps writing to the
    current file, and every request's access line is kept exactly once."""
    log_file = tmp_path / "logs" / "server.log"
    server = start_server("--workers", "2", "--threads", "4", "--log-file", str(log_file),
                          "--log-max-bytes", "4K", "--log-backups", "200")
    count = 200
    # No keep-alive: a new connection per request, so either worker may answer each one.
    with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as http:

        def one(number: int) -> int:
            response = http.get(f"{server.url}/__test__/whoami?n={number}")
            assert response.status_code == 200
            return response.json()["pid"]

        with ThreadPoolExecutor(8) as pool:
            answered_by = set(pool.map(one, range(count)))
    assert len(answered_by) == 2, f"only {answered_by} answered"

    def access_lines() -> list[tuple[str, str]]:
        text = "".join(path.read_text(encoding="utf-8") for path in log_file.parent.glob("server.log*"))
        return re.findall(r' (\d+) INFO .*"GET /__test__/whoami\?n=(\d+) HTTP/1\.1" 200 ', text)

    wait_for(lambda: len(access_lines()) >= count)
    lines = access_lines()
    numbers = sorted(int(number) for _, number in lines)
    missing = sorted(set(range(count)) - set(numbers))
    assert numbers == list(range(count)), f"{len(lines)} lines for {count} requests; missing {missing[:10]}"
    assert {int(pid) for pid, _ in lines} == answered_by  # both processes wrote to the file
    files = [log_file, *sorted(log_file.parent.glob("server.log.*"))]
    assert len(files) >= 6, files  # about 40 KB of lines in 4 KB files
    for path in files:
        assert path.stat().st_size <= 4096 + 512, path
    # After a rotation both processes write to the new file; a process that kept writing
    # to the file it had open (now a backup) would leave files of one process only.
    writers = [set(re.findall(r" (\d+) INFO ", path.read_text(encoding="utf-8"))) for path in files]
    mixed = sum(len(pids) == 2 for pids in writers)
    assert mixed >= len(files) // 2, f"processes writing to each file: {writers}"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_huge_request_target_gives_short_log_lines_and_a_stop_loses_none(start_server, tmp_path,
                                                                        workers):
    """A 60 KB target is logged cut to 2 KB, with its length (the access line and Django's
    "Not Found"); what the event loop logs is written by another thread, and a graceful stop
    writes all of it, in each worker process too."""
    log_file = tmp_path / "server.log"
    server = start_server("--workers", workers, "--log-file", str(log_file))
    target = "/" + "A" * 60000
    assert httpx.get(server.url + target, timeout=30).status_code == 404
    assert server.stop() == 0
    text = log_file.read_text(encoding="utf-8")
    assert text.count("... (60001 characters)") == 2, text[-3000:]
    assert re.search(r'"GET /A{2047}\.\.\. \(60001 characters\) HTTP/1\.1" 404 ', text)
    longest = max(len(line) for line in text.splitlines())
    assert longest < 3000, f"a log line of {longest} characters"
    # Every process wrote its last line before it exited.
    assert text.count("Stopped.") == (1 if workers == "1" else 3), text[-3000:]


def test_a_held_log_file_lock_does_not_hold_up_the_event_loop(start_server, tmp_path):
    """Another process holding the log file's lock (a worker writing, a backup or antivirus
    scan) delays the log lines, never the answers: the event loop does not write the log."""
    import portalocker  # concurrent-log-handler's own locking

    log_file = tmp_path / "server.log"
    server = start_server("--log-file", str(log_file))
    assert httpx.get(f"{server.url}/healthz?n=0", timeout=10).status_code == 200
    assert wait_for(lambda: log_file.exists() and "/healthz?n=0" in log_file.read_text(encoding="utf-8"))
    with open(tmp_path / ".__server.lock", "a") as lock:  # the handler's lock file
        portalocker.lock(lock, portalocker.LOCK_EX)
        try:
            started = time.monotonic()
            for number in range(1, 4):
                assert httpx.get(f"{server.url}/healthz?n={number}", timeout=5).status_code == 200
            elapsed = time.monotonic() - started
        finally:
            portalocker.unlock(lock)
    assert elapsed < 2, f"three requests took {elapsed:.1f}s while the log file was locked"
    assert wait_for(lambda: "/healthz?n=3" in log_file.read_text(encoding="utf-8"))
