"""update.py: update the project to the newest version of its template (update.bat / update.sh).

    update.py                          the newest commit of the template in .cruft.json
    update.py --template LOCATION      that template instead (a folder or a git URL)
    update.py --checkout REF           a branch, tag or commit of the template
    update.py --link COMMIT            a project made before .cruft.json existed: record the
                                       template version it came from (docs/updating.md)
    update.py --project DIR            the project in DIR, not the one beside update.py

cruft (installed into .venv/update-tool from requirements-update.txt) bakes the template at the
recorded commit and at the new one, with this project's answers, and applies the difference
to the project by a three-way merge: the template's changes arrive, the user's stay. Lines
both sides changed get conflict markers and the command exits 1, listing them. It refuses a
folder that is not a git repository or has uncommitted changes, so nothing is ever lost:
``git diff HEAD`` shows what the update did. Then ``upgrade`` puts the new code to work.
Standard library only: it runs with any Python 3.10+, also from a new bake for an old project.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

# The bake update.py belongs to (requirements-update.txt beside it); --project may name another.
HERE = Path(__file__).resolve().parent.parent
SCRIPT = HERE / "update.py"
RECORD = ".cruft.json"
NEVER_UPDATED = [".env"]
VERSION_FILE = Path("tornado_wsgi_server", "__init__.py")
CHANGELOG = Path("tornado_wsgi_server", "CHANGELOG.md")
TOOL_REQUIREMENTS = "requirements-update.txt"
INSIDE_TOOL = "--inside-update-tool"  # update.py run again by the tool environment's Python


class Failed(Exception):
    pass


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def git(project: Path, *args: str, check: bool = True) -> str:
    try:
        completed = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True,
                                   encoding="utf-8", errors="replace")
    except OSError:
        raise Failed("git is not installed (or not on PATH): install it from https://git-scm.com/ "
                     "and run update again.") from None
    if check and completed.returncode != 0:
        raise Failed(f"git {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout if completed.returncode == 0 else ""


def check_clean(project: Path) -> None:
    """The update changes files in place: only a committed project can be brought back."""
    if not git(project, "rev-parse", "--is-inside-work-tree", check=False).strip():
        raise Failed(f"{project} is not a git repository, so an update could not be undone. "
                     "Put it under git first: git init, git add -A, git commit -m \"My site\" "
                     "(.gitignore keeps .env, .venv and the database out), then run update again.")
    changes = git(project, "status", "--porcelain", "--untracked-files=all", ".").splitlines()
    if changes:
        shown = "\n  ".join(changes[:10]) + ("\n  ..." if len(changes) > 10 else "")
        raise Failed(f"the project has changes that are not committed:\n  {shown}\n"
                     "Commit them (git add -A, git commit) or set them aside (git stash -u), "
                     "then run update again: the update must not mix with unsaved work.")


def read_record(project: Path) -> dict:
    path = project / RECORD
    if not path.is_file():
        raise Failed(f"{path} is missing: this project does not record which template version "
                     "it came from. Link it once (docs/updating.md): update --link COMMIT "
                     "--template LOCATION.")
    record = json.loads(path.read_text(encoding="utf-8"))
    if not record.get("commit"):
        raise Failed(f"{RECORD} has no template commit (the project was baked from a template "
                     "that was not a git checkout). Link it once (docs/updating.md): delete "
                     f"{RECORD}, commit, and run update --link COMMIT --template LOCATION.")
    return record


def server_version(project: Path) -> str | None:
    try:
        text = (project / VERSION_FILE).read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", text, re.M)
    return found.group(1) if found else None


def version_key(version: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in re.split(r"[.+-]", version))


def changelog_between(project: Path, old: str | None, new: str | None) -> list[str]:
    """The CHANGELOG sections of the versions after ``old`` up to ``new``."""
    if not new or old == new:
        return []
    try:
        text = (project / CHANGELOG).read_text(encoding="utf-8")
    except OSError:
        return []
    lines, keep = [], False
    for line in text.splitlines():
        heading = re.match(r"^## (\S+)", line)
        if heading:
            version = version_key(heading.group(1))
            keep = version <= version_key(new) and (old is None or version > version_key(old))
        if keep and line.strip():
            lines.append(line)
    return lines


def tool_python(project: Path) -> Path:
    """The Python of .venv/update-tool, with requirements-update.txt installed."""
    tool = project / ".venv" / "update-tool"
    python = tool / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    requirements = HERE / TOOL_REQUIREMENTS
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = tool / "requirements.sha256"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    step(f"Installing the update tool (cruft) into {tool}")
    for command in ([sys.executable, "-m", "venv", "--clear", str(tool)],
                    [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                     "-r", str(requirements)]):
        if subprocess.run(command, cwd=project).returncode != 0:
            raise Failed(f"{' '.join(command[:4])} ... failed (see above). Behind a proxy: set "
                         "PIP_INDEX_URL or HTTPS_PROXY (README: \"Corporate networks\").")
    stamp.write_text(wanted + "\n")
    return python


def run_tool(project: Path, *args: str) -> tuple[int, str]:
    """update.py's INSIDE_TOOL half, run by the tool's Python; its output is passed on, less
    cruft's closing praise, which it prints even when conflicts remain."""
    completed = subprocess.run([str(tool_python(project)), str(SCRIPT), INSIDE_TOOL,
                                str(project), *args], cwd=project, capture_output=True,
                               text=True, encoding="utf-8", errors="replace")
    output = "\n".join(line for line in (completed.stdout + completed.stderr).splitlines()
                       if "as clean as possible" not in line)
    if output.strip():
        print(output.rstrip())
    return completed.returncode, output


def conflicts(project: Path) -> list[str]:
    """Files with conflict markers (unmerged) and hunks cruft could not place (.rej)."""
    unmerged = git(project, "diff", "--name-only", "--diff-filter=U").splitlines()
    rejected = [name for name in git(project, "ls-files", "--others", "--exclude-standard").splitlines()
                if name.endswith(".rej")]
    return sorted(set(unmerged) | set(rejected))


def update(project: Path, template: str | None, checkout: str | None) -> int:
    check_clean(project)
    record = read_record(project)
    before = git(project, "rev-parse", "HEAD").strip()
    old_version = server_version(project)
    step(f"Updating from {template or record['template']} (this project: template commit "
         f"{record['commit'][:12]}, server {old_version or 'unknown'})")
    code, output = run_tool(project, "update", template or "", checkout or "")
    if code != 0:
        raise Failed("the update did not run (see above); the project is as it was. If the "
                     "template moved, name it: update --template GIT-URL-OR-FOLDER.")
    if "already up to date" in output:
        step("Already up to date")
        return 0
    new_version = server_version(project)
    changed = git(project, "diff", "--name-status", "HEAD").strip()
    untracked = git(project, "ls-files", "--others", "--exclude-standard").strip()
    print("Changed files (compared with commit " + before[:12] + "):")
    print("  " + "\n  ".join((changed + "\n" + untracked).strip().splitlines()))
    notes = changelog_between(project, old_version, new_version)
    if notes:
        print(f"\nServer {old_version} -> {new_version}, from tornado_wsgi_server/CHANGELOG.md:")
        print("  " + "\n  ".join(notes))
    left = conflicts(project)
    if left:
        print("\nCONFLICT: both the template and this project changed the same lines in:\n  "
              + "\n  ".join(left)
              + "\nYour version and the template's are both in each file, between <<<<<<< and >>>>>>> "
              "(a .rej file holds a change that found no place: apply it by hand, then delete it). "
              "Edit them, git add them, commit, then run upgrade. To drop the whole update "
              f"instead: git reset --hard {before[:12]}", file=sys.stderr)
        return 1
    upgrade = "upgrade.bat" if os.name == "nt" else "./upgrade.sh"
    step(f"Updated. Review (git diff HEAD), run the tests, commit, then run {upgrade}: it installs "
         "requirements, migrates, collects static files and reloads the server. "
         f"To drop the update instead: git reset --hard {before[:12]}")
    return 0


def guess_answers(project: Path) -> dict:
    """The answers a project was baked with, read back from what they wrote."""
    def read(name: str) -> str:
        try:
            return (project / name).read_text(encoding="utf-8")
        except OSError:
            return ""

    def find(pattern: str, text: str) -> str | None:
        found = re.search(pattern, text, re.M)
        return found.group(1).strip() if found else None

    answers = {}
    server = read("tornado_server.py")
    name = find(r"^\s*name=(\".*\"),\s*$", server)
    if name:
        answers["project_name"] = json.loads(name)
    answers["project_slug"] = find(r"DJANGO_SETTINGS_MODULE\", \"(\w+)\.settings\"", read("manage.py"))
    answers["port"] = find(r"^\s*port=(\d+),", server)
    answers["threads"] = find(r"^\s*threads=(\d+),", server)
    pyproject = read("pyproject.toml")
    answers["version"] = find(r"^version = \"(.*)\"", pyproject)
    description = find(r"^description = (\".*\")", pyproject)
    if description:
        answers["description"] = json.loads(description)
    env_example = read(".env.example")
    answers["time_zone"] = find(r"^DJANGO_TIME_ZONE=(.*)$", env_example)
    answers["email"] = find(r"^DJANGO_ADMINS=(.*)$", env_example)
    requirements = read("requirements.txt")
    answers["database"] = "postgresql" if "psycopg" in requirements else "sqlite"
    answers["cache"] = "redis" if re.search(r"^redis==", requirements, re.M) else "locmem"
    license_text = read("LICENSE")
    first = license_text.strip().splitlines()[0] if license_text.strip() else ""
    answers["open_source_license"] = next(
        (key for key, title in (("MIT", "MIT License"), ("BSD-3-Clause", "BSD 3-Clause"),
                                ("Apache-2.0", "Apache License")) if title in first), "Not open source")
    answers["author_name"] = find(r"^\s*Copyright (?:\(c\) )?(?:\[?[\d-]+\]?,? )?(.+)$", license_text)
    return {key: value for key, value in answers.items() if value}


def link(project: Path, commit: str, template: str | None) -> int:
    if not git(project, "rev-parse", "--is-inside-work-tree", check=False).strip():
        check_clean(project)  # says how to put the project under git
    if (project / RECORD).exists():
        raise Failed(f"{project / RECORD} exists already: the project is linked. Run update.")
    if not template:
        raise Failed("--link needs --template: the template's git URL or folder.")
    answers = guess_answers(project)
    step(f"Linking {project} to {template} at {commit}, with these answers read from the project:")
    for key, value in answers.items():
        print(f"  {key} = {value}")
    code, _ = run_tool(project, "link", template, commit, json.dumps(answers))
    if code != 0:
        raise Failed("linking failed (see above).")
    step(f"Wrote {RECORD}. Check the answers in it (\"context\"), correct any that differ from "
         f"the bake's, commit it (git add {RECORD}, git commit), then run update without --link.")
    return 0


def as_stored(project_dir: Path, *folders: Path) -> None:
    """Line endings in ``folders`` as the project's git stores them: LF in files its
    .gitattributes marks as text (with eol=crlf they are CRLF only in the working tree)."""
    files = {path.relative_to(folder).as_posix(): path for folder in folders
             for path in folder.rglob("*") if path.is_file()}
    names = sorted(set(files))
    checked = subprocess.run(["git", "check-attr", "--stdin", "-z", "text", "eol"], cwd=project_dir,
                             input="\0".join(names) + "\0", capture_output=True, text=True, check=True)
    fields = checked.stdout.split("\0")
    text = {fields[i] for i in range(0, len(fields) - 2, 3)
            if fields[i + 2] not in ("unspecified", "unset")}
    for folder in folders:
        for name in text:
            path = folder / name
            if path.is_file():
                data = path.read_bytes()
                if b"\r\n" in data:
                    path.write_bytes(data.replace(b"\r\n", b"\n"))


def inside_tool(argv: list[str]) -> int:
    """Run by .venv/update-tool's Python, where cruft is installed."""
    import importlib

    import cruft

    # The module, not the function of the same name that cruft._commands exports.
    cruft_update = importlib.import_module("cruft._commands.update")

    project, command, *rest = argv
    project_dir = Path(project)
    if command == "link":
        template, commit, answers = rest
        cruft.link(template, project_dir=project_dir, checkout=commit,
                   extra_context=json.loads(answers))
        path = project_dir / RECORD
        record = json.loads(path.read_text(encoding="utf-8"))
        record["skip"] = NEVER_UPDATED
        record["checkout"] = None
        path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return 0

    apply_updates = cruft_update._apply_project_updates

    def apply_with_base(old_dir: Path, new_dir: Path, *args, **kwargs):
        # Both bakes as git stores files: the .bat files' CRLF (.gitattributes) is LF in the
        # repository, and a patch with CRLF lines would conflict on every line of them.
        as_stored(project_dir, Path(old_dir), Path(new_dir))
        # git's three-way merge needs the old template's files (the merge base) in the
        # project's repository; without them cruft leaves .rej files for any hunk whose
        # context the user changed. Storing them changes no file, branch or index entry.
        paths = [str(path) for path in Path(old_dir).rglob("*") if path.is_file()]
        subprocess.run(["git", "hash-object", "-w", "--no-filters", "--stdin-paths"], cwd=project_dir,
                       input="\n".join(paths) + "\n", text=True, capture_output=True, check=True)
        return apply_updates(old_dir, new_dir, *args, **kwargs)

    cruft_update._apply_project_updates = apply_with_base
    template, checkout = rest
    ok = cruft.update(project_dir=project_dir, template_path=template or None,
                      checkout=checkout or None, skip_apply_ask=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [INSIDE_TOOL]:
        return inside_tool(argv[1:])
    parser = argparse.ArgumentParser(prog="update", description=__doc__.split("\n\n")[0].partition(": ")[2])
    parser.add_argument("--template", help="the template's folder or git URL (default: .cruft.json's)")
    parser.add_argument("--checkout", help="a branch, tag or commit of the template (default: its newest)")
    parser.add_argument("--link", metavar="COMMIT",
                        help="record the template commit an older project was made from")
    parser.add_argument("--project", default=str(HERE), help="the project folder (default: this one)")
    args = parser.parse_args(argv)
    project = Path(args.project).resolve()
    try:
        if not (project / "tornado_server.py").is_file():
            raise Failed(f"{project} is not a project made from this template (no tornado_server.py).")
        if args.link:
            return link(project, args.link, args.template)
        return update(project, args.template, args.checkout)
    except Failed as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("ERROR: interrupted.", file=sys.stderr)
        return 130
