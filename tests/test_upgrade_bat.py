"""upgrade.bat (and the other batch files' error paths) run by Wine's cmd.exe in a folder whose
path has a ")" in it, as "Site (old)" or "Program Files (x86)": a ")" ends a parenthesised
block that echoes the path, so the batch files must not echo it inside one. Wine cannot run a
Windows Python here: a stand-in (a .cmd file) takes the place of .venv's python.exe."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from test_start_server_bat import windows_path, wine  # noqa: F401 (the fixture)

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="runs cmd.exe through Wine on Linux"),
    pytest.mark.timeout(900),  # may be the first to start Wine (up to 600 s)
]

PYTHON_LINE = b'".venv\\Scripts\\python.exe" upgrade.py %*'
# Stands in for .venv's python.exe: reports how it was called, exits with FAKE_EXIT.
FAKE_PYTHON = "@echo off\r\necho FAKE-PYTHON ran %* in %CD%\r\nexit /b %FAKE_EXIT%\r\n"


@pytest.fixture
def project(cookies, tmp_path):
    """A baked project moved into a folder named "Site (old)"."""
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    target = tmp_path / "Site (old)"
    shutil.move(str(result.project_path), str(target))
    return target


def run_bat(wine_env: dict, bat, *args: str, cwd=None, **extra: str) -> tuple[int, str]:
    """Run by its name from its own folder: a path with "(" given to ``cmd /c`` loses its
    quotes (cmd.exe keeps them only around a path with no special character)."""
    completed = subprocess.run(["wine", "cmd", "/c", bat.name, *args], cwd=bat.parent,
                               env=dict(wine_env, **extra), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=300)
    output = (completed.stdout + completed.stderr).decode("utf-8", "replace").replace("\r\n", "\n")
    return completed.returncode, output


def with_fake_python(project, tmp_path):
    fake = tmp_path / "fake_python.cmd"
    fake.write_bytes(FAKE_PYTHON.encode())
    bat = project / "upgrade.bat"
    text = bat.read_bytes()
    assert text.count(PYTHON_LINE) == 1, "upgrade.bat no longer runs upgrade.py this way"
    # cmd /c: a program, as python.exe is (Wine's "call" of a batch file loses its exit code).
    bat.write_bytes(text.replace(PYTHON_LINE, f"cmd /c {windows_path(fake)} upgrade.py %*".encode()))
    (project / ".venv" / "Scripts").mkdir(parents=True)
    (project / ".venv" / "Scripts" / "python.exe").write_bytes(b"")
    return bat


def test_a_missing_venv_is_reported_with_the_path_quoted(wine, project, tmp_path):  # noqa: F811
    code, output = run_bat(wine, project / "upgrade.bat", cwd=tmp_path)
    assert f'ERROR: "{windows_path(project)}\\.venv" does not exist yet' in output, output
    assert "Can't recognize" not in output, output
    assert code == 2, output
    assert "Press any key" not in output, output  # CI is set: no pause


def test_the_exit_code_of_upgrade_py_is_passed_on(wine, project, tmp_path):  # noqa: F811
    bat = with_fake_python(project, tmp_path)
    for exit_code in (0, 1, 2, 3, 4):
        code, output = run_bat(wine, bat, "--prepare-only", cwd=tmp_path, FAKE_EXIT=str(exit_code))
        assert f"FAKE-PYTHON ran upgrade.py --prepare-only in {windows_path(project)}" in output, output
        assert "Can't recognize" not in output, output
        assert code == exit_code, output


def test_a_failure_keeps_a_double_clicked_window_open(wine, project, tmp_path):  # noqa: F811
    bat = with_fake_python(project, tmp_path)
    double_clicked = {name: value for name, value in wine.items() if name != "CI"}
    code, output = run_bat(double_clicked, bat, cwd=tmp_path, FAKE_EXIT="1")
    assert "Press any key" in output and code == 1, output
    code, output = run_bat(double_clicked, bat, cwd=tmp_path, FAKE_EXIT="0")
    assert "Press any key" not in output and code == 0, output


@pytest.mark.parametrize("script, args", [("service.bat", ("run",)), ("update.bat", ())])
def test_the_other_batch_files_quote_the_path_and_pause_on_errors(wine, project, tmp_path, script, args):  # noqa: F811
    double_clicked = {name: value for name, value in wine.items() if name != "CI"}
    code, output = run_bat(double_clicked, project / script, *args, cwd=tmp_path)
    assert f'ERROR: "{windows_path(project)}\\.venv" does not exist yet' in output, output
    assert "Can't recognize" not in output, output
    assert "Press any key" in output and code == 1, output
