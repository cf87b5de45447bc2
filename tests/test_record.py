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
