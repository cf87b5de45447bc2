"""upgrade.py (upgrade.bat / upgrade.sh) run for real on a copy of this project, with a real
server serving the old code, real migrations, backups and restores: a release that upgrades, a
release whose migration fails (undone, the old code still serving), the exit codes, and a
database left at the project's root by an earlier version (moved into data/ with every row).

The Windows service cannot run here: for its path (stop for pip, restore, start again) the
copy's tornado_server.py is a stand-in that answers like a running service and records what it
was asked; everything else (pip, manage.py) is real.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from .conftest import PROJECT_DIR, SLUG, free_port
from .settings import TEST_ENVIRONMENT
from .test_bootstrap import make_wheel

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

IS_WINDOWS = sys.platform == "win32"
LEFT_OUT = (".venv", "data", "logs", "backups", "staticfiles", "wheelhouse", "__pycache__",
            ".pytest_cache", ".ruff_cache", ".env", "db.sqlite3*", ".server-*", "tests", ".git")
GROUPS = 300  # rows the site holds before the upgrade

# A release: a page the old code does not have, and a migration (of the project's own app).
RELEASE_VIEW = "from django.http import HttpResponse\n\n\ndef release(request):\n" \
               "    return HttpResponse('RELEASE-2')\n"
CREATE_TABLE = """from django.db import migrations


class Migration(migrations.Migration):
    dependencies = []
    operations = [migrations.RunSQL("CREATE TABLE release_probe (id integer)",
                                    reverse_sql="DROP TABLE release_probe")]
"""
FAILING = """from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("{slug}", "0001_probe")]
    operations = [migrations.RunSQL("INSERT INTO no_such_table VALUES (1)")]
"""
# Stands in for tornado_server.py: a running Windows service, no console server.
STUB_SERVICE = '''
import sys
with open("calls.log", "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["service", "status"]:
    print("site: running")
elif sys.argv[1:2] != ["service"]:
    sys.exit("ERROR: no server is running here")
'''


def venv_python(site: Path) -> Path:
    return site / ".venv" / ("Scripts/python.exe" if IS_WINDOWS else "bin/python")


def site_env(**extra: str) -> dict:
    """This process's environment less what would override the copy's own .env."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("DJANGO_", "SERVER_", "TEST_", "ROOT_DATABASE"))
           and name not in TEST_ENVIRONMENT and name not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def run(site: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv_python(site)), *args], cwd=site, env=site_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def upgrade(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    completed = run(site, "upgrade.py", *args, **env)
    print(completed.stdout, completed.stderr)
    return completed


@pytest.fixture(scope="module")
def prepared_site(tmp_path_factory) -> Path:
    """A copy of the project after its first start: .venv (seeing the packages of the Python
    running these tests, so nothing is downloaded), .env, a migrated database with GROUPS rows."""
    site = tmp_path_factory.mktemp("prepared") / "site"
    shutil.copytree(PROJECT_DIR, site, ignore=shutil.ignore_patterns(*LEFT_OUT))
    subprocess.run([sys.executable, "-m", "venv", str(site / ".venv")], check=True, timeout=300)
    site_packages = next((site / ".venv").glob("[Ll]ib/**/site-packages"))
    (site_packages / "test-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # The copy's own settings: its SQLite database (also in a postgresql bake), no log file.
    settings = [line for line in (site / ".env.example").read_text(encoding="utf-8").splitlines()
                if not line.startswith(("DATABASE_URL=", "DJANGO_SECRET_KEY=", "SERVER_LOG_FILE="))]
    settings += [f"DJANGO_SECRET_KEY=test-only-{'u' * 60}", "SERVER_LOG_FILE="]
{%- if cookiecutter.database == "postgresql" %}
    settings.append("DATABASE_URL=sqlite:///data/db.sqlite3")  # relative: each copy its own
    (site / "data").mkdir(exist_ok=True)
{%- endif %}
    (site / ".env").write_text("\n".join(settings) + "\n", encoding="utf-8")
    first = subprocess.run([sys.executable, "bootstrap.py"], cwd=site, env=site_env(),
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    with closing(sqlite3.connect(site / "data" / "db.sqlite3")) as db, db:
        db.executemany("INSERT INTO auth_group (name) VALUES (?)", [(f"g{n}",) for n in range(GROUPS)])
    return site


@pytest.fixture
def site(prepared_site, tmp_path) -> Path:
    copy = tmp_path / "site (old)"
    shutil.copytree(prepared_site, copy, symlinks=True)
    return copy


def database_rows(site: Path, path: Path | None = None) -> dict[str, int]:
    with closing(sqlite3.connect(path or site / "data" / "db.sqlite3")) as db:
        tables = [name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        return {table: db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}


def add_release(site: Path, migration_fails: bool = False) -> None:
    """Put a new release's files in place, as git pull or a copy would."""
    package = site / SLUG
    (package / "release.py").write_text(RELEASE_VIEW)
    urls = package / "urls.py"
    urls.write_text(urls.read_text().replace(
        "urlpatterns = [", "from .release import release  # noqa: E402\n\nurlpatterns = [\n"
        "    path(\"release\", release),", 1))
    migrations = package / "migrations"
    migrations.mkdir()
    (migrations / "__init__.py").write_text("")
    (migrations / "0001_probe.py").write_text(CREATE_TABLE)
    if migration_fails:
        (migrations / "0002_fails.py").write_text(FAILING.format(slug=SLUG))


class Server:
    """The site's own tornado_server.py, serving the copy."""

    def __init__(self, site: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(venv_python(site)), "tornado_server.py", "--port", str(self.port),
             "--workers", str(workers)], cwd=site, env=site_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers = workers
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                # Every worker has loaded the code: the first answers /healthz before the
                # others are up, and one that starts later would load a release put in place.
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200 and self.all_ready(site):
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, "the server stopped"
            time.sleep(0.2)
        self.stop()
        pytest.fail("the server did not start in 60 s")

    def all_ready(self, site: Path) -> bool:
        if self.workers < 2:
            return True
        answer = subprocess.run([str(venv_python(site)), "tornado_server.py", "status", "--json", "--port",
                                 str(self.port)], cwd=site, env=site_env(), capture_output=True, text=True,
                                timeout=60)
        try:
            workers = json.loads(answer.stdout).get("workers") or []
        except ValueError:
            return False
        return len(workers) == self.workers and all(worker.get("ready") for worker in workers)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(30)


@pytest.fixture
def server(site):
    running = Server(site)
    yield running
    running.stop()


def test_a_release_is_backed_up_migrated_and_reloaded(site, server):
    add_release(site)
    assert server.get("/release").status_code == 404  # the old code serves
    completed = upgrade(site)
    assert completed.returncode == 0, completed.stderr
    assert "Upgrade done: every running server reloaded the new code" in completed.stdout
    assert server.get("/release").text == "RELEASE-2"
    backups = list((site / "backups").glob(f"{SLUG}-*.sqlite3"))
    assert len(backups) == 1 and "Backup written to" in completed.stdout
    assert "release_probe" not in database_rows(site, backups[0])  # taken before migrating
    rows = database_rows(site)
    assert rows["release_probe"] == 0 and rows["auth_group"] == GROUPS


def test_a_failing_migration_is_undone_and_the_old_code_keeps_serving(site, server):
    before = database_rows(site)
    add_release(site, migration_fails=True)
    completed = upgrade(site)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "ERROR: manage.py migrate failed" in completed.stderr
    assert "UPGRADE FAILED, UNDONE: the running server still serves the old code" in completed.stderr
    assert f"Reversing the migrations of {SLUG}" in completed.stdout
    # 0001 was applied and is reversed: the database is as it was, table for table, row for row.
    assert database_rows(site) == before
    assert server.get("/release").status_code == 404
    assert server.get("/healthz").text == "ok"


def test_exit_codes_for_bad_input_and_for_nothing_to_switch(site):
    bad = upgrade(site, "--no-such-option")
    assert bad.returncode == 2 and "Nothing was changed" in bad.stderr
    assert "unrecognized arguments: --no-such-option" in bad.stderr
    (site / ".env").rename(site / "env.saved")
    no_env = upgrade(site)
    assert no_env.returncode == 2 and ".env is missing" in no_env.stderr
    (site / "env.saved").rename(site / ".env")
    idle = upgrade(site)  # prepared, but no server runs to take the new code
    assert idle.returncode == 3, idle.stdout + idle.stderr
    assert "NOT SWITCHED" in idle.stdout


def test_action_required_lines_of_newer_versions_are_shown(site):
    (site / ".venv" / "server-version").write_text("0.9.0\n")
    changelog = site / "tornado_wsgi_server" / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## 99.0.0\n\n- **Action required**: do the new thing.\n\n"
                         "## 0.9.0\n\n- **Action required**: an old thing.\n")
    (site / "tornado_wsgi_server" / "__init__.py").write_text('__version__ = "99.0.0"\n')
    first = upgrade(site)
    assert "ACTION REQUIRED (server 99.0.0: **Action required**: do the new thing.)" in first.stdout
    assert "an old thing" not in first.stdout
    assert "do the new thing" not in upgrade(site).stdout  # shown until an upgrade has run


def test_the_service_stopped_for_pip_gets_its_database_and_packages_back(site):
    wheels = site / "wheelhouse"
    make_wheel(wheels, "release_dependency", "1.0")
    make_wheel(wheels, "release_dependency", "2.0")
    assert run(site, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels),
               "release_dependency==1.0").returncode == 0
    (site / "tornado_server.py").write_text(STUB_SERVICE)
    requirements = site / "requirements.txt"
    requirements.write_text(requirements.read_text() + "release_dependency==2.0\n")
    before = database_rows(site)
    add_release(site, migration_fails=True)
    completed = upgrade(site)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    calls = (site / "calls.log").read_text().splitlines()
    assert calls[:2] == ["service status", "service --wait 120 stop"]
    assert calls[-1] == "service --wait 120 start"
    assert "Restoring the database from" in completed.stdout
    assert "the service runs again, on the database as it was before the upgrade" in completed.stderr
    assert database_rows(site) == before
    version = run(site, "-c", "import release_dependency; print(release_dependency.VERSION)")
    assert version.stdout.strip() == "1.0"


def test_the_service_is_stopped_for_pip_and_started_on_the_new_code(site):
    wheels = site / "wheelhouse"
    make_wheel(wheels, "release_dependency", "2.0")
    (site / "tornado_server.py").write_text(STUB_SERVICE)
    requirements = site / "requirements.txt"
    requirements.write_text(requirements.read_text() + "release_dependency==2.0\n")
    add_release(site)
    completed = upgrade(site)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert out.index("stopping it") < out.index("Installing requirements") < out.index("Applying")
    calls = (site / "calls.log").read_text().splitlines()
    assert calls[:2] == ["service status", "service --wait 120 stop"]
    assert calls[-1] == "service --wait 120 start" and "reload" not in " ".join(calls)
    assert "Upgrade done: the service runs the new code" in out
    assert "release_probe" in database_rows(site)


def test_a_service_that_cannot_reload_gets_a_drained_restart(site):
    (site / "tornado_server.py").write_text(STUB_SERVICE)
    completed = upgrade(site)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Installing requirements" not in completed.stdout
    calls = (site / "calls.log").read_text().splitlines()
    assert calls[-2:] == ["service --wait 120 stop", "service --wait 120 start"]
    assert "Upgrade done: the service was restarted on the new code" in completed.stdout


{%- if cookiecutter.database != "postgresql" %}


# Commits 50 rows to the root database in WAL mode and dies without a checkpoint, as a killed
# server would: those rows are in db.sqlite3-wal only.
KILLED_WRITER = """
import os, sqlite3
db = sqlite3.connect("db.sqlite3")
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA wal_autocheckpoint=0")
with db:
    db.executemany("INSERT INTO auth_group (name) VALUES (?)", [(f"root{n}",) for n in range(50)])
os._exit(0)
"""


def move_database_to_root(site: Path) -> dict[str, int]:
    """The layout of a project made before data/ held the database; returns its row counts."""
    rows = database_rows(site)
    rows["auth_group"] += 50
    for path in (site / "data").glob("db.sqlite3*"):
        path.rename(site / path.name)
    assert run(site, "-c", KILLED_WRITER).returncode == 0
    assert (site / "db.sqlite3-wal").stat().st_size > 0
    return rows


def test_a_database_at_the_root_is_used_with_a_warning_then_moved_with_every_row(site):
    rows = move_database_to_root(site)
    check = run(site, "manage.py", "check")
    assert check.returncode == 0, check.stderr
    assert check.stderr.count("WARNING: the database is still at") == 1
    assert "Run upgrade.bat (Linux: ./upgrade.sh) while the site is stopped" in check.stderr
    completed = upgrade(site)
    assert completed.returncode == 3, completed.stdout + completed.stderr  # nothing runs
    assert "Moving the database into data" in completed.stdout
    assert not (site / "db.sqlite3").exists() and not (site / "db.sqlite3-wal").exists()
    moved = database_rows(site)
    assert moved == rows and moved["auth_group"] == GROUPS + 50
    with closing(sqlite3.connect(site / "data" / "db.sqlite3")) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    kept = [path for path in (site / "backups").glob("db.sqlite3-moved-*")
            if not path.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and database_rows(site, kept[0]) == rows
    assert "WARNING" not in run(site, "manage.py", "check").stderr


def test_a_database_at_the_root_is_not_moved_while_a_server_uses_it(site):
    rows = move_database_to_root(site)
    server = Server(site)
    try:
        completed = upgrade(site)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert "It is moved into data\\ by an upgrade run while the site is stopped" in completed.stdout
        assert (site / "db.sqlite3").exists() and not (site / "data" / "db.sqlite3").exists()
        assert server.get("/healthz").text == "ok"
    finally:
        server.stop()
    assert database_rows(site, site / "db.sqlite3") == rows
{%- endif %}
