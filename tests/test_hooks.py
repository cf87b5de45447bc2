"""Wrong answers are refused with one ERROR line, and nothing is left on disk."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cookiecutter.exceptions import FailedHookException

from helpers import ROOT, clean_env

INVALID = [
    # (answers, words the ERROR line must contain)
    ({"project_slug": "my-site"}, "not a valid Python package name"),
    ({"project_slug": "1site"}, "not a valid Python package name"),
    ({"project_slug": "My Site"}, "not a valid Python package name"),
    ({"project_slug": "django"}, "shadow"),
    ({"project_slug": "tornado"}, "shadow"),
    ({"project_slug": "test"}, "shadow"),
    ({"project_slug": "site"}, "shadow"),
    ({"project_slug": "whitenoise"}, "shadow"),
    ({"project_slug": "update"}, "shadow"),
    ({"project_slug": "asyncio"}, "shadow"),
    ({"project_slug": "class"}, "keyword"),
    ({"port": "0"}, "port must be a whole number from 1 to 65535"),
    ({"port": "65536"}, "port must be a whole number from 1 to 65535"),
    ({"port": "abc"}, "port must be a whole number from 1 to 65535"),
    ({"threads": "0"}, "threads must be a whole number"),
    ({"threads": "-1"}, "threads must be a whole number"),
    ({"threads": "x"}, "threads must be a whole number"),
    ({"email": "not-an-email"}, "does not look like an e-mail address"),
    ({"email": "a b@example.com"}, "does not look like an e-mail address"),
    ({"time_zone": "Mars/Olympus_Mons"}, "time zone"),
    ({"time_zone": "../etc/passwd"}, "time zone"),
    ({"project_name": ""}, "project_name must not be empty"),
    ({"project_name": "", "project_slug": "my_site"}, "project_name must not be empty"),
    ({"project_name": "!!!"}, "no letters or digits"),
    ({"project_name": "   "}, "project_name must not be empty"),
]


def case_id(case):
    answers, _ = case
    return ",".join(f"{k}={v!r}" for k, v in answers.items())


def leftovers(directory):
    return [p for p in directory.rglob("*")] if directory.exists() else []


@pytest.mark.parametrize("case", INVALID, ids=[case_id(c) for c in INVALID])
def test_invalid_answer_is_refused(cookies, tmp_path, capfd, case):
    answers, message = case
    result = cookies.bake(extra_context=answers)
    # cookiecutter runs the hook as a child process that shares our stdout/stderr.
    out, err = capfd.readouterr()
    assert result.exit_code == -1, (out, err)
    assert isinstance(result.exception, FailedHookException)
    assert result.project_path is None
    error_lines = [line for line in (out + err).splitlines() if line.startswith("ERROR: ")]
    assert len(error_lines) == 1, out + err
    assert message in error_lines[0], error_lines[0]
    baked = tmp_path / "cookies"
    assert not [p for p in leftovers(baked) if p.is_file()], leftovers(baked)


@pytest.mark.parametrize("answers", [["project_slug=my-site"], ["port=65536"], ["project_name="]])
def test_command_line_reports_error_and_leaves_nothing(tmp_path, answers):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'cc'}\nreplay_dir: {tmp_path / 'replay'}\n")
    completed = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(out_dir),
         str(ROOT), *answers],
        capture_output=True, text=True, env=clean_env(COOKIECUTTER_CONFIG=str(config)),
        cwd=tmp_path, timeout=120,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0, output
    assert "ERROR: " in output, output
    assert "Hook script failed" in output, output
    assert list(out_dir.iterdir()) == [], list(out_dir.rglob("*"))


@pytest.mark.parametrize("answers", [
    {"project_slug": "intranet"}, {"port": "1"}, {"port": "65535"}, {"threads": "256"},
    {"time_zone": "America/New_York"}, {"email": "first.last+tag@sub.example.org"},
])
def test_valid_edge_answers_are_accepted(cookies, answers):
    result = cookies.bake(extra_context=answers)
    assert result.exit_code == 0, result.exception
