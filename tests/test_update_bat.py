"""update.bat's control flow, run by Wine's cmd.exe: a missing .venv, and an update that
replaces update.bat while cmd.exe runs it (cmd.exe reads a batch file as it goes, so the line
that runs update.py must be the last thing it reads). Wine's cmd.exe does not keep real
cmd.exe's exit codes through && and || after a program, so the exit code of a failed update
is not checked here."""

from __future__ import annotations

import sys

import pytest

from test_start_server_bat import run_bat, windows_path, wine  # noqa: F401 (the fixture)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="runs cmd.exe through Wine on Linux")

PYTHON_LINE = b'".venv\\Scripts\\python.exe" update.py %* && exit /b 0 || exit /b 1'
# Stands in for .venv's python.exe (Wine cannot run a Windows Python): it replaces update.bat
# by a longer file, as an update of the template may, and succeeds.
FAKE_UPDATE = (
    "@echo off\r\n"
    "echo FAKE-UPDATE ran %*\r\n"
    "echo @echo off> update.bat\r\n"
    "for /l %%i in (1,1,40) do echo echo GARBAGE-LINE-%%i>> update.bat\r\n"
    "exit /b 0\r\n"
)


@pytest.fixture
def project(cookies):
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    return result.project_path


def test_update_bat_needs_the_venv_of_start_server_bat(wine, project, tmp_path):  # noqa: F811
    code, output = run_bat(wine, project / "update.bat", cwd=tmp_path)
    assert code == 1, output
    assert "ERROR:" in output and "Run start_server.bat once first" in output, output


def test_update_bat_replaced_while_it_runs_stops_after_the_update(wine, project, tmp_path):  # noqa: F811
    fake = tmp_path / "fake_update.cmd"
    fake.write_bytes(FAKE_UPDATE.encode())
    bat = project / "update.bat"
    text = bat.read_bytes()
    assert text.count(PYTHON_LINE) == 1, "update.bat no longer runs update.py this way"
    # cmd /c: a program, as python.exe is (not a batch file run by call).
    stand_in = f"cmd /c {windows_path(fake)} update.py %* && exit /b 0 || exit /b 1".encode()
    bat.write_bytes(text.replace(PYTHON_LINE, stand_in))
    (project / ".venv" / "Scripts").mkdir(parents=True)
    (project / ".venv" / "Scripts" / "python.exe").write_bytes(b"")
    code, output = run_bat(wine, bat, "--checkout", "main", cwd=tmp_path)
    assert "FAKE-UPDATE ran update.py --checkout main" in output, output
    assert "GARBAGE-LINE" in bat.read_text() and "GARBAGE-LINE" not in output, output
    assert code == 0, output
