"""Where the SQLite database lives: ``data/db.sqlite3`` (with ``logs/``, the only folders written
while the site runs). Projects made by earlier versions kept ``db.sqlite3`` at the project's
root: such a file is still used, with a WARNING naming the upgrade command, which moves it
(``move_root_database``) while nothing serves from it. Standard library only: the project's
settings.py and upgrading.py both use it.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

NAME = "db.sqlite3"
SIDE_FILES = ("-wal", "-shm", "-journal")
# Set once the WARNING is shown, so workers and commands started by that process stay quiet.
WARNED = "ROOT_DATABASE_WARNED"


class MoveFailed(Exception):
    pass


def data_database(base_dir: Path) -> Path:
    return Path(base_dir) / "data" / NAME


def root_database(base_dir: Path) -> Path:
    return Path(base_dir) / NAME


def left_at_root(base_dir: Path) -> bool:
    """True when a database of an earlier version is at the root and data/ has none."""
    return root_database(base_dir).is_file() and not data_database(base_dir).exists()


def default_database(base_dir: Path) -> Path:
    """The SQLite file to use when DATABASE_URL is not set."""
    if left_at_root(base_dir):
        if not os.environ.get(WARNED):
            os.environ[WARNED] = "1"
            sys.stderr.write(
                f"WARNING: the database is still at {root_database(base_dir)}, where earlier "
                "versions kept it; it now belongs in data\\. Run upgrade.bat (Linux: "
                "./upgrade.sh) while the site is stopped to move it there.\n")
        return root_database(base_dir)
    try:
        data_database(base_dir).parent.mkdir(exist_ok=True)
    except OSError:
        pass  # SQLite then names the folder it cannot open
    return data_database(base_dir)


def row_counts(connection: sqlite3.Connection) -> dict[str, int]:
    tables = [name for (name,) in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return {table: connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            for table in tables}


def move_root_database(base_dir: Path, keep_dir: Path) -> tuple[Path, Path, dict[str, int]]:
    """Copy the root database into data/ through SQLite (every committed row, the WAL
    included), check the copy (integrity and every table's row count), then move the original
    and its side files into ``keep_dir``. Only while nothing serves from it: the caller checks.
    Returns (new file, kept original, row counts)."""
    old, new = root_database(base_dir), data_database(base_dir)
    if new.exists():
        raise MoveFailed(f"both {old} and {new} exist: keep the one with your data in data\\ "
                         "and move the other away, then run the upgrade again.")
    new.parent.mkdir(exist_ok=True)
    partial = new.with_name(NAME + ".partial")
    partial.unlink(missing_ok=True)
    try:
        # One connection holds the write lock while another copies: no commit can fall
        # between copy and check (a backup from the connection that holds it would wait forever).
        lock = sqlite3.connect(old, timeout=20, isolation_level=None)
        source = sqlite3.connect(old, timeout=20)
        try:
            lock.execute("BEGIN IMMEDIATE")
            copy = sqlite3.connect(partial)
            try:
                source.backup(copy, pages=-1)
                if copy.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
                    raise MoveFailed(f"the copy of {old} fails SQLite's integrity check")
                counts = row_counts(source)
                if row_counts(copy) != counts:
                    raise MoveFailed(f"the copy of {old} does not hold the same rows")
                copy.execute("PRAGMA journal_mode=WAL")
            finally:
                copy.close()
            lock.execute("ROLLBACK")
            # Folds the WAL into the file, so the original is whole on its own.
            source.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            source.close()
            lock.close()
        os.replace(partial, new)
    except sqlite3.Error as exc:
        raise MoveFailed(f"cannot copy {old} into data\\: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    keep_dir.mkdir(parents=True, exist_ok=True)
    kept = keep_dir / f"{NAME}-moved-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        os.replace(old, kept)
    except OSError as exc:
        # Open in another program (Windows): that one would go on writing to it.
        new.unlink()
        raise MoveFailed(f"{old} is in use by another program ({exc.strerror or exc}), so it "
                         "stays where it is: stop whatever uses it, then run the upgrade again.") from None
    for suffix in SIDE_FILES:
        side = old.with_name(NAME + suffix)
        if side.exists():
            os.replace(side, kept.with_name(kept.name + suffix))
    return new, kept, counts
