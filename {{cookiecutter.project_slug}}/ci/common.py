"""What the CI checks share: a suite of named checks that all run, HTTP probes, waits."""

from __future__ import annotations

import http.client
import time
import traceback
from collections.abc import Callable


class CheckFailed(Exception):
    """A check found something wrong; the message says what."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def status(port: int, path: str = "/healthz", timeout: float = 5) -> int | None:
    """The HTTP status 127.0.0.1:``port`` answers ``path`` with, None when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def wait_for(probe: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(interval)
    return probe()


def run_checks(checks: list[tuple[str, Callable[[], None]]], cleanup: Callable[[], None] | None = None) -> int:
    """Run every check in order, printing each outcome; 0 when all passed, else 1."""
    failed = []
    try:
        for name, check in checks:
            print(f"== {name}", flush=True)
            try:
                check()
            except CheckFailed as exc:
                failed.append(name)
                print(f"FAILED: {name}: {exc}", flush=True)
            except Exception:
                failed.append(name)
                print(f"FAILED: {name}:\n{traceback.format_exc()}", flush=True)
            else:
                print(f"ok: {name}", flush=True)
    finally:
        if cleanup is not None:
            cleanup()
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed"
          + (": failed " + ", ".join(failed) if failed else "."), flush=True)
    return 1 if failed else 0


class CheckSuite:
    """One script's checks: ``checks()`` names them in the order they run, ``cleanup()`` undoes
    what they left behind, passed or not. ``run()`` runs them all and is the script's exit code."""

    def checks(self) -> list[tuple[str, Callable[[], None]]]:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def run(self) -> int:
        return run_checks(self.checks(), cleanup=self.cleanup)
