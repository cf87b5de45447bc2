"""Upgrade the running site to the code now in this folder: upgrade.bat / ./upgrade.sh.

Prepares the new code beside the running server (requirements only when requirements.txt
changed, migrations, static files), then switches to it: ``tornado_server.py reload``
(new workers, no dropped request), else a drained restart of the Windows service, else it
says to restart the console server. Exits non-zero with an ``ERROR:`` line if a step fails.
"""

from __future__ import annotations

import subprocess
import sys

from tornado_wsgi_server import bootstrap
from tornado_wsgi_server.bootstrap import BASE_DIR, StepFailed, step, venv_python

SERVICE_WAIT_SECONDS = "120"


def server_command(*args: str, capture: bool = True) -> subprocess.CompletedProcess:
    """``tornado_server.py ARGS`` with the project's virtual environment."""
    return subprocess.run([str(venv_python()), "tornado_server.py", *args], cwd=BASE_DIR,
                          capture_output=capture, text=True, errors="replace")


def service_state() -> str | None:
    """"running", "stopped"... for this project's Windows service; None when there is none
    (not installed, or not Windows: ``service status`` then fails)."""
    completed = server_command("service", "status")
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        return None
    # The first line is "<name>: <state>"; anything after it is detail.
    return (lines[0].rpartition(": ")[2].split() or [None])[0]


def service(command: str) -> None:
    """Stop or start the service, waiting until it has (stop drains requests in flight)."""
    completed = server_command("service", "--wait", SERVICE_WAIT_SECONDS, command, capture=False)
    if completed.returncode != 0:
        raise StepFailed(f"service.bat {command} failed (exit code {completed.returncode}); "
                         "run upgrade.bat in a console opened as Administrator.")


def prepare(service_running: bool) -> bool:
    """Requirements (if changed), migrations, static files. Returns True if it stopped the
    service to install requirements (the caller starts it again)."""
    stopped = False
    if bootstrap.requirements_changed() and service_running:
        # pip cannot replace a .pyd/.dll file that a running process has loaded (Windows).
        step("requirements.txt changed while the service runs: stopping it (requests in flight "
             "finish) so pip can replace the files it holds; it starts again at the end")
        service("stop")
        stopped = True
    try:
        try:
            bootstrap.ensure_requirements()
        except StepFailed as exc:
            if sys.platform == "win32" and not stopped:
                raise StepFailed(f"{exc} If a console server (start_server.bat) runs from this "
                                 "folder, its files cannot be replaced: stop it with Ctrl+C and "
                                 "run upgrade.bat again.") from None
            raise
        bootstrap.prepare_django()
    except StepFailed:
        if stopped:
            step("Starting the service again after the failure")
            service("start")
        raise
    return stopped


def switch(service_running: bool) -> str:
    """Make the running server use the new code; returns what happened."""
    step("Switching the running server to the new code (tornado_server.py reload)")
    reload = server_command("reload")
    output = (reload.stdout + reload.stderr).strip()
    if reload.returncode == 0:
        if output:
            print(output)
        return "reloaded"
    if service_running:
        step("No reload possible; restarting the service (requests in flight finish first)")
        service("stop")
        service("start")
        return "restarted"
    if output:
        print(output.splitlines()[-1])
    print("NOTE: no running server was reloaded. If a console server (start_server) is running, "
          "stop it with Ctrl+C and start it again to use the new code.")
    return "not switched"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    bootstrap.tolerate_unencodable_output()
    prepare_only = "--prepare-only" in argv
    try:
        if bootstrap.venv_state() != "ok":
            raise StepFailed("this project has no working .venv yet: run start_server once first.")
        if not bootstrap.ENV_FILE.exists():
            raise StepFailed(".env is missing: run start_server once first.")
        service_running = service_state() == "running"
        stopped = prepare(service_running)
        if stopped:
            service("start")
            step("Upgrade done: the service runs the new code")
        elif prepare_only:
            step("Prepared; the running server still runs the old code until it is restarted")
        else:
            outcome = switch(service_running)
            step(f"Upgrade done ({outcome})")
    except StepFailed as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("ERROR: interrupted.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
