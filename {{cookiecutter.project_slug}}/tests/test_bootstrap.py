"""bootstrap.py, run on a copy of the project with an empty requirements.txt and a
manage.py that does nothing, so only its own steps are exercised."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from .conftest import IS_WINDOWS, PROJECT_DIR


@pytest.fixture
def project(tmp_path):
    shutil.copy(PROJECT_DIR / "bootstrap.py", tmp_path)
    shutil.copy(PROJECT_DIR / ".env.example", tmp_path)
    (tmp_path / "requirements.txt").write_text("# nothing to install\n", encoding="utf-8")
    (tmp_path / "manage.py").write_text("", encoding="utf-8")
    return tmp_path


def bootstrap(project) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bootstrap.py"], cwd=project, capture_output=True, text=True,
                          timeout=300)


def venv_python(project):
    return project / ".venv" / ("Scripts/python.exe" if IS_WINDOWS else "bin/python")


def test_missing_env_example_is_a_clear_error(project):
    (project / ".env.example").unlink()
    completed = bootstrap(project)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "ERROR: cannot create .env" in completed.stderr
    assert ".env.example" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (project / ".env").exists()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A copy whose .venv was made without pip (what Debian's python3 without python3-venv,
    or a creation cut short, leaves behind), after one bootstrap. Made once: a venv is slow."""
    project = tmp_path_factory.mktemp("bootstrapped")
    shutil.copy(PROJECT_DIR / "bootstrap.py", project)
    shutil.copy(PROJECT_DIR / ".env.example", project)
    (project / "requirements.txt").write_text("# nothing to install\n", encoding="utf-8")
    (project / "manage.py").write_text("", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", ".venv"], cwd=project, check=True,
                   timeout=120)
    return project, bootstrap(project)


@pytest.mark.slow
def test_venv_without_pip_is_made_again(first_run):
    project, completed = first_run
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "is incomplete (no working pip); creating it again" in completed.stdout
    assert "Installing requirements" in completed.stdout
    pip = subprocess.run([str(venv_python(project)), "-m", "pip", "--version"], capture_output=True,
                         timeout=120)
    assert pip.returncode == 0


@pytest.mark.slow
def test_requirements_are_installed_again_only_when_they_change(first_run):
    project, _ = first_run
    stamp = project / ".venv" / "requirements.sha256"
    installed = stamp.read_text()

    again = bootstrap(project)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "creating it again" not in again.stdout
    assert "Installing requirements" not in again.stdout
    assert stamp.read_text() == installed

    requirements = project / "requirements.txt"
    requirements.write_text(requirements.read_text(encoding="utf-8") + "# changed\n", encoding="utf-8")
    changed = bootstrap(project)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "Installing requirements (requirements.txt changed" in changed.stdout
    assert stamp.read_text() != installed

    settled = bootstrap(project)
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert "Installing requirements" not in settled.stdout
