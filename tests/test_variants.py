"""A PostgreSQL + Redis project, baked and installed like a user would, passes the tests of
its own suite that use the database or the cache (VARIANT_FILES). The others (tests/server,
the bootstrap, upgrade, docs and IIS tests...) test what these options leave unchanged; the
default bake's suite runs them in full (test_baked_suite.py), and running them twice would
add minutes to CI.

With REQUIRE_SERVICES=1 (.ci/run and the Linux jobs of the GitHub workflow, which start
PostgreSQL and Redis containers) nothing may skip: PostgreSQL, Redis and nginx must be there
and every test of the baked project must run. Without it (the Windows job, where there are no
service containers) only the tests about those services skip, and on Windows only those the
project's ci/windows-skips.txt lists.
"""

from __future__ import annotations

import os

import pytest

from helpers import main_python, run_baked_suite, services_required

# The test files of a PostgreSQL + Redis project whose tests reach the database or the cache.
VARIANT_FILES = ("tests/test_postgresql.py", "tests/test_redis.py", "tests/test_scaling.py",
                 "tests/test_backups.py", "tests/test_site.py", "tests/test_error_reports.py")


@pytest.mark.slow
@pytest.mark.timeout(3600)  # above run_baked_suite's own limits (3300 s), which kill what they started
def test_postgresql_redis_project_passes_its_own_suite(cookies):
    result = cookies.bake(extra_context={"database": "postgresql", "cache": "redis",
                                         "project_name": "Variant Site"})
    assert result.exit_code == 0, result.exception
    project = result.project_path
    for name in ("tests/test_postgresql.py", "tests/test_redis.py", "tests/test_scaling.py",
                 "tests/server/test_windows_service.py", "tornado_wsgi_server/windows_service.py",
                 "deploy/nginx.conf"):
        assert (project / name).is_file(), name
    env = {"REQUIRE_SERVICES": os.environ.get("REQUIRE_SERVICES", "")}
    suite = run_baked_suite(project, main_python(), env=env, timeout=1500, args=VARIANT_FILES)
    suite.assert_clean()
    # 27 tests; without PostgreSQL and Redis (a Windows runner) those about them skip.
    assert suite.passed >= (25 if services_required() else 14), suite.output[-20000:]


def test_sqlite_locmem_project_has_no_postgresql_or_redis_tests(cookies):
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    tests = result.project_path / "tests"
    assert not (tests / "test_postgresql.py").exists()
    assert not (tests / "test_redis.py").exists()
    assert (tests / "test_scaling.py").is_file()
    ci = (result.project_path / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    assert "postgres:" not in ci and "redis:" not in ci
    assert "${{ matrix.python-version }}" in ci
