"""Finish the bake: drop what the chosen options do not use, write .env, record where the
project came from (.cruft.json, read by update.py), say what next."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path.cwd()
LICENSE = {{ cookiecutter.open_source_license | jsonify }}
DATABASE = {{ cookiecutter.database | jsonify }}
CACHE = {{ cookiecutter.cache | jsonify }}
SLUG = {{ cookiecutter.project_slug | jsonify }}
PORT = {{ cookiecutter.port | string | jsonify }}
# Every answer, and where cookiecutter found the template (_template, _repo_dir, _checkout).
CONTEXT = json.loads({{ cookiecutter | jsonify | jsonify }})
# An update (update.py, through cruft) bakes the old and the new template version to compare
# them: it runs this hook too, with the template's commit in "_commit".
UPDATING = "_commit" in CONTEXT
# The record update.py reads, in cruft's format; .env is the user's own, never compared.
RECORD = ".cruft.json"
NEVER_UPDATED = [".env"]
# A template given as a URL or an abbreviation that cookiecutter expands (gh:owner/name).
REMOTE = re.compile(r"^(?:(?:git|hg)\+)?(?:git|ssh|file|https?):|^\w+@[\w.]+:|^(?:gh|gl|bb):")
ABBREVIATIONS = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/", "bb:": "https://bitbucket.org/"}

# Files that only one option uses.
ONLY_FOR = {
    "tests/test_postgresql.py": DATABASE == "postgresql",
    "tests/test_redis.py": CACHE == "redis",
    "LICENSE": LICENSE != "Not open source",
}


def remove(relative):
    path = PROJECT / relative
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def git(folder, *args):
    """A git command's output in ``folder``; "" when git or the repository is missing."""
    try:
        completed = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                                   text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stdout.strip() if completed.returncode == 0 else ""


def local_template_folder(repo_dir):
    """The template folder cookiecutter read, as an absolute path (it may have been given
    relative to the folder cookiecutter ran in, which is not this hook's)."""
    path = Path(repo_dir)
    if path.is_absolute():
        return path
    for base in (os.environ.get("PWD"), CONTEXT.get("_output_dir")):
        if base and (Path(base) / path / "cookiecutter.json").is_file():
            return (Path(base) / path).resolve()
    return None


def template_origin():
    """(location, commit, directory): where update.py finds the template again, the exact
    commit this bake came from ("" if unknown), and the template's folder in its repository."""
    given = str(CONTEXT.get("_template", ""))
    folder = local_template_folder(CONTEXT.get("_repo_dir", "")) if CONTEXT.get("_repo_dir") else None
    commit = git(folder, "rev-parse", "HEAD") if folder else ""
    top = git(folder, "rev-parse", "--show-toplevel") if commit else ""
    directory = None
    if top and Path(top).resolve() != folder.resolve():
        directory = folder.resolve().relative_to(Path(top).resolve()).as_posix()
    if REMOTE.match(given):
        # A clone cookiecutter made in a cache folder: the URL is what can be cloned again.
        for short, prefix in ABBREVIATIONS.items():
            if given.startswith(short):
                given = prefix + given[len(short):]
        return re.sub(r"^(?:git|hg)\+", "", given), commit, directory
    if given.lower().endswith(".zip") or not commit:
        return (str(folder) if folder and folder.exists() and not given.lower().endswith(".zip")
                else given), "", None
    if git(folder, "status", "--porcelain", "--untracked-files=no"):
        print(f"NOTE: the template in {top} has uncommitted changes; {RECORD} records its last "
              "commit, which is not exactly what this project was made from.")
    return top, commit, directory


def record_origin():
    """Write .cruft.json: the template, its exact commit and the answers given."""
    location, commit, directory = template_origin()
    answers = {key: value for key, value in CONTEXT.items() if not key.startswith("_")}
    answers.update(_copy_without_render=CONTEXT.get("_copy_without_render", []),
                   _template=location, _commit=commit)
    record = {"template": location, "commit": commit, "checkout": CONTEXT.get("_checkout"),
              "context": {"cookiecutter": answers}, "directory": directory,
              "skip": NEVER_UPDATED}
    (PROJECT / RECORD).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n",
                                  encoding="utf-8")
    if not commit:
        print(f"NOTE: the template ({location}) is not a git checkout, so {RECORD} has no "
              "commit: before the first update, link the project to the template version it "
              "came from (docs/updating.md).")


def main():
    for relative, keep in ONLY_FOR.items():
        if not keep:
            remove(relative)
    (PROJECT / "start_server.sh").chmod(0o755)

    sys.path.insert(0, str(PROJECT))
    from tornado_wsgi_server.bootstrap import ensure_env_file

    ensure_env_file()
    sys.path.pop(0)
    if UPDATING:  # update.py compares two bakes in a temporary folder: nothing to say
        return
    record_origin()

    if os.name == "nt":  # the commands exactly as typed in cmd.exe, for any folder name
        start = f'  cd /d "{PROJECT}"\n  start_server.bat'
        superuser = ".venv\\Scripts\\python manage.py createsuperuser"
    else:
        start = f"  cd {shlex.quote(str(PROJECT))}\n  ./start_server.sh"
        superuser = ".venv/bin/python manage.py createsuperuser"
    print(
        f"""
Created {PROJECT}

Next steps:
{start}
Then open http://127.0.0.1:{PORT}/ - the first start installs everything into .venv.
Create an admin user (in the project folder, in a second console while the server runs):
  {superuser}
Settings live in .env (see .env.example); the README explains every option.
"""
    )

main()
