"""The server in a console window, as an operator runs it: Ctrl+Break (Ctrl+C in a terminal)
with ``--workers 2`` lets a request in flight finish, and a second server on a port that is
taken is refused (SO_EXCLUSIVEADDRUSE on Windows) while the first keeps serving.

Run by the Windows job of .github/workflows/ci.yml (``python ci/console_checks.py``) with the
Python the requirements are installed in. Ctrl+Break goes through ``ci/windows.py``, which
sends SIGINT to the process group elsewhere, so this runs on Linux as well. Exits 0 when
every check passed, else 1.
"""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CheckFailed, CheckSuite, expect, status, wait_for  # noqa: E402
from windows import PROJECT_DIR, Windows, system  # noqa: E402
from windows_service_checks import free_port  # noqa: E402

READY_LINE = "is running at"


def console_env(folder: Path, extra: dict | None = None) -> dict:
    """This environment without SERVER_*/DJANGO_* settings, a SQLite file in ``folder``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("SERVER_", "DJANGO_"))}
    env.update({"DATABASE_URL": f"sqlite:///{(folder / 'console.sqlite3').as_posix()}",
                "DJANGO_SECRET_KEY": "console-checks-" + "k" * 50, "PYTHONUNBUFFERED": "1", **(extra or {})})
    return env


class ConsoleServer:
    """``tornado_server.py`` with the tests' settings (their slow view) and a SQLite file."""

    def __init__(self, windows: Windows, folder: Path, port: int, *args: str, env: dict | None = None) -> None:
        self.windows, self.port = windows, port
        self.log_path = folder / f"console-{port}-{len(args)}.log"
        with open(self.log_path, "wb") as log:
            self.process = windows.start_console(
                [sys.executable, "tornado_server.py", "--settings", "tests.settings", "--host", "127.0.0.1",
                 "--port", str(port), *args],
                PROJECT_DIR, console_env(folder, env), log)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 90) -> None:
        if not wait_for(lambda: READY_LINE in self.output() or self.process.poll() is not None, timeout, 0.1) \
                or READY_LINE not in self.output():
            raise CheckFailed(f"the server did not start:\n{self.output()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.windows.kill_tree(self.process)


def slow_request(port: int, seconds: float, answers: list) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", f"/__test__/block?seconds={seconds}")
        response = connection.getresponse()
        answers.append((response.status, response.read().decode("utf-8", "replace")))
    except OSError as exc:
        answers.append((None, repr(exc)))
    finally:
        connection.close()


class ConsoleChecks(CheckSuite):
    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self.folder = Path(tempfile.mkdtemp(prefix="console-checks-"))
        self.servers: list[ConsoleServer] = []

    def start(self, port: int, *args: str) -> ConsoleServer:
        server = ConsoleServer(self.windows, self.folder, port, *args)
        self.servers.append(server)
        return server

    def break_drains_a_request_in_flight(self) -> None:
        server = self.start(free_port(), "--workers", "2")
        server.wait_ready()
        answers: list = []
        client = threading.Thread(target=slow_request, args=(server.port, 3, answers), daemon=True)
        client.start()
        time.sleep(1.5)  # the request is on a worker's thread
        expect(not answers, f"answered before the break: {answers}")
        self.windows.interrupt(server.process)
        client.join(60)
        expect(answers and answers[0][0] == 200, f"the request in flight got {answers}\n{server.output()}")
        try:
            code = server.process.wait(60)
        except Exception as exc:
            raise CheckFailed(f"the server did not stop in 60 s:\n{server.output()}") from exc
        expect(code == 0, f"the server exited with {code}:\n{server.output()}")

    def second_server_on_the_same_port_is_refused(self) -> None:
        port = free_port()
        first = self.start(port)
        first.wait_ready()
        second = self.start(port)
        try:
            code = second.process.wait(90)
        except Exception as exc:
            raise CheckFailed(f"a second server started on port {port}:\n{second.output()}") from exc
        expect(code != 0, f"the second server exited 0:\n{second.output()}")
        expect(f"cannot listen on 127.0.0.1:{port}" in second.output(),
               f"the refusal does not say why:\n{second.output()}")
        expect(status(port) == 200, "the first server stopped answering")
        self.windows.interrupt(first.process)
        first.process.wait(60)

    def cleanup(self) -> None:
        for server in self.servers:
            server.kill()

    def checks(self) -> list:
        return [
            ("Ctrl+Break with --workers 2 drains a request in flight", self.break_drains_a_request_in_flight),
            ("a second server on the same port is refused", self.second_server_on_the_same_port_is_refused),
        ]


def main(windows: Windows | None = None) -> int:
    return ConsoleChecks(windows or system()).run()


if __name__ == "__main__":
    sys.exit(main())
