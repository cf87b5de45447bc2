"""--workers N: spawned processes share the port, are respawned, and never outlive the supervisor."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="sends SIGKILL to single processes")


def whoami_pid(url: str) -> int | None:
    try:  # a new connection each time, so the kernel may hand it to either process
        with httpx.Client(timeout=10) as http:
            return http.get(f"{url}/__test__/whoami").json()["pid"]
    except httpx.HTTPError:
        return None  # a worker that was just killed


def collect_pids(url: str, wanted: int, seconds: float = 20, exclude: frozenset = frozenset()) -> set[int]:
    pids: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pid = whoami_pid(url)
        if pid is not None and pid not in exclude:
            pids.add(pid)
            if len(pids) >= wanted:
                break
    return pids


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.joinpath("self").exists():
        try:  # a zombie waiting for a parent that does not reap is gone as far as we care
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_gone(pids, seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        remaining = {pid for pid in pids if alive(pid)}
        if not remaining:
            return remaining
        time.sleep(0.1)
    return {pid for pid in pids if alive(pid)}


def test_two_workers_serve_and_stop_gracefully(start_server):
    server = start_server("--workers", "2", "--threads", "2")
    assert "2 threads x 2 processes" in server.output()
    pids = collect_pids(server.url, 2)
    assert len(pids) == 2, f"only {pids} answered"
    assert server.process.pid not in pids
    assert server.stop() == 0
    if sys.platform != "win32":
        assert wait_gone(pids, 5) == set()
    assert "Stopping 2 worker(s)" in server.output()


@posix_only
def test_killed_worker_is_respawned(start_server):
    server = start_server("--workers", "2", "--threads", "2")
    pids = collect_pids(server.url, 2)
    assert len(pids) == 2
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    replacement = collect_pids(server.url, 1, seconds=30, exclude=frozenset(pids))
    assert replacement, f"no new worker appeared:\n{server.output()}"
    assert "exited unexpectedly" in server.output()
    # Service went on, from the survivor and the newcomer.
    assert len(collect_pids(server.url, 2, exclude=frozenset({victim}))) == 2
    assert server.stop() == 0
    assert wait_gone(pids | replacement, 5) == set()


@posix_only
def test_workers_exit_when_supervisor_is_killed(start_server):
    server = start_server("--workers", "2", "--threads", "2")
    pids = collect_pids(server.url, 2)
    assert len(pids) == 2
    server.process.kill()
    server.process.wait(10)
    remaining = wait_gone(pids, 10)
    for pid in remaining:  # do not leave them behind even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert remaining == set(), "workers outlived their supervisor"


def test_settings_error_stops_supervisor(start_server):
    server = start_server("--workers", "2", "--settings", "tests.no_such_settings", wait=False)
    returncode = server.process.wait(60)
    output = server.output()
    assert returncode == 1, output
    assert "cannot import Django settings 'tests.no_such_settings'" in output
    assert "failed to start" in output
    # One failure stops everything; the bad worker was not started again and again.
    assert output.count("cannot import Django settings") <= 2
