"""Online, consistent backups of the default database, and restores (manage.py backup,
manage.py restore). SQLite: the sqlite3 online backup API, safe beside a running server in
WAL mode. PostgreSQL: pg_dump's custom format and pg_restore. Errors are CommandError.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connections

BACKUP_DIR = Path(settings.BASE_DIR) / "backups"


def database() -> dict:
    return connections["default"].settings_dict


def vendor() -> str:
    return connections["default"].vendor


def default_backup_path() -> Path:
    suffix = ".sqlite3" if vendor() == "sqlite" else ".dump"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return BACKUP_DIR / f"{__name__.split('.')[0]}-{stamp}{suffix}"


def prune(keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest backups in BACKUP_DIR; returns the deleted ones."""
    backups = sorted(p for p in BACKUP_DIR.glob("*") if p.suffix in (".sqlite3", ".dump"))
    old = backups[:-keep] if keep > 0 else []
    for path in old:
        path.unlink()
    return old


def backup(target: Path) -> None:
    """Write a consistent copy of the database to ``target`` (atomically: a half-written
    file never carries the final name)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        if vendor() == "sqlite":
            sqlite_backup(Path(database()["NAME"]), partial)
        elif vendor() == "postgresql":
            pg_dump(partial)
        else:
            raise CommandError(f"backups of {vendor()} databases are not supported; use its own tools")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def restore(source: Path) -> None:
    """Replace the database's content with the backup ``source``."""
    if not source.is_file():
        raise CommandError(f"{source} does not exist")
    if vendor() == "sqlite":
        sqlite_restore(source, Path(database()["NAME"]))
    elif vendor() == "postgresql":
        pg_restore(source)
    else:
        raise CommandError(f"restores into {vendor()} databases are not supported; use its own tools")


# --- SQLite ---------------------------------------------------------------------------


def sqlite_connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    timeout = database().get("OPTIONS", {}).get("timeout", 20)
    if readonly:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
    return sqlite3.connect(path, timeout=timeout)


def check_integrity(connection: sqlite3.Connection, what: str) -> None:
    result = connection.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        raise CommandError(f"{what} fails SQLite's integrity check: {result[:5]}")


def sqlite_backup(database_file: Path, target: Path) -> None:
    if not database_file.is_file():
        raise CommandError(f"the database {database_file} does not exist")
    source = sqlite_connect(database_file, readonly=True)
    copy = sqlite3.connect(target)
    try:
        # All pages in one step: one read transaction, so one consistent snapshot, while
        # the server goes on writing (WAL readers do not block writers).
        source.backup(copy, pages=-1)
        check_integrity(copy, "the backup")
    except sqlite3.Error as exc:
        raise CommandError(f"backup of {database_file} failed: {exc}") from None
    finally:
        copy.close()
        source.close()


def sqlite_restore(source: Path, database_file: Path) -> None:
    try:
        backup_copy = sqlite_connect(source, readonly=True)
        try:
            check_integrity(backup_copy, str(source))
            # Through SQLite itself, not a file copy: the WAL and other connections stay
            # consistent, and the file keeps its permissions.
            live = sqlite_connect(database_file)
            try:
                backup_copy.backup(live, pages=-1)
                live.execute("PRAGMA journal_mode=WAL")
            finally:
                live.close()
        finally:
            backup_copy.close()
    except sqlite3.DatabaseError as exc:
        raise CommandError(f"cannot restore {source}: {exc}") from None


# --- PostgreSQL -----------------------------------------------------------------------


def pg_program(name: str) -> str:
    """pg_dump / pg_restore: PG_BIN, then PATH, then (Windows) the newest PostgreSQL install."""
    folder = os.environ.get("PG_BIN")
    exe = name + (".exe" if sys.platform == "win32" else "")
    if folder:
        if (Path(folder) / exe).is_file():
            return str(Path(folder) / exe)
        raise CommandError(f"{exe} is not in PG_BIN={folder}")
    found = shutil.which(name)
    if found:
        return found
    if sys.platform == "win32":
        installs = []
        for root in {os.environ.get("ProgramFiles", r"C:\Program Files"), r"C:\Program Files"}:
            for candidate in Path(root, "PostgreSQL").glob(f"*/bin/{exe}"):
                version = re.findall(r"\d+", candidate.parent.parent.name)
                installs.append(([int(v) for v in version], str(candidate)))
        if installs:
            return max(installs)[1]
    raise CommandError(
        f"{name} was not found. It comes with PostgreSQL (on Windows the installer puts it in "
        rf"C:\Program Files\PostgreSQL\<version>\bin; its 'Command Line Tools' component). "
        "Put that folder on PATH or set PG_BIN to it; it must be the server's version or newer.")


def pg_environment() -> dict:
    """Connection settings for libpq in the environment: no password on a command line."""
    db = database()
    env = dict(os.environ)
    for variable, key in (("PGHOST", "HOST"), ("PGPORT", "PORT"), ("PGUSER", "USER"),
                          ("PGPASSWORD", "PASSWORD"), ("PGDATABASE", "NAME")):
        if db.get(key):
            env[variable] = str(db[key])
    for option, variable in (("sslmode", "PGSSLMODE"), ("connect_timeout", "PGCONNECT_TIMEOUT")):
        if db.get("OPTIONS", {}).get(option):
            env[variable] = str(db["OPTIONS"][option])
    return env


def run_pg(args: list[str], what: str) -> None:
    try:
        completed = subprocess.run(args, env=pg_environment(), capture_output=True, text=True,
                                   errors="replace")
    except OSError as exc:
        raise CommandError(f"{what} could not start: {exc}") from None
    if completed.returncode != 0:
        raise CommandError(f"{what} failed (exit code {completed.returncode}): {completed.stderr.strip()}")


def pg_dump(target: Path) -> None:
    # One transaction: a consistent snapshot while the site goes on writing.
    run_pg([pg_program("pg_dump"), "--format=custom", "--no-password", f"--file={target}"], "pg_dump")


def pg_restore(source: Path) -> None:
    run_pg([pg_program("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
            "--exit-on-error", "--no-password", f"--dbname={database()['NAME']}", str(source)],
           f"cannot restore {source}: pg_restore")
