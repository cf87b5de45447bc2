"""The documented update command takes a customised bake to the template's newest version.

Each test works on a local clone of this repository's committed HEAD (so "the template" can
change without touching the repository), bakes from it, customises the project as a new user
would (an app made by ``startapp`` and installed, a view, a settings line, a template, the
README), commits, changes the template in the clone (a server module, a settings line, a .bat
file, the server's version and CHANGELOG), commits that, and runs the command README.md shows
under ``<!-- update-command -->``.

The projects share one environment with the site's requirements and pytest, and one with
requirements-update.txt (made once, linked into each project's .venv), and run a small part of
their own suite (tests/test_site.py, and the server test of the version the update changes):
the whole baked suite takes many minutes here and is run by test_baked_suite.py.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import IS_WINDOWS, ROOT, clean_env, main_python, run, venv_python

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")]

SLUG = "my_site"
TEMPLATE_PROJECT = "{{cookiecutter.project_slug}}"
# This repository before projects recorded their origin (.cruft.json).
UNRECORDED_COMMIT = "f5c35e98f8028d8abd26fb87eb61f57ce3bc1aa9"
SUITE = ("tests/test_site.py",
         "tests/server/test_options.py::test_version_is_printed_shown_at_start_and_reported_by_status")
GIT_ENV = {"GIT_AUTHOR_NAME": "Ada Example", "GIT_AUTHOR_EMAIL": "ada@example.com",
           "GIT_COMMITTER_NAME": "Ada Example", "GIT_COMMITTER_EMAIL": "ada@example.com",
           "GIT_CONFIG_NOSYSTEM": "1"}


def env() -> dict:
    return clean_env(**GIT_ENV)


def ok(args: list, cwd: Path, timeout: float = 300) -> str:
    completed = run(args, cwd=cwd, env=env(), timeout=timeout)
    assert completed.returncode == 0, f"{args}: {completed.stdout}"
    return completed.stdout


def git(cwd: Path, *args: str) -> str:
    return ok(["git", *args], cwd, timeout=120)


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message)


def bake(template: Path, output: Path) -> Path:
    """A default bake with the cookiecutter the README tells users to run."""
    output.mkdir(parents=True, exist_ok=True)
    ok([sys.executable, "-m", "cookiecutter", "--no-input", "-o", output, template], cwd=output, timeout=300)
    return output / SLUG


@pytest.fixture(scope="module")
def environments(tmp_path_factory, default_venv_python) -> dict:
    """site-packages with the bake's test requirements (those of the default bake's venv,
    only read here), and the update tool's venv."""
    base = tmp_path_factory.mktemp("environments")
    project = bake(ROOT, base)
    tool = base / "update-tool"
    python = main_python()

    def dev() -> Path:
        return Path(ok([default_venv_python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                       project).strip())

    def update_tool() -> Path:
        ok([python, "-m", "venv", tool], base)
        ok([venv_python(tool), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
            project / "requirements-update.txt"], base, timeout=900)
        digest = hashlib.sha256((project / "requirements-update.txt").read_bytes()).hexdigest()
        (tool / "requirements.sha256").write_text(digest + "\n")
        return tool

    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(2) as pool:
        patch.setenv("PIP_NO_COMPILE", "1")  # Python compiles what the tests import
        site_packages, tool_dir = pool.submit(dev), pool.submit(update_tool)
        return {"site-packages": site_packages.result(timeout=1200),
                "tool": tool_dir.result(timeout=1200), "python": python}


def give_venv(project: Path, environments: dict) -> None:
    """.venv as start_server makes it, with the shared packages; .venv/update-tool as update.py
    makes it (a link to the shared one; where links are not allowed it installs its own)."""
    venv = project / ".venv"
    ok([environments["python"], "-m", "venv", "--without-pip", venv], project)
    site = Path(ok([venv_python(venv), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   project).strip())
    (site / "shared.pth").write_text(str(environments["site-packages"]) + "\n")
    try:
        (venv / "update-tool").symlink_to(environments["tool"], target_is_directory=True)
    except OSError:
        pass


@pytest.fixture
def template(tmp_path) -> Path:
    """A clone of this repository's committed HEAD: the template users bake from."""
    clone = tmp_path / "template"
    git(tmp_path, "clone", "-q", "--no-hardlinks", str(ROOT), str(clone))
    return clone


def update_command(project: Path) -> str:
    """The first line of the fenced block after <!-- update-command --> in the README."""
    readme = (project / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- update-command -->", 1)[1].split("```", 2)[1]
    line = block.splitlines()[1]
    if IS_WINDOWS:
        return line.split("Windows:", 1)[1].strip()
    return line


def run_update(project: Path) -> subprocess.CompletedProcess:
    command = update_command(project)
    shell = ["cmd", "/c", command] if IS_WINDOWS else ["bash", "-c", command]
    return run(shell, cwd=project, env=env(), timeout=900)


# --- what a user does ------------------------------------------------------------------------

USER_LANGUAGE = 'LANGUAGE_CODE = "en-gb"'
USER_README = "## Our blog\n\nThe blog app lives in `blog/`: short notes for the team.\n"
USER_TEMPLATE = "<p>Read our <a href=\"/blog/\">blog</a>.</p>"


def customise(project: Path, readme: bool = True) -> None:
    """startapp blog, installed; a view; a settings line; a template; the README."""
    ok([venv_python(project / ".venv"), "manage.py", "startapp", "blog"], project)
    settings = project / SLUG / "settings.py"
    text = settings.read_text(encoding="utf-8")
    text = text.replace(f'    "{SLUG}",\n]', f'    "{SLUG}",\n    "blog",\n]', 1)
    text = text.replace('LANGUAGE_CODE = "en-us"', USER_LANGUAGE, 1)
    settings.write_text(text, encoding="utf-8")
    (project / "blog" / "views.py").write_text(
        "from django.http import HttpResponse\n\n\ndef notes(request):\n"
        "    return HttpResponse(\"The blog's notes\")\n", encoding="utf-8")
    urls = project / SLUG / "urls.py"
    text = urls.read_text(encoding="utf-8")
    text = text.replace("from . import views\n", "from blog import views as blog_views\n\nfrom . import views\n")
    text = text.replace("urlpatterns = [\n", 'urlpatterns = [\n    path("blog/", blog_views.notes, name="blog"),\n')
    urls.write_text(text, encoding="utf-8")
    home = project / SLUG / "templates" / "home.html"
    text = home.read_text(encoding="utf-8")
    at = text.rindex("{% endblock %}")
    home.write_text(text[:at] + USER_TEMPLATE + "\n" + text[at:], encoding="utf-8")
    if readme:
        path = project / "README.md"
        path.write_text(path.read_text(encoding="utf-8") + "\n" + USER_README, encoding="utf-8")


def assert_customisations_kept(project: Path, readme: bool = True) -> None:
    settings = (project / SLUG / "settings.py").read_text(encoding="utf-8")
    assert '    "blog",\n' in settings and USER_LANGUAGE in settings
    assert "def notes(request)" in (project / "blog" / "views.py").read_text(encoding="utf-8")
    assert (project / "blog" / "apps.py").is_file()
    assert 'path("blog/", blog_views.notes' in (project / SLUG / "urls.py").read_text(encoding="utf-8")
    assert USER_TEMPLATE in (project / SLUG / "templates" / "home.html").read_text(encoding="utf-8")
    assert not readme or USER_README in (project / "README.md").read_text(encoding="utf-8")


# --- what the template's next version changes ---------------------------------------------

SERVER_CHANGE = "\n# The template's newest version changed this module.\n"
BAT_CHANGE = b"rem The template's newest version changed this file.\r\n"
ACTION = "**Action required:** nothing really; this line is for the update test."


def change_template(template: Path, settings_old: str, settings_new: str) -> str:
    """A server module, a settings line, a .bat file, the server version and CHANGELOG;
    committed in the clone. Returns the new version."""
    project = template / TEMPLATE_PROJECT
    package = project / "tornado_wsgi_server"
    with open(package / "lan.py", "a", encoding="utf-8") as module:
        module.write(SERVER_CHANGE)
    init = package / "__init__.py"
    text = init.read_text(encoding="utf-8")
    old = re.search(r'__version__ = "(\d+)\.(\d+)\.(\d+)"', text)
    new = f"{old.group(1)}.{old.group(2)}.{int(old.group(3)) + 1}"
    init.write_text(text.replace(old.group(0), f'__version__ = "{new}"'), encoding="utf-8")
    changelog = package / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    at = text.index("\n## ")
    changelog.write_text(f"{text[:at]}\n## {new}\n\n- {ACTION}\n{text[at:]}", encoding="utf-8")
    settings = project / TEMPLATE_PROJECT / "settings.py"
    text = settings.read_text(encoding="utf-8")
    assert settings_old in text
    settings.write_text(text.replace(settings_old, settings_new, 1), encoding="utf-8")
    bat = project / "service.bat"
    data = bat.read_bytes()
    bat.write_bytes(data.replace(b"\r\n", b"\r\n" + BAT_CHANGE, 1))
    commit_all(template, "The next version")
    return new


def files(folder: Path) -> dict:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def run_suite(project: Path) -> str:
    completed = run([venv_python(project / ".venv"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                     *SUITE], cwd=project, env=env(), timeout=600)
    assert completed.returncode == 0, completed.stdout[-5000:]
    assert re.search(r"\b\d+ passed\b", completed.stdout) and " failed" not in completed.stdout
    return completed.stdout


def assert_updated(project: Path, template: Path, version: str, output: str) -> None:
    # The server package is the template's, file for file.
    assert files(project / "tornado_wsgi_server") == files(template / TEMPLATE_PROJECT / "tornado_wsgi_server")
    service = (project / "service.bat").read_bytes()
    assert BAT_CHANGE in service and b"\r" not in service.replace(b"\r\n", b"")
    assert ACTION in output and version in output
    head = git(template, "rev-parse", "HEAD").strip()
    assert f'"commit": "{head}"' in (project / ".cruft.json").read_text(encoding="utf-8")


def new_project(template: Path, tmp_path: Path, environments: dict,
                commit_the_bake: bool = True, readme: bool = True) -> tuple[Path, bytes]:
    """Baked, committed as it came (or not), customised, committed. Returns it and its .env."""
    project = bake(template, tmp_path / "sites")
    give_venv(project, environments)
    git(project, "init", "-q")
    if commit_the_bake:
        commit_all(project, "Baked")
    customise(project, readme)
    commit_all(project, "The blog")
    return project, (project / ".env").read_bytes()


def test_update_brings_the_template_and_keeps_the_users_changes(template, tmp_path, environments):
    project, dotenv = new_project(template, tmp_path, environments)
    assert '"commit": "' + git(template, "rev-parse", "HEAD").strip() in (project / ".cruft.json").read_text()
    run_suite(project)
    version = change_template(template, "USE_I18N = True\n", "USE_I18N = True  # translations\n")

    updated = run_update(project)
    assert updated.returncode == 0, updated.stdout
    assert_updated(project, template, version, updated.stdout)
    assert "USE_I18N = True  # translations" in (project / SLUG / "settings.py").read_text(encoding="utf-8")
    assert_customisations_kept(project)
    assert (project / ".env").read_bytes() == dotenv
    commit_all(project, "The template's newest version")
    run_suite(project)


def test_update_conflict_is_reported_and_loses_nothing(template, tmp_path, environments):
    """The bake and the user's changes in one commit: git has no copy of the file as baked,
    which update.py supplies for the three-way merge (else cruft leaves .rej files)."""
    project, dotenv = new_project(template, tmp_path, environments, commit_the_bake=False)
    mine = git(project, "rev-parse", "HEAD").strip()
    version = change_template(template, 'LANGUAGE_CODE = "en-us"', 'LANGUAGE_CODE = "fr-fr"')

    updated = run_update(project)
    assert updated.returncode != 0, updated.stdout
    assert "CONFLICT" in updated.stdout and f"{SLUG}/settings.py" in updated.stdout
    assert not list(project.rglob("*.rej")), updated.stdout
    settings = (project / SLUG / "settings.py").read_text(encoding="utf-8")
    assert re.search(r'<<<<<<< .*\n' + re.escape(USER_LANGUAGE) + r'\n=======\nLANGUAGE_CODE = "fr-fr"\n>>>>>>> ',
                     settings), settings
    assert_customisations_kept(project)
    # Everything else arrived, and the user's commit is as it was.
    assert_updated(project, template, version, updated.stdout)
    assert (project / ".env").read_bytes() == dotenv
    assert git(project, "rev-parse", "HEAD").strip() == mine
    assert USER_LANGUAGE in git(project, "show", f"HEAD:{SLUG}/settings.py")
    # A second run refuses to start over the unfinished one.
    again = run_update(project)
    assert again.returncode != 0 and "not committed" in again.stdout, again.stdout


def test_project_without_a_record_is_linked_then_updated(template, tmp_path, environments):
    if run(["git", "cat-file", "-e", f"{UNRECORDED_COMMIT}^{{commit}}"], cwd=template).returncode:
        pytest.skip(f"{UNRECORDED_COMMIT[:7]} is not in this clone (a shallow checkout)")
    old_template = tmp_path / "old-template"
    git(template, "worktree", "add", "-q", "--detach", str(old_template), UNRECORDED_COMMIT)
    # The README has been rewritten since that commit, so an edit of the user's there is a
    # conflict (as the conflict test shows); everything else a user changes first is kept.
    project, dotenv = new_project(old_template, tmp_path, environments, readme=False)
    assert not (project / ".cruft.json").exists() and not (project / "update.py").exists()

    # docs/updating.md: update.py from a throwaway bake of the newest template links the
    # project once to the commit it came from, then updates it.
    newest = bake(template, tmp_path / "newest")
    linked = run([environments["python"], newest / "update.py", "--project", ".", "--link",
                  UNRECORDED_COMMIT[:7], "--template", template], cwd=project, env=env(), timeout=900)
    assert linked.returncode == 0, linked.stdout
    assert "project_name = My Site" in linked.stdout and "database = sqlite" in linked.stdout
    commit_all(project, "Record the template version")
    updated = run([environments["python"], newest / "update.py", "--project", "."], cwd=project,
                  env=env(), timeout=900)
    assert updated.returncode == 0, updated.stdout
    assert (project / "update.py").is_file() and (project / ".cruft.json").is_file()
    commit_all(project, "The template's newest version")

    # From now on, the same documented command as a project baked with a record.
    version = change_template(template, "USE_I18N = True\n", "USE_I18N = True  # translations\n")
    updated = run_update(project)
    assert updated.returncode == 0, updated.stdout
    assert_updated(project, template, version, updated.stdout)
    assert_customisations_kept(project, readme=False)
    assert (project / ".env").read_bytes() == dotenv
    assert not (project / "tests" / "test_docs.py").exists()
    commit_all(project, "The template's next version")
    run_suite(project)
