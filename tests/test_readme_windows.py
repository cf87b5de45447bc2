"""The template README's Windows commands and the bake's "next steps" work for any project
name and any user folder (spaces, ``&``): quoted for cmd.exe, run through Wine's cmd.exe,
and the post-generation hook names the real folder."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from test_start_server_bat import windows_path, wine  # noqa: F401 (the fixture)

from helpers import ROOT, clean_env

README = (ROOT / "README.md").read_text(encoding="utf-8")


def block_after(marker: str) -> list[str]:
    match = re.search(rf"<!-- {marker} -->\s*```bat\n(.*?)```", README, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1).strip().splitlines()


def test_every_environment_variable_path_is_quoted():
    for line in block_after("windows-bake-command") + block_after("windows-start-command"):
        for found in re.finditer(r"%\w+%", line):
            # An odd number of quotes before it: inside "...", so spaces and & stay one argument.
            assert line[:found.start()].count('"') % 2 == 1, line


def test_no_default_folder_name_is_assumed():
    assert "my_site\\start_server.bat" not in README
    assert "gh:org/" not in README


@pytest.mark.skipif(sys.platform == "win32", reason="runs cmd.exe through Wine on Linux")
def test_start_command_works_for_a_user_folder_with_spaces_and_ampersand(wine, tmp_path):  # noqa: F811
    profile = tmp_path / "R&D user x"
    project = profile / "sites" / "smith_sons"
    project.mkdir(parents=True)
    (project / "start_server.bat").write_bytes(b'@echo off\r\necho STARTED in "%CD%"\r\n')
    lines = [f'set "USERPROFILE={windows_path(profile)}"', *block_after("windows-start-command")]
    # The README's example folder is a project named "Smith & Sons".
    assert lines[1] == 'cd /d "%USERPROFILE%\\sites\\smith_sons"', lines
    # Wine's cmd.exe takes a bare "start_server.bat" for START (cmd.exe does not): run it by path.
    lines[-1] = lines[-1].replace("start_server.bat", ".\\start_server.bat")
    runner = tmp_path / "runner.bat"
    runner.write_bytes(("@echo off\r\n" + "\r\n".join(lines) + "\r\n").encode())
    completed = subprocess.run(["wine", "cmd", "/c", windows_path(runner)], cwd=tmp_path, env=wine,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    output = (completed.stdout + completed.stderr).decode("utf-8", "replace")
    assert f'STARTED in "{windows_path(project)}"' in output, output


def test_next_steps_name_the_real_folder(tmp_path):
    out = tmp_path / "R&D sites x"
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(ROOT),
         "project_name=Smith & Sons"], capture_output=True, text=True, env=clean_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    project = out / "smith_sons"
    cd_line = next(line.strip() for line in result.stdout.splitlines() if line.strip().startswith("cd "))
    moved = subprocess.run(["sh", "-c", f"{cd_line} && pwd -P"], capture_output=True, text=True)
    assert moved.stdout.strip() == str(project.resolve()), (cd_line, moved.stderr)
