"""Online, consistent backups of the default database, and restores (manage.py backup,
manage.py restore). SQLite: the sqlite3 online backup API, safe beside a running server in
WAL mode. PostgreSQL: pg_dump's custom format and pg_restore. Uploaded files (MEDIA_ROOT) go
to a zip beside the database's file (``media_archive``). Errors are CommandError.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
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


def media_archive(database_backup: Path) -> Path:
    """The zip of MEDIA_ROOT that goes with a database backup: site-20260101-020000.sqlite3
    has site-20260101-020000.media.zip."""
    return database_backup.with_suffix(".media.zip")


def prune(keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest backups in BACKUP_DIR (with their media);
    returns the deleted ones."""
    backups = sorted(p for p in BACKUP_DIR.glob("*") if p.suffix in (".sqlite3", ".dump"))
    old = backups[:-keep] if keep > 0 else []
    for path in old:
        path.unlink()
        media_archive(path).unlink(missing_ok=True)
    return old


def backup(target: Path, media: bool = True) -> Path | None:
    """Write a consistent copy of the database to ``target`` (atomically: a half-written
    file never carries the final name), then, with ``media``, MEDIA_ROOT to the zip beside
    it; returns that zip. The database comes first: every file its rows name was there
    when the zip was made, unless deleted in between."""
    _backup_database(target)
    if not media:
        return None
    archive = media_archive(target)
    backup_media(Path(settings.MEDIA_ROOT), archive)
    return archive


def _backup_database(target: Path) -> None:
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


def restore(source: Path, media: bool = True) -> Path | None:
    """Replace the database's content with the backup ``source`` and, with ``media`` and
    when the backup has one, MEDIA_ROOT's with its zip; returns that zip, or None."""
    if not source.is_file():
        raise CommandError(f"{source} does not exist")
    archive = media_archive(source)
    if media and archive.is_file():
        check_media_archive(archive)  # before anything changes
    else:
        archive = None
    _restore_database(source)
    if archive is not None:
        restore_media(archive, Path(settings.MEDIA_ROOT))
    return archive


def _restore_database(source: Path) -> None:
    if vendor() == "sqlite":
        sqlite_restore(source, Path(database()["NAME"]))
    elif vendor() == "postgresql":
        pg_restore(source)
    else:
        raise CommandError(f"restores into {vendor()} databases are not supported; use its own tools")


# --- Uploaded files (MEDIA_ROOT) -------------------------------------------------------


def backup_media(media_root: Path, archive: Path) -> None:
    """Zip every file under ``media_root`` (none if it does not exist yet) to ``archive``,
    atomically. Files are read while the site runs: one being replaced may be skipped."""
    partial = archive.with_name(archive.name + ".partial")
    try:
        # Uploads are mostly compressed already (pictures, PDF): the fastest level will do.
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zipped:
            if media_root.is_dir():
                for folder, folders, files in os.walk(media_root):
                    folders.sort()
                    for name in sorted(files):
                        path = Path(folder, name)
                        try:
                            zipped.write(path, path.relative_to(media_root).as_posix())
                        except FileNotFoundError:
                            continue  # deleted since the folder was listed
                        except OSError as exc:
                            raise CommandError(f"cannot back up {path}: {exc}") from None
        os.replace(partial, archive)
    except OSError as exc:
        raise CommandError(f"cannot write {archive}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)


def _member_path(name: str) -> Path | None:
    """The relative path a zip member may be extracted to, or None if it could land
    outside the folder (absolute, drive letter, .., backslashes)."""
    parts = name.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") or "\\" in part or ":" in part
                                   for part in parts):
        return None
    return Path(*parts)


def check_media_archive(archive: Path) -> None:
    """Refuse a damaged media zip, or one with a name that leads out of the folder."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            damaged = zipped.testzip()
            if damaged is not None:
                raise CommandError(f"{archive} is damaged (at {damaged})")
            for name in zipped.namelist():
                if not name.endswith("/") and _member_path(name) is None:
                    raise CommandError(f"{archive} holds a file name that leads out of the media folder: {name!r}")
    except (zipfile.BadZipFile, OSError) as exc:
        raise CommandError(f"cannot restore {archive}: {exc}") from None


def restore_media(archive: Path, media_root: Path) -> None:
    """Make ``media_root`` hold exactly the files of ``archive``: unpacked beside it first,
    then put in its place, so a failure midway leaves the current files as they were."""
    staging = media_root.with_name(media_root.name + ".restoring")
    previous = media_root.with_name(media_root.name + ".previous")
    try:
        if previous.exists() and not media_root.exists():
            os.replace(previous, media_root)  # a restore stopped between its two renames
        for leftover in (staging, previous):
            shutil.rmtree(leftover, ignore_errors=True)
        staging.mkdir(parents=True)
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                relative = _member_path(info.filename.rstrip("/"))
                if relative is None:
                    continue
                target = staging / relative
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(info) as source, open(target, "wb") as copy:
                    shutil.copyfileobj(source, copy, 1024 * 1024)
        if media_root.exists():
            os.replace(media_root, previous)
        try:
            os.replace(staging, media_root)
        except OSError:
            if previous.exists():
                os.replace(previous, media_root)  # the current files, back in their place
            raise
    except OSError as exc:
        raise CommandError(
            f"cannot restore the uploaded files into {media_root}: {exc} (is the site "
            "stopped? a file open in another program also blocks this on Windows)") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(previous, ignore_errors=True)


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
