"""docs/development.md's way to add an app leaves CI's lint step (``ruff check .``) clean."""

import shutil
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def test_a_new_app_passes_the_lint_step_after_the_documented_fix(tmp_path):
    shutil.copy(PROJECT_DIR / "pyproject.toml", tmp_path)
    run = dict(cwd=tmp_path, capture_output=True, text=True, timeout=120)
    made = subprocess.run([sys.executable, "-m", "django", "startapp", "blog"], **run)
    assert made.returncode == 0, made.stderr
    ruff = [sys.executable, "-m", "ruff", "check", "--no-cache", "."]
    assert subprocess.run(ruff, **run).returncode == 1  # startapp's unused imports: CI would fail
    fixed = subprocess.run([*ruff[:3], "check", "--no-cache", "--fix", "."], **run)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    clean = subprocess.run(ruff, **run)
    assert clean.returncode == 0, clean.stdout
