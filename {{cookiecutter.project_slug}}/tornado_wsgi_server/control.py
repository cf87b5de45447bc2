"""The control channel: ``tornado_server.py reload`` / ``status`` reach the running server.

A loopback TCP socket on a random port (no other machine can connect) and a random token,
both in ``data/server-<port>.control`` in the project folder (where the server writes while it
runs, so the rest of the folder may be read-only), readable only by the server's owner (mode
0600 on POSIX, the folder's ACL on Windows); a request without the token is refused. The server
removes the file when it stops; a left-over one is recognised as stale. A server that cannot
write the file serves without the channel, and says so.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .options import ServerOptions
from .project import Project

log = logging.getLogger("tornado_server")

MAX_REQUEST = 4096  # bytes of one request line
SINGLE_PROCESS_RELOAD = (
    "this server runs in one process (--workers 1), which cannot be replaced while it keeps "
    "serving: restart it instead, or start it with --workers 2 (or more) so that reload "
    "replaces its workers one by one without refusing a request")


# A new worker that is not serving after this long has failed to start.
START_TIMEOUT = 120.0
# A retiring worker still running this long after its drain time is over is killed.
OVERDUE_MARGIN = 10.0


class ControlError(Exception):
    """The server could not be reached or refused; the message says why, ``reason`` in a word:
    "missing" (no control file: not running), "gone" (a left-over file), "denied",
    "unreadable", "no answer" (reached, but it did not answer)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def status_answer(options: ServerOptions, mode: str, started: float | None, requests: int,
                  workers: list[dict]) -> dict:
    """What a running server answers to ``status`` (``version`` is added by the channel):
    its own options, which may differ from .env's now."""
    return {"ok": True, "mode": mode, "pid": os.getpid(), "host": options.host, "port": options.port,
            "scheme": options.scheme, "threads": options.threads, "processes": options.workers,
            "started": started, "requests": requests, "workers": workers,
            "log_file": options.log_file or None}


def control_file(project: Project, port: int) -> Path:
    return project.data_dir / f"server-{port}.control"


def legacy_control_file(project: Project, port: int) -> Path:
    """Where servers started by earlier versions of this package wrote it (one may still run
    while ``upgrade`` reloads it)."""
    return Path(project.directory) / f".server-{port}.control"


def reload_timeout(options: ServerOptions) -> float:
    """The longest a reload can take: each worker's replacement (one may be under way when it is
    asked for) gets START_TIMEOUT to serve, one after another, then the last old worker drains
    (and is killed OVERDUE_MARGIN after). A request that comes during a reload waits for that
    one, then for the next: twice that."""
    one = (options.workers + 1) * START_TIMEOUT + options.drain_timeout + OVERDUE_MARGIN + 5
    return 2 * one


class ReloadResult:
    """A reload's progress: done once every old worker is replaced and gone, or failed."""

    def __init__(self) -> None:
        self.total = 0  # workers to replace, known once it begins
        self.times: list[float] = []  # seconds until each new worker served
        self.gone = 0
        self.error: str | None = None
        self.done = threading.Event()
        self.started = False

    def replaced(self, seconds: float) -> None:
        self.times.append(seconds)
        self._check()

    def old_gone(self) -> None:
        self.gone += 1
        self._check()

    def _check(self) -> None:
        if self.started and len(self.times) >= self.total and self.gone >= self.total:
            self.finish()

    def finish(self, error: str | None = None) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

    def begin(self, total: int) -> None:
        self.total, self.started = total, True
        self._check()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def as_answer(self, waited: float | None = None) -> dict:
        if not self.done.is_set():
            within = f" within {waited:.0f}s" if waited is not None else ""
            return {"ok": False, "error": f"the reload did not finish{within}; it may still go on: "
                    "see the server's log for its outcome", "unfinished": True}
        if self.error:
            return {"ok": False, "error": f"reload failed, the old workers keep serving: {self.error}",
                    "replaced": len(self.times)}
        return {"ok": True, "replaced": len(self.times), "seconds": [round(t, 2) for t in self.times]}


class ControlChannel:
    """Answers ``{"token": ..., "command": ...}`` lines on 127.0.0.1 with ``handler(command)``."""

    def __init__(self, project: Project, options: ServerOptions, handler: Callable[[str], dict]) -> None:
        self.path = control_file(project, options.port)
        self.handler = handler
        self.token = secrets.token_urlsafe(32)
        self.listener: socket.socket | None = None

    def start(self) -> ControlChannel:
        """Listen and write the file; without a file no client can find us: serve without."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if sys.platform == "win32":  # no other process may take this port over
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        try:
            self.path.parent.mkdir(exist_ok=True)
            write_private(self.path, json.dumps({
                "pid": os.getpid(), "port": listener.getsockname()[1], "token": self.token,
            }))
        except OSError as exc:
            listener.close()
            log.warning("No control channel: cannot write %s (%s), so `tornado_server.py reload` and "
                        "`status` cannot reach this server. Let the account that runs it change %s.",
                        self.path, exc.strerror or exc, self.path.parent)
            return self
        self.listener = listener
        threading.Thread(target=self._accept, name="control", daemon=True).start()
        return self

    def close(self) -> None:
        if self.listener is None:  # never opened: the file is not ours
            return
        self.listener.close()
        try:  # only our own: a newer server on the same port may have replaced it
            if json.loads(self.path.read_text(encoding="utf-8")).get("token") == self.token:
                self.path.unlink()
        except (OSError, ValueError):
            pass

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                request = read_line(conn)
                conn.settimeout(None)
                message = json.loads(request)
                token = message.get("token") if isinstance(message, dict) else None
                if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token.encode()):
                    log.warning("Control channel: refused a request without the right token")
                    answer = {"ok": False, "error": "refused: no valid token"}
                else:
                    answer = self.handler(str(message.get("command")))
                    if message.get("command") == "status" and answer.get("ok"):
                        answer["version"] = __version__  # the running code's, not the disk's
            except (OSError, ValueError, UnicodeDecodeError):
                answer = {"ok": False, "error": "refused: not a control request"}
            except Exception as exc:  # answered, and logged: the channel keeps working
                log.exception("Control channel: the command failed")
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            try:
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:
                pass


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by this user only (0600; on Windows the file
    takes the folder's ACL), replacing what is there."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def read_line(conn: socket.socket) -> str:
    data = b""
    while b"\n" not in data:
        part = conn.recv(1024)
        if not part:
            break
        data += part
        if len(data) > MAX_REQUEST:
            raise ValueError("request too long")
    return data.partition(b"\n")[0].decode("utf-8")


def send_command(project: Project, port: int, command: str, timeout: float | None = None) -> dict:
    """Send ``command`` to the server started from this project on ``port``; its answer."""
    path = control_file(project, port)
    if not path.exists() and legacy_control_file(project, port).exists():
        path = legacy_control_file(project, port)
    try:
        details = json.loads(path.read_text(encoding="utf-8"))
        control_port, token = int(details["port"]), str(details["token"])
    except FileNotFoundError:
        raise ControlError(f"no server started from {project.directory} is running on port {port} "
                           f"({path} is missing)", "missing") from None
    except PermissionError:
        raise ControlError(f"{path} is readable only by the user who started the server: run this "
                           "command as that user (for the Windows service: as Administrator)", "denied") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ControlError(f"{path} is unreadable ({exc}); is the server running?", "unreadable") from None
    try:
        conn = socket.create_connection(("127.0.0.1", control_port), timeout=10)
    except OSError:
        raise ControlError(f"no server started from {project.directory} is running on port {port}: "
                           f"{path.name} is left over from one that is gone (pid {details.get('pid')})",
                           "gone") from None
    with conn:
        conn.sendall(json.dumps({"token": token, "command": command}).encode() + b"\n")
        conn.settimeout(timeout)
        try:
            return json.loads(read_line(conn))
        except TimeoutError:
            raise ControlError(f"the server did not answer within {timeout:.0f}s; a reload may still "
                               "go on: see the server's log for its outcome", "no answer") from None
        except (OSError, ValueError) as exc:
            raise ControlError(f"the server did not answer: {exc}", "no answer") from None


def run_client(project: Project, options: ServerOptions, command: str) -> int:
    """``tornado_server.py reload|status``: print the outcome; 0 on success."""
    try:
        timeout = reload_timeout(options) + 30 if command == "reload" else 30
        answer = send_command(project, options.port, command, timeout)
    except ControlError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    if not answer.get("ok"):
        print(f"ERROR: {answer.get('error')}", file=sys.stderr)
        return 1
    if command == "reload":
        times = ", ".join(f"{seconds:.1f}s" for seconds in answer["seconds"])
        print(f"Reloaded: {answer['replaced']} worker(s) replaced by new processes running the "
              f"current code (each served after {times}).")
    else:
        print(json.dumps(answer, indent=2))
    return 0
