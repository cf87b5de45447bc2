"""upgrade.py (upgrade.bat / upgrade.sh) on a copy of the project whose tornado_server.py
and manage.py are stand-ins that record how they were called: what it prepares, and how it
switches (reload, else a drained restart of the service, else a note)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from .conftest import PROJECT_DIR, copy_bootstrap

# Stands in for tornado_server.py: "service status" answers like a service in the state
# STUB_SERVICE (or fails as on Linux), "reload" exits with STUB_RELOAD_EXIT.
STUB_SERVER = '''
import os, sys
with open("calls.log", "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[:2] == ["service", "status"]:
    state = os.environ.get("STUB_SERVICE")
    if not state:
        sys.exit("ERROR: Windows services exist only on Windows")
    print(f"site: {state}")
elif args[:1] == ["service"]:
    print("STUB service " + args[-1], flush=True)
elif args == ["reload"]:
    code = int(os.environ.get("STUB_RELOAD_EXIT", "0"))
    print("all workers reloaded" if code == 0 else "ERROR: no server is running here")
    sys.exit(code)
'''
STUB_MANAGE = '''
import os, sys
with open("calls.log", "a") as log:
    log.write("manage " + " ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "migrate" and os.environ.get("STUB_MIGRATE_FAILS"):
    sys.exit("migration failed")
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A prepared copy: .venv, .env and the (empty) requirements installed once."""
    project = tmp_path_factory.mktemp("upgrade")
    copy_bootstrap(project)
    for name in ("upgrade.py", ".env.example"):
        shutil.copy(PROJECT_DIR / name, project)
    (project / "requirements.txt").write_text("# nothing to install\n", encoding="utf-8")
    (project / "manage.py").write_text(STUB_MANAGE, encoding="utf-8")
    (project / "tornado_server.py").write_text(STUB_SERVER, encoding="utf-8")
    first = subprocess.run([sys.executable, "bootstrap.py"], cwd=project, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    return project


def upgrade(site, *args, **env) -> tuple[subprocess.CompletedProcess, list[str]]:
    (site / "calls.log").unlink(missing_ok=True)
    completed = subprocess.run([sys.executable, "upgrade.py", *args], cwd=site, capture_output=True,
                               text=True, timeout=300, env={**_base_env(), **env})
    log = site / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    return completed, calls


def _base_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("STUB_")}


def change_requirements(site) -> None:
    requirements = site / "requirements.txt"
    requirements.write_text(requirements.read_text() + "# changed\n")


@pytest.mark.slow
def test_unchanged_requirements_are_not_installed_and_the_server_is_reloaded(site):
    completed, calls = upgrade(site)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Installing requirements" not in completed.stdout
    assert calls == ["service status", "manage migrate --noinput",
                     "manage collectstatic --noinput --verbosity 0", "reload"]
    assert "all workers reloaded" in completed.stdout
    assert "Upgrade done (reloaded)" in completed.stdout


@pytest.mark.slow
def test_changed_requirements_are_installed_once(site):
    change_requirements(site)
    completed, calls = upgrade(site)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Installing requirements (requirements.txt changed" in completed.stdout
    assert "manage migrate --noinput" in calls
    again, _ = upgrade(site)
    assert "Installing requirements" not in again.stdout


@pytest.mark.slow
def test_changed_requirements_stop_the_running_service_before_pip(site):
    change_requirements(site)
    completed, calls = upgrade(site, STUB_SERVICE="running")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "requirements.txt changed while the service runs: stopping it" in out
    assert out.index("STUB service stop") < out.index("Installing requirements") \
        < out.index("STUB service start")
    assert calls == ["service status", "service --wait 120 stop", "manage migrate --noinput",
                     "manage collectstatic --noinput --verbosity 0", "service --wait 120 start"]
    assert "the service runs the new code" in out


@pytest.mark.slow
def test_without_a_reload_the_service_gets_a_drained_restart(site):
    completed, calls = upgrade(site, STUB_SERVICE="running", STUB_RELOAD_EXIT="1")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert calls[-3:] == ["reload", "service --wait 120 stop", "service --wait 120 start"]
    assert "Upgrade done (restarted)" in completed.stdout


@pytest.mark.slow
def test_without_a_reload_or_a_service_the_user_is_told_to_restart(site):
    completed, calls = upgrade(site, STUB_RELOAD_EXIT="1")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert calls[-1] == "reload"
    assert "ERROR: no server is running here" in completed.stdout
    assert "NOTE: no running server was reloaded" in completed.stdout
    assert "service" not in " ".join(calls[1:])


@pytest.mark.slow
def test_a_failed_migration_stops_the_upgrade_and_restarts_a_stopped_service(site):
    change_requirements(site)
    completed, calls = upgrade(site, STUB_SERVICE="running", STUB_MIGRATE_FAILS="1")
    assert completed.returncode == 1
    assert "ERROR: manage.py migrate failed" in completed.stderr
    assert "reload" not in calls
    assert calls[-1] == "service --wait 120 start"


@pytest.mark.slow
def test_prepare_only_does_not_switch(site):
    completed, calls = upgrade(site, "--prepare-only")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "reload" not in calls and "manage migrate --noinput" in calls
