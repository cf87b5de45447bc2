"""Every bake records where it came from (.cruft.json): the template's location, its exact
commit and the answers given, as update.py (through cruft) reads them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, clean_env

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def head(repository: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repository, capture_output=True,
                          text=True, timeout=60, check=True).stdout.strip()


def test_bake_from_a_folder_records_the_folder_commit_and_answers(cookies):
    result = cookies.bake(extra_context={"project_name": "Intranet Portal", "database": "postgresql"})
    assert result.exit_code == 0, result.exception
    record = json.loads((result.project_path / ".cruft.json").read_text(encoding="utf-8"))
    assert record["template"] == str(ROOT)
    assert record["commit"] == head(ROOT)
    answers = record["context"]["cookiecutter"]
    assert answers["project_name"] == "Intranet Portal" and answers["project_slug"] == "intranet_portal"
    assert answers["database"] == "postgresql" and answers["_commit"] == head(ROOT)
    assert not {"_output_dir", "_repo_dir", "_checkout"} & set(answers)  # machine-local
    assert record["skip"] == [".env"]


def test_bake_from_a_git_url_records_the_url_not_the_local_clone(tmp_path):
    """cookiecutter clones a URL into its cache folder: the record names the URL."""
    clone = tmp_path / "published"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    url = clone.as_uri()
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(f"cookiecutters_dir: {json.dumps(str(tmp_path / 'cache'))}\n"
                      f"replay_dir: {json.dumps(str(tmp_path / 'replay'))}\n")
    baked = subprocess.run([sys.executable, "-m", "cookiecutter", "--no-input", "--config-file", str(config),
                            "-o", str(tmp_path / "out"), url], cwd=tmp_path, env=clean_env(),
                           capture_output=True, text=True, timeout=300)
    assert baked.returncode == 0, baked.stdout + baked.stderr
    record = json.loads((tmp_path / "out" / "my_site" / ".cruft.json").read_text(encoding="utf-8"))
    assert record["template"] == url
    assert record["commit"] == head(clone)


def test_bake_from_a_folder_without_git_records_no_commit_and_update_asks_for_a_link(tmp_path):
    """A template from a downloaded zip has no commit to record: the bake says so, and the
    update command says how to link the project instead of guessing."""
    template = tmp_path / "template"
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True,
                             timeout=120, check=True).stdout
    template.mkdir()
    subprocess.run(["tar", "-x", "-C", str(template)], input=archive, check=True, timeout=120)
    baked = subprocess.run([sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path / "out"),
                            str(template)], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                           timeout=300)
    assert baked.returncode == 0, baked.stdout + baked.stderr
    assert "has no commit" in baked.stdout and "docs/updating.md" in baked.stdout, baked.stdout
    project = tmp_path / "out" / "my_site"
    record = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    assert record["template"] == str(template) and record["commit"] == ""
    env = clean_env(GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.com", GIT_COMMITTER_NAME="A",
                    GIT_COMMITTER_EMAIL="a@example.com")
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "Baked"]):
        subprocess.run(command, cwd=project, env=env, check=True, timeout=120, capture_output=True)
    update = subprocess.run([sys.executable, "update.py"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=120)
    assert update.returncode == 1, update.stdout + update.stderr
    assert "ERROR:" in update.stderr and "--link COMMIT" in update.stderr, update.stderr


def test_update_refuses_a_folder_outside_git_or_with_uncommitted_changes(cookies):
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    project = result.project_path
    env = clean_env(GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.com", GIT_COMMITTER_NAME="A",
                    GIT_COMMITTER_EMAIL="a@example.com", GIT_CEILING_DIRECTORIES=str(project.parent))

    def update() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "update.py"], cwd=project, env=env, capture_output=True,
                              text=True, timeout=120)

    outside = update()
    assert outside.returncode == 1 and "is not a git repository" in outside.stderr, outside.stderr
    assert "git init" in outside.stderr
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "Baked"]):
        subprocess.run(command, cwd=project, env=env, check=True, timeout=120, capture_output=True)
    settings = project / "my_site" / "settings.py"
    settings.write_text(settings.read_text(encoding="utf-8") + "\nMINE = 1\n", encoding="utf-8")
    dirty = update()
    assert dirty.returncode == 1 and "not committed" in dirty.stderr, dirty.stderr
    assert "my_site/settings.py" in dirty.stderr
    assert settings.read_text(encoding="utf-8").endswith("\nMINE = 1\n")
    assert not (project / ".venv").exists()  # refused before installing anything
