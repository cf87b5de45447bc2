"""manage.py backup while 20 clients write through the real server, then manage.py restore
into a fresh database: the copy passes the integrity check and holds every write that was
acknowledged (HTTP 200 received) before the backup began. SQLite, or PostgreSQL in a
postgresql bake."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import (
    PROJECT_DIR,
{%- if cookiecutter.database == "postgresql" %}
    database_url,
{%- endif %}
    drop_postgresql_database,
    is_postgresql,
    postgresql_connect,
    with_database_name,
)

WRITERS = 20


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args, "--settings", "tests.settings"],
                          cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300)


class Writers:
    """WRITERS threads, each creating rows (auth groups) through the server, one at a time,
    noting when each was acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acknowledged: list[tuple[float, str]] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.write, args=(n,)) for n in range(WRITERS)]
        for thread in self.threads:
            thread.start()

    def write(self, writer: int) -> None:
        with httpx.Client(timeout=60) as http:
            count = 0
            while not self.stopping.is_set():
                name = f"w{writer}-{count}"
                count += 1
                response = http.post(f"{self.url}/__test__/group", params={"name": name})
                if response.status_code == 200:
                    self.acknowledged.append((time.monotonic(), name))
                else:
                    self.failures.append(f"{name}: {response.status_code}")

    def acknowledged_before(self, moment: float) -> set[str]:
        return {name for at, name in list(self.acknowledged) if at < moment}

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)


def wait_for_writes(writers: Writers, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(writers.acknowledged) < count:
        assert time.monotonic() < deadline, f"only {len(writers.acknowledged)} writes in 60 s"
        time.sleep(0.05)


@pytest.fixture
def fresh_database(request, server_env, tmp_path):
    """DATABASE_URL of a new, empty database of the kind the servers use."""
    url = server_env["DATABASE_URL"]
    if not is_postgresql(url):
        return f"sqlite:///{(tmp_path / 'restored.sqlite3').as_posix()}"
    name = f"{url.rsplit('/', 1)[1]}_restored_{secrets.token_hex(3)}"
    with postgresql_connect(url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    request.addfinalizer(lambda: drop_postgresql_database(url, name))
    return with_database_name(url, name)


def restored_names(url: str) -> set[str]:
    if is_postgresql(url):
        with postgresql_connect(url, url.rsplit("/", 1)[1]) as connection:
            return {row[0] for row in connection.execute("SELECT name FROM auth_group")}
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return {row[0] for row in connection.execute("SELECT name FROM auth_group")}
    finally:
        connection.close()


@pytest.mark.timeout(900)
def test_backup_while_clients_write_restores_every_acknowledged_write(
        request, start_server, server_env, fresh_database, tmp_path):
    server = start_server("--threads", "8")
    url = server_env["DATABASE_URL"]
    if not is_postgresql(url):
        # A long read elsewhere (a report, someone's DB browser) keeps checkpoints from
        # moving newer commits into the main file: they live in db.sqlite3-wal only, which
        # a plain copy of db.sqlite3 would miss.
        keeper = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        keeper.execute("BEGIN")
        keeper.execute("SELECT count(*) FROM auth_group").fetchall()
        request.addfinalizer(keeper.close)
    writers = Writers(server.url)
    try:
        wait_for_writes(writers, 150)
        backup_file = tmp_path / "site-backup"
        backup_began = time.monotonic()
        backup = manage("backup", "--output", str(backup_file), env=server_env)
        backup_ended = time.monotonic()
        during = len(writers.acknowledged)
        wait_for_writes(writers, during + 50)  # the site kept writing after the backup
    finally:
        writers.stop()
    assert backup.returncode == 0, backup.stdout + backup.stderr
    assert "Backup written to" in backup.stdout
    # 20 writers on a small machine may overload the server: a 503 is a write that was
    # refused, not acknowledged, and so not owed to the backup. Nothing else may fail.
    assert all(failure.endswith(": 503") for failure in writers.failures), writers.failures[:5]
    must_have = writers.acknowledged_before(backup_began)
    assert len(must_have) >= 150

    restore = manage("restore", str(backup_file), "--noinput",
                     env={**server_env, "DATABASE_URL": fresh_database})
    assert restore.returncode == 0, restore.stdout + restore.stderr
    restored = restored_names(fresh_database)
    missing = must_have - restored
    assert not missing, f"{len(missing)} acknowledged writes missing, e.g. {sorted(missing)[:5]}"
    # A snapshot, not the live file: what was acknowledged after the backup ended is not in it.
    later = {name for at, name in writers.acknowledged if at > backup_ended}
    assert later and not later <= restored


def test_default_backups_go_to_the_backups_folder_and_old_ones_are_pruned(server_env, tmp_path):
    from django.conf import settings  # noqa: F401  (the test settings are loaded)

    made = []
    for _ in range(3):
        completed = manage("backup", "--keep", "2", env=server_env)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        made.append(Path(completed.stdout.split("Backup written to ", 1)[1].split("\n", 1)[0].strip()))
        time.sleep(1.1)  # the file name has the time to the second
    try:
        assert made[0].parent == PROJECT_DIR / "backups"
        assert not made[0].exists() and made[1].exists() and made[2].exists()
        # Each backup's uploaded files go with it.
        assert [path.with_suffix(".media.zip").exists() for path in made] == [False, True, True]
        assert "Deleted old backup" in completed.stdout
    finally:
        for path in made:
            path.unlink(missing_ok=True)
            path.with_suffix(".media.zip").unlink(missing_ok=True)


def test_restoring_a_damaged_file_is_a_clear_error_and_changes_nothing(server_env, tmp_path):
    damaged = tmp_path / ("damaged.dump" if is_postgresql(server_env["DATABASE_URL"]) else "damaged.sqlite3")
    damaged.write_bytes(b"SQLite format 3\x00" + b"\x07" * 4000)
    completed = manage("restore", str(damaged), "--noinput", env=server_env)
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert "CommandError: cannot restore" in completed.stderr and damaged.name in completed.stderr
    missing = manage("restore", str(tmp_path / "nope.sqlite3"), "--noinput", env=server_env)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
{%- if cookiecutter.database == "postgresql" %}


@pytest.mark.skipif(not is_postgresql(database_url()), reason="the project's database is not PostgreSQL")
def test_pg_dump_missing_is_a_clear_error(postgresql_url, server_env, tmp_path):
    env = {**server_env, "PATH": str(Path(sys.executable).parent)}
    env.pop("PG_BIN", None)
    completed = manage("backup", "--output", str(tmp_path / "x.dump"), env=env)
    assert completed.returncode == 1
    assert "CommandError: pg_dump was not found" in completed.stderr and "PG_BIN" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "x.dump").exists()
{%- endif %}


def test_backup_and_restore_bring_the_uploaded_files_back(start_server, server_env, tmp_path):
    """An upload through the real server goes into the backup's .media.zip; after it is
    deleted and another file is added, restore puts the media folder back as it was."""
    media = Path(server_env["DJANGO_MEDIA_ROOT"])
    server = start_server()
    content = secrets.token_bytes(5000)
    uploaded = httpx.post(f"{server.url}/__test__/media-upload",
                          files={"file": ("report.pdf", content)}, data={"name": "reports/report.pdf"},
                          timeout=30)
    assert uploaded.status_code == 200, uploaded.text
    name = uploaded.json()["name"]
    backup_file = tmp_path / "with-media.sqlite3"
    completed = manage("backup", "--output", str(backup_file), env=server_env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    archive = tmp_path / "with-media.media.zip"
    assert f"Uploaded files written to {archive}" in completed.stdout
    (media / name).unlink()
    (media / "added-later.txt").write_text("not in the backup")
    server.stop()

    restore = manage("restore", str(backup_file), "--noinput", env=server_env)
    assert restore.returncode == 0, restore.stdout + restore.stderr
    assert "Restored the uploaded files" in restore.stdout
    assert (media / name).read_bytes() == content
    assert not (media / "added-later.txt").exists()
    assert sorted(p.name for p in media.parent.iterdir() if p.name.startswith("media.")) == []
    served = start_server()
    assert httpx.get(f"{served.url}/media/{name}", timeout=30).content == content

    # --no-media leaves the folder alone.
    (media / "kept.txt").write_text("kept")
    database_only = manage("restore", str(backup_file), "--noinput", "--no-media", env=server_env)
    assert database_only.returncode == 0, database_only.stdout + database_only.stderr
    assert (media / "kept.txt").exists()


def test_a_media_zip_with_a_path_out_of_the_folder_is_refused_before_anything_changes(server_env, tmp_path):
    import zipfile

    media = Path(server_env["DJANGO_MEDIA_ROOT"])
    media.mkdir(parents=True, exist_ok=True)
    (media / "current.txt").write_text("current")
    backup_file = tmp_path / "evil.sqlite3"
    completed = manage("backup", "--output", str(backup_file), "--no-media", env=server_env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with zipfile.ZipFile(tmp_path / "evil.media.zip", "w") as zipped:
        zipped.writestr("fine.txt", "fine")
        zipped.writestr("../escaped.txt", "outside")
    restore = manage("restore", str(backup_file), "--noinput", env=server_env)
    assert restore.returncode == 1 and "leads out of the media folder" in restore.stderr
    assert "Traceback" not in restore.stderr
    assert (media / "current.txt").exists() and not (media.parent / "escaped.txt").exists()
