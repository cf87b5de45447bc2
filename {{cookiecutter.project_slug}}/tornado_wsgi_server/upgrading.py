"""What upgrade.py (upgrade.bat / ./upgrade.sh) does: prepare the new code beside the running
server, switch to it, and undo what it did when a step fails. The steps, the undo and the exit
codes are described in upgrade.py and docs/upgrades.md. Runs with the project's .venv.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from . import bootstrap, database_location, updating
from .bootstrap import BASE_DIR, StepFailed, step, venv_python

UPGRADED, FAILED, BAD_INPUT, NOT_SWITCHED, NOT_UNDONE, INTERRUPTED = 0, 1, 2, 3, 4, 130
SERVICE_WAIT_SECONDS = "120"
# What pip had installed before it changed .venv, to put it back after a failure.
PACKAGES_BEFORE = bootstrap.VENV_DIR / "packages-before-upgrade.txt"


class BadInput(Exception):
    pass


class NotUndone(Exception):
    """A failure whose changes could not be undone; the message says what to do."""


class Arguments(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(f"{message} (usage: upgrade [--prepare-only] [--no-backup] [--port P])")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = Arguments(prog="upgrade", add_help=True)
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--no-backup", action="store_true")
    parser.add_argument("--port", type=int, action="append")
    return parser.parse_args(argv)


def python_command(*args: str, capture: bool = True) -> subprocess.CompletedProcess:
    """The project's virtual environment's Python with ``args`` (tornado_server.py, manage.py)."""
    return subprocess.run([str(venv_python()), *args], cwd=BASE_DIR, capture_output=capture,
                          text=True, errors="replace")


def manage(*args: str) -> None:
    completed = python_command("manage.py", *args, capture=False)
    if completed.returncode != 0:
        raise StepFailed(f"manage.py {args[0]} failed (exit code {completed.returncode}); "
                         "see the output above.")


def service_state() -> str | None:
    """"running", "stopped"... for this project's Windows service; None when there is none
    (not installed, or not Windows: ``service status`` then fails)."""
    completed = python_command("tornado_server.py", "service", "status")
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        return None
    # The first line is "<name>: <state>"; anything after it is detail.
    return (lines[0].rpartition(": ")[2].split() or [None])[0]


def service(command: str) -> None:
    """Stop or start the service, waiting until it has (stop drains requests in flight)."""
    completed = python_command("tornado_server.py", "service", "--wait", SERVICE_WAIT_SECONDS,
                               command, capture=False)
    if completed.returncode != 0:
        raise StepFailed(f"service.bat {command} failed (exit code {completed.returncode}); "
                         "run upgrade.bat in a console opened as Administrator.")


def serving_ports() -> list[int]:
    """The ports of the servers running from this folder (those whose control channel answers;
    ``.server-*`` is where earlier versions kept it)."""
    ports = set()
    for pattern in ("data/server-*.control", ".server-*.control"):
        for path in BASE_DIR.glob(pattern):
            port = path.name.split("-", 1)[1].split(".")[0]
            if port.isdigit():
                ports.add(int(port))
    return sorted(port for port in ports
                  if python_command("tornado_server.py", "status", "--port", str(port)).returncode == 0)


def database_url_set() -> bool:
    if os.environ.get("DATABASE_URL"):
        return True
    lines = bootstrap.ENV_FILE.read_text(encoding="utf-8", errors="replace").splitlines()
    return any(line.strip().startswith("DATABASE_URL=") and line.split("=", 1)[1].strip()
               for line in lines)


# --- what changed: CHANGELOG, applied migrations, packages --------------------------------


def action_required() -> list[str]:
    """The CHANGELOG's "Action required" lines of the versions since the one installed."""
    new = updating.server_version(BASE_DIR)
    stamp = bootstrap.SERVER_VERSION_STAMP
    old = stamp.read_text().strip() if stamp.exists() else None
    shown, version = [], None
    for line in updating.changelog_between(BASE_DIR, old, new):
        if line.startswith("## "):
            version = line[3:].strip()
        elif "Action required" in line:
            shown.append(f"{version}: {line.lstrip('- ').strip()}")
    return shown


def applied_migrations() -> dict[str, str]:
    """The last applied migration of each app ("zero" for none), from showmigrations."""
    completed = python_command("manage.py", "showmigrations", "--list")
    if completed.returncode != 0:
        raise StepFailed(f"manage.py showmigrations failed: {completed.stderr.strip()[-500:]}")
    applied, app = {}, None
    for line in completed.stdout.splitlines():
        if line and not line.startswith(" "):
            app = line.strip()
            applied[app] = "zero"
        elif app and line.strip().startswith("[X]"):
            applied[app] = line.strip()[3:].strip()
    return applied


def reverse_migrations(before: dict[str, str]) -> list[str]:
    """Migrate each app whose state changed back to where it was; returns their names."""
    changed = [app for app, last in applied_migrations().items() if before.get(app, "zero") != last]
    for app in changed:
        step(f"Reversing the migrations of {app} applied by this upgrade "
             f"(back to {before.get(app, 'zero')})")
        manage("migrate", app, before.get(app, "zero"), "--noinput")
    return changed


def freeze_packages() -> None:
    completed = python_command("-m", "pip", "freeze", "--disable-pip-version-check")
    if completed.returncode == 0:
        PACKAGES_BEFORE.write_text(completed.stdout, encoding="utf-8")


def put_packages_back() -> None:
    step("Putting back the packages installed before the upgrade")
    bootstrap.STAMP.unlink(missing_ok=True)  # the next start or upgrade installs again
    command = [venv_python(), "-m", "pip", "install", "--disable-pip-version-check", "-r", PACKAGES_BEFORE]
    if bootstrap.has_wheelhouse():
        command[4:4] = ["--no-index", "--find-links", bootstrap.WHEELHOUSE]
    bootstrap.install_with_retries(command, "Putting back the previous packages")


# --- the upgrade ---------------------------------------------------------------------------


class Upgrade:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.service_running = service_state() == "running"
        self.ports = serving_ports()
        self.stopped = False  # the service, for pip
        self.packages_changed = False
        self.backup: Path | None = None
        self.migrations_before: dict[str, str] | None = None

    def prepare(self) -> None:
        if bootstrap.requirements_changed():
            if self.service_running:
                # pip cannot replace a .pyd/.dll file that a running process has loaded (Windows).
                step("requirements.txt changed while the service runs: stopping it (requests in "
                     "flight finish) so pip can replace the files it holds")
                service("stop")
                self.stopped = True
            freeze_packages()
            self.packages_changed = True
            try:
                bootstrap.ensure_requirements()
            except StepFailed as exc:
                if sys.platform == "win32" and not self.stopped:
                    raise StepFailed(f"{exc} If a console server (start_server.bat) runs from this "
                                     "folder, its files cannot be replaced: stop it with Ctrl+C and "
                                     "run upgrade.bat again.") from None
                raise
        self.move_root_database()
        if not self.options.no_backup:
            step("Backing up the database before migrating (manage.py backup)")
            completed = python_command("manage.py", "backup")
            print(completed.stdout, end="")
            if completed.returncode != 0:
                raise StepFailed(f"the backup failed, so nothing was migrated: "
                                 f"{completed.stderr.strip()[-800:]} (upgrade --no-backup skips it)")
            self.backup = Path(completed.stdout.split("Backup written to ", 1)[1].splitlines()[0])
        self.migrations_before = applied_migrations()
        bootstrap.prepare_django()

    def move_root_database(self) -> None:
        if database_url_set() or not database_location.left_at_root(BASE_DIR):
            return
        if self.ports or (self.service_running and not self.stopped):
            os.environ[database_location.WARNED] = "1"  # said here once, not by every command
            print(f"NOTE: the database is still at {database_location.root_database(BASE_DIR)}. "
                  "It is moved into data\\ by an upgrade run while the site is stopped "
                  "(service.bat stop, or Ctrl+C in the console server's window).")
            return
        step("Moving the database into data\\ (nothing serves from it now)")
        try:
            new, kept, counts = database_location.move_root_database(BASE_DIR, BASE_DIR / "backups")
        except database_location.MoveFailed as exc:
            raise StepFailed(str(exc)) from None
        print(f"    {sum(counts.values())} rows in {len(counts)} tables copied to {new} and checked; "
              f"the original is kept as {kept}")

    def switch(self) -> int:
        """Make the running servers use the new code."""
        if self.stopped:
            service("start")
            step("Upgrade done: the service runs the new code")
            return UPGRADED
        ports = [p for p in self.ports if not self.options.port or p in self.options.port]
        missing = [p for p in self.options.port or [] if p not in self.ports]
        if missing:
            print(f"NOTE: no server runs from this folder on port {', '.join(map(str, missing))}.")
        failed = []
        for port in ports:
            step(f"Switching the server on port {port} to the new code (tornado_server.py reload)")
            reload = python_command("tornado_server.py", "reload", "--port", str(port))
            print((reload.stdout + reload.stderr).strip())
            if reload.returncode != 0:
                failed.append(port)
        if self.service_running and (failed or not ports):
            step("No reload possible; restarting the service (requests in flight finish first)")
            service("stop")
            service("start")
            step("Upgrade done: the service was restarted on the new code")
            return UPGRADED
        if ports and not failed:
            step("Upgrade done: every running server reloaded the new code")
            return UPGRADED
        print("NOT SWITCHED: the new code is prepared (packages, database, static files), but no "
              "running server took it. A console server (start_server): press Ctrl+C in its window "
              "and start it again. None running: start_server (or service.bat start) uses it.")
        return NOT_SWITCHED

    def undo(self, error: StepFailed) -> int:
        """After a failed step: put back what this upgrade changed; FAILED or NOT_UNDONE."""
        print(f"ERROR: {error}", file=sys.stderr, flush=True)
        step("Undoing what this upgrade changed")
        try:
            restored = self.undo_database()
            if self.packages_changed and PACKAGES_BEFORE.exists():
                put_packages_back()
            if self.stopped:
                step("Starting the service again")
                service("start")
        except (StepFailed, NotUndone) as exc:
            print(f"ERROR: the failure could not be undone: {exc}\n"
                  f"STATE: the site may be stopped or half-upgraded. {self.recovery()}",
                  file=sys.stderr, flush=True)
            return NOT_UNDONE
        if self.stopped:
            state = ("the service runs again, on the database as it was before the upgrade"
                     f"{' (restored from ' + str(self.backup) + ')' if restored else ''} and the "
                     "packages as they were. The code files in this folder are the new ones: if "
                     "the site shows errors, put the previous release's files back and run "
                     "upgrade again")
        else:
            state = "the running server still serves the old code, and the database is as before"
        print(f"UPGRADE FAILED, UNDONE: {state}. Fix the error above and run upgrade again.",
              file=sys.stderr, flush=True)
        return FAILED

    def undo_database(self) -> bool:
        """Returns True if the database was restored from the backup."""
        if self.migrations_before is None:
            return False  # migrate never ran
        if self.stopped and self.backup:
            # Nothing serves: the backup holds every write.
            step(f"Restoring the database from {self.backup}")
            manage("restore", "--noinput", str(self.backup))
            return True
        try:
            reverse_migrations(self.migrations_before)
        except StepFailed as exc:
            raise NotUndone(f"{exc} A migration that cannot be reversed was applied") from None
        return False

    def recovery(self) -> str:
        backup = (f"restore the backup: .venv\\Scripts\\python manage.py restore {self.backup}"
                  if self.backup else "restore your latest backup (manage.py restore FILE)")
        return (f"To go back: service.bat stop (or Ctrl+C), {backup}, put the previous release's "
                "files back, run upgrade.bat --prepare-only, then start the site again.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    bootstrap.tolerate_unencodable_output()
    try:
        options = parse(argv)
        if bootstrap.venv_state() != "ok":
            raise BadInput("this project has no working .venv yet: run start_server once first.")
        if not bootstrap.ENV_FILE.exists():
            raise BadInput(".env is missing: run start_server once first.")
    except BadInput as exc:
        print(f"ERROR: {exc}\nNothing was changed.", file=sys.stderr, flush=True)
        return BAD_INPUT
    for line in action_required():
        print(f"ACTION REQUIRED (server {line})")
    try:
        upgrade = Upgrade(options)
        try:
            upgrade.prepare()
        except StepFailed as exc:
            return upgrade.undo(exc)
        if options.prepare_only:
            step("Prepared; the running server still runs the old code until it is restarted")
            outcome = UPGRADED
        else:
            outcome = upgrade.switch()
        bootstrap.record_server_version()
        return outcome
    except StepFailed as exc:  # the switch itself
        print(f"ERROR: {exc}\nSTATE: the new code is prepared but the switch failed; the site may "
              "be stopped: service.bat status.", file=sys.stderr, flush=True)
        return NOT_UNDONE
    except KeyboardInterrupt:
        print("ERROR: interrupted.", file=sys.stderr)
        return INTERRUPTED
