"""The GitHub workflows run the PostgreSQL and Redis tests against real services and do not
let tests skip unnoticed: the template's (.github/workflows/template.yml) and a baked
project's (.github/workflows/ci.yml)."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml  # PyYAML comes with cookiecutter

from helpers import ROOT, SUPPORTED_PYTHONS, clean_env, requirements_for_tests, run

# The matrix job that also runs the template's own tests.
MAIN_PYTHON_IN_CI = "3.13"
SERVICES = {
    "postgres": {"image": "postgres:", "port": "5432:5432", "health": "pg_isready"},
    "redis": {"image": "redis:", "port": "6379:6379", "health": "redis-cli ping"},
}


def load(path) -> dict:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert workflow.get("permissions") == {"contents": "read"}, workflow.get("permissions")
    return workflow


def check_services(job: dict, names: tuple) -> None:
    services = job.get("services") or {}
    assert sorted(services) == sorted(names), services
    for name in names:
        service, wanted = services[name], SERVICES[name]
        assert service["image"].startswith(wanted["image"]), service
        assert service["ports"] == [wanted["port"]], service
        assert wanted["health"] in service["options"], service
    if "postgres" in names:
        # The tests' default DATABASE_URL has no password: postgres://postgres@127.0.0.1:5432/.
        assert services["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"


def check_steps(job: dict) -> list:
    steps = job["steps"]
    for step in steps:
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, step
    return [step.get("run", "") for step in steps]


def test_template_workflow_runs_services_and_requires_them_on_linux():
    workflow = load(ROOT / ".github" / "workflows" / "template.yml")
    linux, windows = workflow["jobs"]["linux"], workflow["jobs"]["windows"]
    assert linux["runs-on"].startswith("ubuntu") and windows["runs-on"].startswith("windows")
    check_services(linux, ("postgres", "redis"))
    assert linux["env"]["REQUIRE_SERVICES"] == "1"
    runs = check_steps(linux)
    assert any("apt-get install" in run and all(p in run.split() for p in ("wine", "wrk", "nginx"))
               for run in runs), runs
    # Windows runners have no service containers: PostgreSQL, Redis, nginx and wrk tests may
    # skip there, and nothing else may turn skipping on.
    assert "REQUIRE_SERVICES" not in (windows.get("env") or {})
    check_steps(windows)
    for job, allow in ((linux, ""), (windows, " --allow tests/windows_skips.txt")):
        assert job["env"]["TEMPLATE_MAIN_PYTHON"] == "${{ matrix.python }}"
        matrix = job["strategy"]["matrix"]
        assert matrix["python"] == list(SUPPORTED_PYTHONS)
        # Each Python has a job of its own: no smoke runs on the others.
        assert job["env"]["TEMPLATE_MATRIX_PYTHONS"].split() == matrix["python"]
        # The template's own tests run in exactly one job.
        assert job["env"]["TEMPLATE_ONLY_TESTS"] == "${{ matrix.template_only_tests || '0' }}"
        assert [entry for entry in matrix["include"] if entry.get("template_only_tests") == "1"] == [
            {"python": MAIN_PYTHON_IN_CI, "template_only_tests": "1"}]
        runs = [step.get("run", "").strip() for step in job["steps"]]
        test_step = runs.index("python -m pytest --junitxml=template-report.xml")
        assert runs[test_step + 1] == f'python "{{{{cookiecutter.project_slug}}}}/ci/check_skips.py" ' \
                                      f"template-report.xml{allow}"


@pytest.mark.parametrize("database,cache", [("sqlite", "locmem"), ("postgresql", "locmem"),
                                            ("sqlite", "redis"), ("postgresql", "redis")])
def test_project_workflow_runs_services_and_fails_on_unexpected_skips(cookies, database, cache):
    result = cookies.bake(extra_context={"database": database, "cache": cache})
    assert result.exit_code == 0, result.exception
    workflow = load(result.project_path / ".github" / "workflows" / "ci.yml")
    linux, windows = workflow["jobs"]["linux"], workflow["jobs"]["windows"]
    wanted = tuple(name for name, used in (("postgres", database == "postgresql"),
                                           ("redis", cache == "redis")) if used)
    check_services(linux, wanted)
    assert linux["env"]["REQUIRE_SERVICES"] == "1"
    assert "REQUIRE_SERVICES" not in (windows.get("env") or {})
    assert any("apt-get install" in run and "nginx" in run for run in check_steps(linux))
    for job, allow in ((linux, ""), (windows, " --allow ci/windows-skips.txt")):
        runs = [run.strip() for run in check_steps(job)]
        test_step = runs.index("python -m pytest -ra --junitxml=pytest-report.xml")
        assert runs[test_step + 1] == f"python ci/check_skips.py pytest-report.xml{allow}"


# --- The steps themselves -----------------------------------------------------------------
# Every step of both workflows either installs something or calls one command; the Windows
# steps call one script of the repository or of the bake. These tests run the Linux (bash)
# steps here, check the shape of the Windows (pwsh) ones, and run the bake's ci/ scripts
# through the fake that stands in for Windows.

PROJECT_TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
CHECK_SKIPS = PROJECT_TEMPLATE / "ci" / "check_skips.py"
TEMPLATE_WORKFLOW = ROOT / ".github" / "workflows" / "template.yml"
# A step's own shell syntax is logic: a step may not chain, pipe or redirect.
SHELL_SYNTAX = re.compile(r"[;|&<>`$]|\n")


def expand(text: str, job: dict) -> str:
    """``${{ matrix.NAME || 'default' }}`` as the job's first matrix entry makes it; any other
    expression (a step's output) as empty."""
    matrix = job.get("strategy", {}).get("matrix", {})

    def value(match: re.Match) -> str:
        name, _, default = match.group(1).partition("||")
        name = name.strip()
        if name.startswith("matrix.") and isinstance(matrix.get(name[7:]), list):
            return str(matrix[name[7:]][0])
        return default.strip().strip("'")

    return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", value, text)


def is_install(run: str) -> bool:
    return "apt-get" in run or re.fullmatch(r"python -m pip install -r \S+", run.strip()) is not None


# How a bash step runs here, one rule per kind of step:
# - apt-get steps are not run: they need root and the network; every test that uses what they
#   install says when it is missing (need(), and REQUIRE_SERVICES=1 makes that a failure);
# - pip install -r runs as it is, in the virtual environment the test made (quick once satisfied),
#   except that requirements-kerberos.txt becomes the file that venv was made from
#   (requirements_for_tests()): without libkrb5-dev pip cannot build python-gssapi;
# - the test suite runs with one quick test named after its command: the whole suites run in
#   test_baked_suite.py, and this proves the command line and writes the report the next
#   step reads;
# - anything else runs as it is.
NARROWED = {"template": ["tests/test_variants.py::test_sqlite_locmem_project_has_no_postgresql_or_redis_tests"],
            "project": ["tests/test_database_settings.py"]}


def bash_steps(job: dict) -> list[dict]:
    return [step for step in job["steps"] if "run" in step and step.get("shell", "bash") == "bash"]


def run_step(step: dict, job: dict, cwd: Path, path_first: Path, narrow: list[str]) -> str:
    """Run one bash step as GitHub does (bash -e -o pipefail), with the job's and step's
    environment; returns what it printed; fails the test if it fails."""
    command = expand(step["run"], job).strip()
    if command == "python -m pip install -r requirements-kerberos.txt":
        command = f"python -m pip install -r {requirements_for_tests()}"
    if command.startswith("python -m pytest"):
        command = shlex.join([*shlex.split(command), *narrow])
    env = clean_env(**{name: expand(str(value), job) for name, value in
                       {**(job.get("env") or {}), **(step.get("env") or {})}.items()})
    env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
    done = subprocess.run(["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", command], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    assert done.returncode == 0, f"step {step.get('name', command)!r} failed:\n{done.stdout[-5000:]}"
    return done.stdout


def check_pwsh_step(step: dict, where: Path) -> None:
    """One line: ``python -m pip install -r FILE``, ``python -m pytest/ruff ...`` or
    ``python SCRIPT ARGS`` with SCRIPT (and any list it is given) in ``where``."""
    run = step["run"].strip()
    assert step.get("shell", "pwsh") == "pwsh", step
    assert not SHELL_SYNTAX.search(run), f"more than one command: {run!r}"
    words = shlex.split(run)
    assert words[0] == "python", run
    if words[1] == "-m":
        assert words[2] in ("pytest", "ruff") or words[2:4] == ["pip", "install"], run
        return
    script = where / words[1]
    assert script.suffix == ".py" and script.is_file(), f"no script {script}"
    for word in words[2:]:
        if word.endswith(".txt"):
            assert (where / word).is_file(), f"{run!r}: no {word}"


def test_every_step_installs_or_calls_one_command():
    for job in load(TEMPLATE_WORKFLOW)["jobs"].values():
        for step in job["steps"]:
            if "run" in step and not is_install(step["run"]):
                assert not SHELL_SYNTAX.search(step["run"].strip().replace("${{", "")), step


@pytest.mark.parametrize("database,cache", [("sqlite", "locmem"), ("postgresql", "redis")])
def test_windows_steps_each_call_one_script_that_exists(cookies, database, cache):
    result = cookies.bake(extra_context={"database": database, "cache": cache})
    assert result.exit_code == 0, result.exception
    project = result.project_path
    workflow = load(project / ".github" / "workflows" / "ci.yml")
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "run" in step and not is_install(step["run"]):
                assert not SHELL_SYNTAX.search(step["run"].strip()), step
    windows = [step for step in workflow["jobs"]["windows"]["steps"] if "run" in step]
    for step in windows:
        check_pwsh_step(step, project)
    scripts = {shlex.split(step["run"])[1] for step in windows if not step["run"].startswith("python -m")}
    assert scripts == {"ci/check_skips.py", "ci/console_checks.py", "ci/windows_service_checks.py",
                       "ci/start_server_bat_check.py", "ci/windows_signon_check.py"}, scripts
    for step in load(TEMPLATE_WORKFLOW)["jobs"]["windows"]["steps"]:
        if "run" in step:
            check_pwsh_step(step, ROOT)


@pytest.fixture(scope="module")
def baked_with_venv(cookies_session, default_venv_python) -> tuple[Path, Path]:
    """A default bake and a venv with its test requirements (the one the default bake's
    suite runs in: the same requirements, and nothing here installs anything new);
    (project, the venv's python)."""
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    return result.project_path, default_venv_python


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the bash steps are the Linux jobs'")
@pytest.mark.parametrize("which", ["template", "project"])
def test_bash_steps_run_here(baked_with_venv, which):
    project, vpython = baked_with_venv
    if which == "template":
        job, cwd, path_first = load(TEMPLATE_WORKFLOW)["jobs"]["linux"], ROOT, Path(sys.executable).parent
    else:
        job, cwd, path_first = (load(project / ".github" / "workflows" / "ci.yml")["jobs"]["linux"], project,
                                vpython.parent)
    report = cwd / ("template-report.xml" if which == "template" else "pytest-report.xml")
    ran = []
    try:
        for step in bash_steps(job):
            if "apt-get" in step["run"]:
                continue
            run_step(step, job, cwd, path_first, NARROWED[which])
            ran.append(step.get("name") or step["run"])
    finally:
        report.unlink(missing_ok=True)
    assert len(ran) == 4, ran  # pip install, ruff, pytest, the skip check


def run_ci_script(vpython: Path, project: Path, code: str) -> subprocess.CompletedProcess:
    return run([vpython, "-c", "import sys; sys.path.insert(0, 'ci')\n" + code], cwd=project, timeout=900)


def assert_check_fails_with_the_change(vpython: Path, project: Path, source: Path, old: str, new: str,
                                       code: str, message: str) -> None:
    """With ``old`` replaced by ``new`` in ``source`` (once), the check ``code`` runs exits 1
    saying ``message``; with the file restored, it passes."""
    original = source.read_text(encoding="utf-8")
    assert original.count(old) == 1, old
    source.write_text(original.replace(old, new), encoding="utf-8")
    try:
        done = run_ci_script(vpython, project, code)
    finally:
        source.write_text(original, encoding="utf-8")
    assert done.returncode == 1 and message in done.stdout, done.stdout[-5000:]
    ok = run_ci_script(vpython, project, code)
    assert ok.returncode == 0, ok.stdout[-5000:]


FIREWALL_CHECK = """
from windows import FakeWindows
from windows_service_checks import ServiceChecks
ServiceChecks(FakeWindows()).install_settings_and_firewall()
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the fake stands in for Windows elsewhere")
@pytest.mark.parametrize("script", ["console_checks.py", "windows_service_checks.py", "start_server_bat_check.py",
                                    "windows_signon_check.py"])
def test_ci_scripts_run_here_through_the_fake(baked_with_venv, script):
    project, vpython = baked_with_venv
    done = run([vpython, f"ci/{script}"], cwd=project, timeout=900)
    assert done.returncode == 0, done.stdout[-10000:]
    assert re.search(r"^(\d+) of \1 checks passed\.$", done.stdout, re.M), done.stdout[-5000:]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the fake stands in for Windows elsewhere")
@pytest.mark.parametrize("old,new,message", [
    pytest.param('f"localport={port}"', 'f"localport={port + 1}"', "no firewall rule for port", id="port"),
    pytest.param('["sc.exe", "failureflag", name, "1"]', '["sc.exe", "failure-flag", name, "1"]',
                 "set-up command(s) failed", id="sc-command"),
    pytest.param('return ["sc.exe", "config", name, "start=", "delayed-auto"]',
                 'return ["sc", "config", name, "start=", "delayed-auto"]', "set-up command(s) failed", id="program"),
])
def test_the_fake_catches_a_wrong_windows_command(baked_with_venv, old, new, message):
    """A misspelt command, a wrong port: the service checks fail on Linux."""
    project, vpython = baked_with_venv
    assert_check_fails_with_the_change(vpython, project, project / "tornado_wsgi_server" / "windows_admin.py",
                                       old, new, FIREWALL_CHECK, message)


SERVICE_CHECK = """
from windows import FakeWindows
from windows_service_checks import ServiceChecks
fake = FakeWindows()
checks = ServiceChecks(fake)
try:
    checks.prepare()
    checks.{check}
finally:
    checks.cleanup()
    for name in list(fake.manager.services):
        fake.manager.kill(name)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the fake stands in for Windows elsewhere")
@pytest.mark.parametrize("old,new,check,message", [
    pytest.param("    if folder is not None and same_folder(folder, str(project.directory)):\n        return\n",
                 "    return\n", "second_install_from_another_folder()", "a second folder took over the service",
                 id="takeover"),
    pytest.param("        if state is None or state.state != pending or clock() >= deadline:", "        if True:",
                 "round_trip(1)", "is still starting after", id="no-wait"),
    pytest.param("account = given or stored or windows_admin.virtual_account(self.name)",
                 "account = given or stored or windows_admin.LOCAL_SYSTEM", "check_service_account()",
                 "not run as NT SERVICE", id="account"),
    pytest.param("        self.sync_firewall(options)\n", "", "firewall_follows_env()",
                 "the firewall rule did not follow SERVER_PORT", id="firewall"),
    pytest.param("        # While the service is there: the name of its account resolves only then.\n"
                 "        left = self.take_back_rights()\n", "        left = []\n", "remove_takes_back_the_rights()",
                 "keeps rights after remove", id="rights"),
])
def test_the_service_checks_catch_a_broken_service_command(baked_with_venv, old, new, check, message):
    """The Windows job's service checks, run here through the fake on the project's own
    service_control.py, fail when a refusal, a wait, the account, the rule's re-sync or the rights
    taken back at remove go."""
    project, vpython = baked_with_venv
    assert_check_fails_with_the_change(vpython, project, project / "tornado_wsgi_server" / "service_control.py",
                                       old, new, SERVICE_CHECK.format(check=check), message)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the fake stands in for Windows elsewhere")
def test_the_fake_fails_what_windows_would_refuse(baked_with_venv):
    """Exit codes the checks rely on: a service that is not installed, a second start, a
    stop of a stopped service, a rule that is not there, an unknown command, a user name
    net user refuses or already has, removing a user that is not there, and the same for
    net localgroup's groups and members."""
    project, vpython = baked_with_venv
    done = run_ci_script(vpython, project, """
import tempfile
from pathlib import Path
from windows import FakeWindows
fake = FakeWindows()
assert fake.service("start").code == 1060
assert fake.sc("qc", "x").code == 1060
assert fake.service("install", "--", "--port", "8123").code == 0
assert fake.service("stop").code == 1062
assert fake.sc("qfailur", "x").code != 0
assert fake.netsh("advfirewall", "firewall", "show", "rule", "name=nope").code == 1
assert fake.netsh("firewall", "show", "rule", "name=x").code == 1
assert fake.service("remove").code == 0 and fake.service("remove").code == 1060
assert fake.add_local_user("u" * 21, "Pw-1234-abc").code == 2
assert fake.add_local_user("a/b", "Pw-1234-abc").code == 2
assert fake.add_local_user("signon1", "Pw-1234-abc").code == 0
assert fake.add_local_user("SIGNON1", "Pw-1234-abc").code == 2
assert fake.add_local_user("signon2", "Pw-1234-abcdefg").code == 2  # net user would ask (Y/N)
assert fake.add_local_group("Site Editors").code == 0
assert fake.add_local_group("site editors").code == 2 and fake.add_local_group("a,b").code == 2
assert fake.add_to_local_group("Nope", "signon1").code == 2  # no such group
assert fake.add_to_local_group("Site Editors", "nobody").code == 2  # no such user
assert fake.add_to_local_group("Site Editors", "signon1").code == 0
assert fake.add_to_local_group("site editors", "signon1").code == 2  # already a member
env = fake.signon_env(Path(tempfile.mkdtemp()))
assert Path(env["NTLM_GROUP_FILE"]).read_text() == "FAKEHOST\\\\signon1: Site Editors\\n"
assert fake.remove_local_group("Site Editors").code == 0 and fake.remove_local_group("Site Editors").code == 2
assert fake.remove_local_user("signon1").code == 0 and fake.remove_local_user("signon1").code == 2
print("fine")
""")
    assert done.returncode == 0 and "fine" in done.stdout, done.stdout


# --- The skip lists --------------------------------------------------------------------------

def junit_report(path: Path, cases: list[tuple[str, str, str | None]]) -> Path:
    """A pytest --junitxml report: (classname, name, skip message or None) per test."""
    suite = ET.Element("testsuite")
    for classname, name, skipped in cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=name)
        if skipped is not None:
            ET.SubElement(case, "skipped", type="pytest.skip", message=skipped)
    root = ET.Element("testsuites")
    root.append(suite)
    path.write_text(ET.tostring(root, encoding="unicode"), encoding="utf-8")
    return path


def check_skips(tmp_path: Path, cases: list, allowed: str | None) -> subprocess.CompletedProcess:
    report = junit_report(tmp_path / "report.xml", cases)
    args = [sys.executable, CHECK_SKIPS, report, "--root", PROJECT_TEMPLATE]
    if allowed is not None:
        (tmp_path / "allowed.txt").write_text(allowed, encoding="utf-8")
        args += ["--allow", tmp_path / "allowed.txt"]
    return run(args, cwd=tmp_path, timeout=60)


SHUTDOWN = "tests.server.test_shutdown"
SIGTERM_ID = "tests/server/test_shutdown.py::test_graceful_stop_finishes_requests_in_flight[sigterm]"


def test_skip_checker_passes_listed_skips(tmp_path):
    done = check_skips(tmp_path, [(SHUTDOWN, "test_graceful_stop_finishes_requests_in_flight[ctrl-c]", None),
                                  (SHUTDOWN, "test_graceful_stop_finishes_requests_in_flight[sigterm]",
                                   "not on Windows: it cannot send SIGTERM to a process")],
                       f"# comment\n{SIGTERM_ID} | Windows cannot send SIGTERM\n")
    assert done.returncode == 0, done.stdout
    assert "No unexpected skips (1 skipped" in done.stdout


def test_skip_checker_fails_on_an_unlisted_skip(tmp_path):
    done = check_skips(tmp_path, [(SHUTDOWN, "test_graceful_stop_finishes_requests_in_flight[sigterm]", "x"),
                                  ("tests.server.test_workers", "test_two_workers_serve_and_stop_gracefully",
                                   "not on Windows: looks allowed but is not listed")],
                       f"{SIGTERM_ID} | Windows cannot send SIGTERM\n")
    assert done.returncode == 1, done.stdout
    assert "tests/server/test_workers.py::test_two_workers_serve_and_stop_gracefully" in done.stdout
    assert SIGTERM_ID + ":" not in done.stdout


def test_skip_checker_without_a_list_allows_no_skip(tmp_path):
    assert check_skips(tmp_path, [("tests.test_site", "test_home_page_links_hashed_css", None)],
                       None).returncode == 0
    done = check_skips(tmp_path, [("tests.test_site", "test_home_page_links_hashed_css", "PostgreSQL not reachable")],
                       None)
    assert done.returncode == 1 and "tests/test_site.py::test_home_page_links_hashed_css" in done.stdout


@pytest.mark.parametrize("cases,allowed", [
    ([], ""),  # a report with no test in it: the run did not happen
    ([(SHUTDOWN, "test_x", None)], f"{SIGTERM_ID}\n"),  # a listed test without a reason
])
def test_skip_checker_refuses_what_it_cannot_read(tmp_path, cases, allowed):
    done = check_skips(tmp_path, cases, allowed)
    assert done.returncode == 2 and "ERROR:" in done.stdout, done.stdout


def listed_ids(path: Path) -> list[str]:
    return [line.partition(" | ")[0] for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def assert_tests_exist(root: Path, ids: list[str]) -> None:
    for test_id in ids:
        file, *_, name = test_id.split("::")
        text = (root / file).read_text(encoding="utf-8")
        assert f"def {name.partition('[')[0]}(" in text, f"{test_id}: no such test"


def skipped_on_windows(path: Path) -> tuple[bool, set[str]]:
    """Whether a test file skips as a whole on Windows (``pytestmark``), and the names of the
    functions that do: those with ``skipif(sys.platform == "win32", ...)``."""
    def is_windows_skip(node: ast.AST) -> bool:
        return any(isinstance(call, ast.Call) and ast.unparse(call.func).endswith("skipif") and call.args
                   and ast.unparse(call.args[0]) == "sys.platform == 'win32'" for call in ast.walk(node))

    tree = ast.parse(path.read_text(encoding="utf-8"))
    whole = any(isinstance(node, ast.Assign) and any(ast.unparse(t) == "pytestmark" for t in node.targets)
                and is_windows_skip(node.value) for node in tree.body)
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                 and any(is_windows_skip(decorator) for decorator in node.decorator_list)}
    return whole, functions


def test_template_skip_list_names_real_tests_and_every_windows_skip():
    ids = listed_ids(ROOT / "tests" / "windows_skips.txt")
    assert len(ids) == len(set(ids)) >= 20
    collected = run([sys.executable, "-m", "pytest", "--collect-only", "-q"], cwd=ROOT,
                    env=clean_env(TEMPLATE_ONLY_TESTS="1"), timeout=120).stdout.splitlines()
    assert not set(ids) - set(collected), set(ids) - set(collected)
    # A test that skips itself on Windows but is not listed would fail the Windows job.
    unlisted = []
    for test_id in (line for line in collected if "::" in line):
        file, _, name = test_id.partition("::")
        whole, functions = skipped_on_windows(ROOT / file)
        if (whole or name.partition("[")[0] in functions) and test_id not in ids:
            unlisted.append(test_id)
    assert not unlisted, f"skipped on Windows but not in tests/windows_skips.txt: {unlisted}"


@pytest.mark.parametrize("database,cache", [("sqlite", "locmem"), ("postgresql", "redis")])
def test_project_skip_list_names_real_tests(cookies, database, cache):
    result = cookies.bake(extra_context={"database": database, "cache": cache})
    assert result.exit_code == 0, result.exception
    ids = listed_ids(result.project_path / "ci" / "windows-skips.txt")
    assert len(ids) == len(set(ids)) == (21 if database == "sqlite" else 31), ids
    assert_tests_exist(result.project_path, ids)
