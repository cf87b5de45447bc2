"""Fixtures for testing the template itself (the baked project has its own tests/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import ROOT


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
