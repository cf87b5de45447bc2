"""start_server.bat's control flow, run by Wine's cmd.exe.

Wine cannot run a Windows Python here, so these tests drive the paths that need none: no
Python found, a stand-in Python (a .cmd file) whose bootstrap or server step fails, and the
arguments the server step gets.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import clean_env, need

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="runs cmd.exe through Wine on Linux"),
    pytest.mark.timeout(900),  # above the first Wine start's 600 s
]

# Answers "-c ..." version probes with success; anything else is the bootstrap (or server)
# step, which reports where it ran and fails with code 3 unless FAKE_BOOTSTRAP_OK is set.
FAKE_PYTHON = "\r\n".join([
    "@echo off",
    'if "%~1"=="-c" exit /b 0',
    "echo FAKE-PYTHON ran %* in %CD%",
    "if defined FAKE_BOOTSTRAP_OK exit /b 0",
    "exit /b 3",
    "",
])


def windows_path(path: Path) -> str:
    """Wine maps the Unix root to drive Z:."""
    return "Z:" + str(path).replace("/", "\\")


@pytest.fixture(scope="session")
def wine(tmp_path_factory):
    """An initialised private Wine prefix (the first start takes a while)."""
    need(shutil.which("wine") is not None, "Wine not installed (apt-get install wine wine64)")
    prefix = tmp_path_factory.mktemp("wineprefix")
    env = clean_env(WINEPREFIX=str(prefix), WINEDEBUG="-all", CI="1",
                    # No Mono/Gecko installers: cmd.exe needs neither.
                    WINEDLLOVERRIDES="mscoree,mshtml=")
    env.pop("DISPLAY", None)
    ready = subprocess.run(["wine", "cmd", "/c", "echo", "wine-ready"], env=env, capture_output=True,
                           text=True, timeout=600, stdin=subprocess.DEVNULL)
    need("wine-ready" in ready.stdout, f"Wine's cmd.exe does not run: {ready.stdout}{ready.stderr}")
    return env


def run_bat(wine_env: dict, bat: Path, *args: str, cwd: Path, **extra: str) -> tuple[int, str]:
    env = dict(wine_env, **extra)
    # Called by its full path: Wine's cmd.exe mistakes a bare "start_server.bat" for START.
    completed = subprocess.run(["wine", "cmd", "/c", windows_path(bat), *args], cwd=cwd, env=env,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    output = (completed.stdout + completed.stderr).decode("utf-8", "replace").replace("\r\n", "\n")
    return completed.returncode, output


@pytest.fixture
def spaced_project(cookies, tmp_path):
    """A baked project moved under a folder whose name has spaces."""
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    target = tmp_path / "My Projects" / "site folder"
    target.parent.mkdir()
    shutil.move(str(result.project_path), str(target))
    return target


def test_missing_python_is_reported(wine, cookies, tmp_path):
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    project = result.project_path
    code, output = run_bat(wine, project / "start_server.bat", cwd=project)
    assert "ERROR: Python 3.10 or newer was not found" in output, output
    assert "python.org" in output
    assert code != 0, output
    assert not (project / ".venv").exists()
    assert "Press any key" not in output, output  # CI is set: no pause


def test_failure_keeps_a_double_clicked_window_open(wine, cookies, tmp_path):
    """Outside CI a failed start waits for a key (pause), so a double-clicked window does
    not vanish before its ERROR line can be read."""
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    project = result.project_path
    double_clicked = {name: value for name, value in wine.items() if name != "CI"}
    code, output = run_bat(double_clicked, project / "start_server.bat", cwd=project)
    assert "ERROR: Python 3.10 or newer was not found" in output, output
    assert "Press any key" in output, output
    assert code != 0, output


def test_failed_setup_stops_with_error(wine, spaced_project, tmp_path):
    fake = tmp_path / "fake python.cmd"
    fake.write_bytes(FAKE_PYTHON.encode())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, output = run_bat(wine, spaced_project / "start_server.bat", "8123", cwd=elsewhere,
                           BOOTSTRAP_PYTHON=windows_path(fake))
    assert code != 0, output
    assert "==> Using" in output and "fake python.cmd" in output, output
    # The bootstrap ran in the script's own folder, not the caller's.
    ran = [line for line in output.splitlines() if line.startswith("FAKE-PYTHON ran")]
    assert ran == [f"FAKE-PYTHON ran bootstrap.py in {windows_path(spaced_project)}"], output
    assert "ERROR: setup did not finish" in output, output
    assert "Starting the server" not in output


def test_failed_server_stops_with_error(wine, spaced_project, tmp_path):
    fake = tmp_path / "fake python.cmd"
    fake.write_bytes(FAKE_PYTHON.encode())
    code, output = run_bat(wine, spaced_project / "start_server.bat", "8123", "--workers", "2",
                           cwd=tmp_path, BOOTSTRAP_PYTHON=windows_path(fake), FAKE_BOOTSTRAP_OK="1")
    assert code != 0, output
    assert "FAKE-PYTHON ran bootstrap.py" in output, output
    assert "ERROR: setup did not finish" not in output, output
    # .venv does not exist, so starting the server fails and the script says so.
    assert "==> Starting the server" in output, output
    assert "ERROR: the server stopped with an error" in output, output


def test_quoted_bootstrap_python_under_program_files_x86(wine, spaced_project, tmp_path):
    # Copied from Explorer's "Copy as path": quoted, and the ")" of "(x86)" must not end a
    # parenthesised block in the script.
    folder = tmp_path / "Program Files (x86)" / "Python (3.12)"
    folder.mkdir(parents=True)
    fake = folder / "python.cmd"
    fake.write_bytes(FAKE_PYTHON.encode())
    code, output = run_bat(wine, spaced_project / "start_server.bat", cwd=tmp_path,
                           BOOTSTRAP_PYTHON=f'"{windows_path(fake)}"')
    assert code != 0, output
    assert f'==> Using "{windows_path(fake)}"' in output, output
    ran = [line for line in output.splitlines() if line.startswith("FAKE-PYTHON ran")]
    assert ran == [f"FAKE-PYTHON ran bootstrap.py in {windows_path(spaced_project)}"], output
    assert "ERROR: setup did not finish" in output, output


def test_missing_bootstrap_python_is_named(wine, spaced_project, tmp_path):
    missing = windows_path(tmp_path / "no such python.exe")
    code, output = run_bat(wine, spaced_project / "start_server.bat", cwd=tmp_path,
                           BOOTSTRAP_PYTHON=missing)
    assert code != 0, output
    assert f'ERROR: Python 3.10 or newer was not found at "{missing}"' in output, output
    assert "Starting the server" not in output


def test_service_bat_needs_the_venv_of_start_server_bat(wine, spaced_project, tmp_path):
    code, output = run_bat(wine, spaced_project / "service.bat", "status", cwd=tmp_path)
    assert code == 1, output
    assert "ERROR:" in output and "Run start_server.bat once first" in output, output
    assert not (spaced_project / ".venv").exists()


@pytest.mark.parametrize("args,expected", [
    (("8123", "--workers", "2"), "tornado_server.py --port 8123 --workers 2"),
    (("--workers", "2", "--threads", "3"), "tornado_server.py --workers 2 --threads 3"),
])
def test_port_and_options_reach_the_server(wine, spaced_project, tmp_path, args, expected):
    """A first argument that is not an option is the port; the rest goes to tornado_server.py.
    Wine cannot run the project's Windows Python, so the server line calls the stand-in
    instead of .venv's python.exe; everything else in the script runs as shipped."""
    fake = tmp_path / "fake python.cmd"
    fake.write_bytes(FAKE_PYTHON.encode())
    bat = spaced_project / "start_server.bat"
    server_line = b'".venv\\Scripts\\python.exe" tornado_server.py %ARGS%'
    text = bat.read_bytes()
    assert text.count(server_line) == 1, "start_server.bat no longer starts the server this way"
    bat.write_bytes(text.replace(server_line, b'call "%BOOTSTRAP_PYTHON%" tornado_server.py %ARGS%'))
    code, output = run_bat(wine, bat, *args, cwd=tmp_path, BOOTSTRAP_PYTHON=windows_path(fake),
                           FAKE_BOOTSTRAP_OK="1")
    assert code == 0, output
    ran = [line for line in output.splitlines() if line.startswith("FAKE-PYTHON ran")]
    assert ran == [f"FAKE-PYTHON ran bootstrap.py in {windows_path(spaced_project)}",
                   f"FAKE-PYTHON ran {expected} in {windows_path(spaced_project)}"], output


def test_folder_with_an_ampersand_is_named_in_the_error(wine, cookies, tmp_path):
    """A message naming the folder must not turn "R&D" into a command "D"."""
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    project = tmp_path / "R&D" / "site"
    project.parent.mkdir()
    shutil.move(str(result.project_path), str(project))
    (project / "bootstrap.py").unlink()
    # Started from its own folder: an "&" on cmd /c's command line would split it there.
    completed = subprocess.run(["wine", "cmd", "/c", ".\\start_server.bat"], cwd=project, env=wine,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    code = completed.returncode
    output = (completed.stdout + completed.stderr).decode("utf-8", "replace").replace("\r\n", "\n")
    assert code != 0, output
    assert f'ERROR: cannot run in the folder of this script: "{windows_path(project)}\\"' in output, output
    assert "is not recognized" not in output and "not found" not in output.lower().replace(
        "bootstrap.py is missing", ""), output


# The py launcher: a stand-in that has only the Pythons listed in FAKE_PY_HAS, and records
# which ones it was asked for.
FAKE_PY = "\r\n".join([
    "@echo off",
    'if "%~2"=="-c" echo asked for %1>>"%FAKE_PY_LOG%"',
    'set "HAS=;%FAKE_PY_HAS%;"',
    'call set "REST=%%HAS:;%~1;=%%"',
    'if "%~2"=="-c" if not "%REST%"=="%HAS%" exit /b 0',
    'if "%~2"=="-c" exit /b 1',
    "echo FAKE-PY ran %*",
    "exit /b 3",
    "",
])


@pytest.mark.parametrize("has,chosen", [
    ("-3.12;-3.15;-3", "py -3.12"),  # not the newest: the newest tested one
    ("-3.13;-3.14;-3.15;-3", "py -3.14"),
    ("-3.10;-3", "py -3.10"),
    ("-3", "py -3"),  # only an untested version: still used
])
def test_py_launcher_prefers_tested_versions(wine, spaced_project, tmp_path, has, chosen):
    launcher = tmp_path / "launcher"
    launcher.mkdir()
    (launcher / "py.cmd").write_bytes(FAKE_PY.encode())
    log = tmp_path / "asked.txt"
    code, output = run_bat(wine, spaced_project / "start_server.bat", cwd=tmp_path,
                           WINEPATH=windows_path(launcher), FAKE_PY_HAS=has, FAKE_PY_LOG=windows_path(log))
    assert f"==> Using {chosen}\n" in output, output
    assert f"FAKE-PY ran {chosen.split()[1]} bootstrap.py" in output, output
    asked = log.read_text().split()
    order = ["-3.14", "-3.13", "-3.12", "-3.11", "-3.10", "-3"]
    assert [a for a in asked if a != "asked" and a != "for"] == order[:order.index(chosen.split()[1]) + 1], asked
