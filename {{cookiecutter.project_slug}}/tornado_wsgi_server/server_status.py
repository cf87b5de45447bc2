"""``status``: the server started from this folder, for a person (or, with ``--json``, for a
script): its state, processes, addresses, uptime, requests, the last error in its log, and for
the Windows service its account, start type and stored options.

The running server answers through its control channel (``control.py``); what the service
manager knows comes from ``windows_service.py`` as a plain dict, so everything here runs on
any OS. Exit code 0 when it runs, 3 when it does not (stopped, starting, not installed, not
answering), as ``sc``'s scripts and LSB init scripts expect.
"""

from __future__ import annotations

import datetime
import json
import re
import socket
import time
from pathlib import Path

from . import __version__, lan
from .control import ControlError, send_command
from .options import ServerOptions
from .project import Project

RUNNING, NOT_RUNNING = 0, 3  # exit codes
ANSWER_TIMEOUT = 10.0  # seconds the running server gets to answer
PROBE_TIMEOUT = 1.0  # seconds to see whether something accepts connections on the port
LOG_TAIL_BYTES = 1024 * 1024  # how much of the end of each log file is searched for errors
LAST_ERROR_LIMIT = 500  # characters of the last error shown
# The log file's lines (logs.py): "2026-01-31 12:00:00,123 4242 ERROR [name] message".
ERROR_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ \d+ (?:ERROR|CRITICAL) (.*)$")


def last_error(log_file: str | None) -> str | None:
    """The newest ERROR (or CRITICAL) line of the log file, or of its first rotated copy:
    "<time> [<logger>] <message>", its first line only."""
    if not log_file:
        return None
    for path in (Path(log_file), Path(f"{log_file}.1")):
        try:
            with path.open("rb") as file:
                file.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
                text = file.read(LOG_TAIL_BYTES).decode("utf-8", "replace")
        except OSError:
            continue
        for line in reversed(text.splitlines()):
            match = ERROR_LINE.match(line)
            if match:
                found = f"{match[1]} {match[2]}"
                return found if len(found) <= LAST_ERROR_LIMIT else found[:LAST_ERROR_LIMIT] + "..."
    return None


def urls(host: str, port: int, scheme: str) -> list[str]:
    """Where the server can be reached: this machine first, then (on every interface) the
    names and addresses other computers can use."""
    local = "127.0.0.1" if host in lan.EVERY_INTERFACE else host
    local = f"[{local}]" if ":" in local else local
    found = [f"{scheme}://{local}:{port}/"]
    if host in lan.EVERY_INTERFACE:
        addresses = lan.machine_addresses()
        if any(lan.is_network_address(address) for address in addresses):
            found += lan.network_urls(scheme, port, socket.gethostname(), addresses)
    return found


def accepts_connections(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in lan.EVERY_INTERFACE else host
    try:
        socket.create_connection((target, port), timeout=PROBE_TIMEOUT).close()
        return True
    except OSError:
        return False


def collect(project: Project, options: ServerOptions, service: dict | None = None,
            name: str | None = None) -> dict:
    """The report ``status`` prints; its keys are always present (None when unknown).

    ``service``: for the Windows service, what the service manager says (``installed``,
    ``state``, ``pid``, ``account``, ``start_type``, ``stored_options``); None for a server
    started from a console.
    """
    report = {
        "name": name or project.name, "state": "stopped", "detail": None, "pid": None,
        "host": options.host, "port": options.port, "scheme": options.scheme, "urls": [],
        "processes": options.workers, "threads": options.threads, "workers": [],
        "started": None, "uptime_seconds": None, "requests": None, "last_error": None,
        "version": __version__, "version_on_disk": __version__,
        "project": str(project.directory), "log_file": options.log_file or None, "service": service,
    }
    if service is not None and not service.get("installed"):
        report["state"] = "not installed"
        report["detail"] = f"no Windows service called {name}: `service.bat install` installs it"
    elif service is not None and service.get("state") != "running":
        report["state"] = service.get("state") or "stopped"
        report["pid"] = service.get("pid") or None
    else:
        ask(project, options, report, service)
    report["last_error"] = last_error(report["log_file"])
    return report


def ask(project: Project, options: ServerOptions, report: dict, service: dict | None) -> None:
    """Fill ``report`` from the running server's answer, or say why there is none."""
    try:
        answer = send_command(project, options.port, "status", ANSWER_TIMEOUT)
    except ControlError as exc:
        report["detail"] = str(exc)
        if service is not None:  # the service manager says it runs
            report["pid"] = service.get("pid") or None
            if exc.reason == "denied":  # it runs; the details need the server's own account
                report["state"] = "running"
                report["detail"] = f"{exc} to see its processes, uptime and requests"
                return
            report["state"] = "not answering"
        elif exc.reason in ("missing", "gone"):
            report["detail"] = None  # stopped: nothing more to say
            if accepts_connections(options.host, options.port):
                report["state"] = "not answering"
                report["detail"] = (f"something accepts connections on port {options.port}, but no server "
                                    f"started from this folder answers: another program, or a server "
                                    f"that cannot write {project.data_dir} (its log says so)")
        else:
            report["state"] = "not answering"
        return
    if not answer.get("ok"):
        report["state"], report["detail"] = "not answering", str(answer.get("error"))
        return
    started = answer.get("started")
    report.update({
        "state": "running", "pid": answer.get("pid"), "host": answer.get("host", options.host),
        "port": answer.get("port", options.port), "scheme": answer.get("scheme", options.scheme),
        "processes": answer.get("processes", options.workers), "threads": answer.get("threads", options.threads),
        "workers": answer.get("workers", []), "requests": answer.get("requests"),
        "version": answer.get("version", __version__),
        "log_file": answer.get("log_file", report["log_file"]),
    })
    if started:
        report["started"] = datetime.datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds")
        report["uptime_seconds"] = max(0, round(time.time() - started))
    report["urls"] = urls(report["host"], report["port"], report["scheme"])


def duration(seconds: int) -> str:
    """3 days 4 h / 2 h 5 min / 4 min 12 s / 12 s."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days > 1 else ''} {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def render(report: dict) -> str:
    """The report as a person reads it: the state first, then one fact a line."""
    lines = [f"{report['name']}: {report['state']}"]
    if report["detail"]:
        lines.append(f"  ({report['detail']})")

    def fact(label: str, value) -> None:
        lines.append(f"  {label:<17}{value}")

    running = report["state"] == "running"
    if report["pid"]:
        fact("PID", report["pid"])
    if running and report["urls"]:
        everywhere = " (all interfaces)" if report["host"] in lan.EVERY_INTERFACE else ""
        fact("Address", report["urls"][0] + everywhere)
        if report["urls"][1:]:
            fact("Other computers", "  ".join(report["urls"][1:]))
    else:
        fact("Port", f"{report['port']} on {report['host']} (configured)")
    if running:
        processes = report["processes"]
        serving = ", ".join(f"{w['number']}: pid {w['pid']}, {w.get('requests', 0)} requests"
                            + (" (retiring)" if w.get("retiring") else "") + ("" if w.get("ready") else " (starting)")
                            for w in report["workers"])
        fact("Workers", f"{processes} process{'es' if processes > 1 else ''} x {report['threads']} threads"
             + (f" [{serving}]" if serving else ""))
        if report["uptime_seconds"] is not None:
            fact("Up", f"{duration(report['uptime_seconds'])} (since {report['started']})")
        if report["requests"] is not None:
            fact("Requests", f"{report['requests']} answered since it started")
    fact("Last error", report["last_error"] or "none in the log")
    version = report["version"]
    if report["version_on_disk"] != version:
        version += f" (on disk: {report['version_on_disk']}; a restart or reload runs it)"
    fact("Server", f"tornado_wsgi_server {version}")
    fact("Folder", report["project"])
    fact("Log", report["log_file"] or "none (SERVER_LOG_FILE is empty): the console only")
    service = report["service"]
    if service and service.get("installed"):
        fact("Account", service.get("account") or "?")
        fact("Start type", service.get("start_type") or "?")
        stored = service.get("stored_options") or []
        fact("Stored options", " ".join(stored) + " (set at install; they win over .env)" if stored
             else "none (.env decides)")
    return "\n".join(lines)


def exit_code(report: dict) -> int:
    return RUNNING if report["state"] == "running" else NOT_RUNNING


def print_report(report: dict, as_json: bool) -> int:
    """Print ``report`` (JSON, one object, for scripts); exit code 0 running, 3 not."""
    print(json.dumps(report, indent=2) if as_json else render(report), flush=True)
    return exit_code(report)


def split_json_flag(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--json``, and whether it was there."""
    return [arg for arg in argv if arg != "--json"], "--json" in argv


def main(project: Project, options_from, argv: list[str]) -> int:
    """``tornado_server.py status [--json] [--port P]``: ``options_from(argv)`` reads the options."""
    argv, as_json = split_json_flag(argv)
    options = options_from(argv)
    if options.log_file and not Path(options.log_file).is_absolute():
        options.log_file = str(project.directory / options.log_file)
    return print_report(collect(project, options), as_json)
