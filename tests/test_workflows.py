"""The GitHub workflows run the PostgreSQL and Redis tests against real services and do not
let tests skip unnoticed: the template's (.github/workflows/template.yml) and a baked
project's (.github/workflows/ci.yml)."""

from __future__ import annotations

import pytest
import yaml  # PyYAML comes with cookiecutter

from helpers import ROOT

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
    for job in (linux, windows):
        assert job["env"]["TEMPLATE_MAIN_PYTHON"] == "${{ matrix.python }}"
        assert job["strategy"]["matrix"]["python"] == ["3.10", "3.11", "3.12", "3.13", "3.14"]
        test_step = next(step for step in job["steps"] if step.get("name") == "Template tests")
        assert test_step["run"].strip() == "python -m pytest"
        for version in ("3_10", "3_11", "3_12", "3_13", "3_14"):
            assert f"PYTHON_{version}" in test_step["env"]


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
    for job in (linux, windows):
        runs = check_steps(job)
        assert "python -m pytest -ra --junitxml=pytest-report.xml" in runs, runs
        checker = next(step for step in job["steps"] if step.get("name") == "No unexpected skips")
        assert checker["shell"] == "python"
        compile(checker["run"], "No unexpected skips", "exec")
