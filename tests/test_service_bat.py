"""service.bat's control flow, run by Wine's cmd.exe (no Windows Python needed): usage,
the check for an elevated console before changing the service, and a missing .venv."""

from __future__ import annotations

import sys

import pytest

from test_start_server_bat import run_bat, wine  # noqa: F401 (the fixture)

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="runs cmd.exe through Wine on Linux"),
    pytest.mark.timeout(900),  # may be the first to start Wine (up to 600 s)
]


@pytest.fixture
def project(cookies):
    result = cookies.bake(extra_context={"project_name": "R&D Portal"})
    assert result.exit_code == 0, result.exception
    return result.project_path


def test_usage_without_a_command(wine, project, tmp_path):  # noqa: F811
    code, output = run_bat(wine, project / "service.bat", cwd=tmp_path)
    assert code == 2, output
    assert "Usage: service.bat [--name NAME] install" in output and "Administrator" in output, output


@pytest.mark.parametrize("command", ["install", "remove", "start", "stop"])
def test_changing_the_service_asks_for_an_elevated_console(wine, project, tmp_path, command):  # noqa: F811
    # Wine has no fltmc: as in a console that is not elevated, the check fails.
    code, output = run_bat(wine, project / "service.bat", command, cwd=tmp_path)
    assert code == 5, output
    assert f'"service.bat {command}" needs a console opened as Administrator' in output, output
    assert "does not exist yet" not in output and "Access is denied" not in output, output


def test_run_needs_no_elevation_but_the_venv(wine, project, tmp_path):  # noqa: F811
    code, output = run_bat(wine, project / "service.bat", "run", cwd=tmp_path)
    assert code == 1, output
    assert ".venv\" does not exist yet" in output and "Administrator" not in output, output


def test_status_of_a_named_service_needs_no_elevation(wine, project, tmp_path):  # noqa: F811
    code, output = run_bat(wine, project / "service.bat", "--name", "site_test", "status", cwd=tmp_path)
    assert code == 1 and ".venv\" does not exist yet" in output and "Administrator" not in output, output
    code, output = run_bat(wine, project / "service.bat", "--name", "site_test", "start", cwd=tmp_path)
    assert code == 5 and "needs a console opened as Administrator" in output, output
