"""Fixtures for testing the template itself (the baked project has its own tests/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from background import benchmark_venv, default_suite
from helpers import MATRIX_PYTHONS, ROOT

# Tests of the template itself, whose outcome does not depend on the Python running them:
# bakes, hooks, Wine, Chromium, start_server.sh, the benchmark smokes, the workflows. A
# GitHub matrix runs them in one job per operating system (TEMPLATE_ONLY_TESTS=1) and
# leaves them out of the others (TEMPLATE_ONLY_TESTS=0); unset, they run.
TEMPLATE_ONLY_MODULES = {"test_bake.py", "test_hooks.py", "test_service_bat.py", "test_start_server_bat.py",
                         "test_readme_windows.py", "test_start_server.py", "test_benchmarks_smoke.py",
                         "test_workflows.py"}


def pytest_configure(config):
    # pytest-cookies bakes the template named by --template, "." by default: make that this
    # repository whatever the current directory is.
    if getattr(config.option, "template", ".") == ".":
        config.option.template = str(ROOT)


@pytest.fixture(scope="session")
def default_project(cookies_session) -> Path:
    """One default bake shared by the tests that only read it or run it in place."""
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    return result.project_path


def left_out(item) -> bool:
    if os.environ.get("TEMPLATE_ONLY_TESTS") == "0" and item.path.name in TEMPLATE_ONLY_MODULES:
        return True
    # A smoke run on a Python that a matrix job of its own tests in full adds nothing.
    params = getattr(item, "callspec", None) and item.callspec.params
    return item.originalname == "test_baked_project_smoke_on_python" and params["version"] in MATRIX_PYTHONS


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected theirs
def pytest_collection_modifyitems(config, items):
    deselected = [item for item in items if left_out(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not left_out(item)]
    # The default bake's suite (background.py) starts now and runs while the other tests do;
    # the tests that read its result come after them, and the benchmark smokes, which load
    # every core, after those: their load would make the suite's timing tests flaky.
    def rank(item) -> int:
        if item.path.name == "test_benchmarks_smoke.py":
            return 2
        return 1 if "tested_default" in item.fixturenames else 0

    items.sort(key=rank)  # stable: the order within each group stays
    if config.option.collectonly:
        return
    if any(rank(item) == 1 for item in items):
        default_suite(config)
    if any(rank(item) == 2 for item in items):
        benchmark_venv(config)


def pytest_unconfigure(config):
    for started in (getattr(config, "_default_suite", None), getattr(config, "_benchmark_venv", None)):
        if started is not None:
            started.stop()


@pytest.fixture(scope="session")
def default_venv_python(request) -> Path:
    """The python of a venv with a default bake's requirements_for_tests() on the main Python
    (the one the default bake's suite runs in): for tests that only run it."""
    return default_suite(request.config).shared_venv()
