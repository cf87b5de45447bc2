"""The benchmark scripts run end to end (bake, venv, servers, load, report) in their quick modes.

Only that it works is checked here; its numbers mean something only in a full run.
"""

from __future__ import annotations

import re
import shutil
import sys

import pytest

from helpers import ROOT, clean_env, main_python, need, run

pytestmark = pytest.mark.slow


def test_quick_benchmark_prints_a_table(tmp_path):
    need(shutil.which("wrk") is not None, "wrk not installed (apt-get install wrk)")
    result = run(
        [sys.executable, ROOT / "benchmarks" / "run.py", "--quick", "--python", main_python(),
         "--results", tmp_path],
        cwd=ROOT, env=clean_env(), timeout=240,
    )
    assert result.returncode == 0, result.stdout
    rows = re.findall(r"^\| hello world, 20 conn \| (.+?) \| ([\d,]+) \|", result.stdout, re.M)
    servers = {name for name, rps in rows if int(rps.replace(",", "")) > 0}
    assert {"tornado_server", "waitress", "tornado WSGIContainer"} <= servers, result.stdout
    assert re.search(r"^\| tornado_server \| 64 MB \|", result.stdout, re.M), result.stdout
    report = (tmp_path / "quick.md").read_text(encoding="utf-8")
    assert "| hello world, 20 conn | tornado_server |" in report


def test_quick_overload_benchmark_prints_a_table(tmp_path):
    result = run(
        [sys.executable, ROOT / "benchmarks" / "overload.py", "--quick", "--python", main_python(),
         "--results", tmp_path],
        cwd=ROOT, env=clean_env(), timeout=240,
    )
    assert result.returncode == 0, result.stdout
    for server in ("tornado_server", "waitress"):
        row = re.search(rf"^\| {server} \| ([\d.]+) \| ([\d.]+) \|", result.stdout, re.M)
        assert row and float(row.group(1)) > 0 and float(row.group(2)) > 0, result.stdout
    assert "| tornado_server |" in (tmp_path / "overload-latest.md").read_text(encoding="utf-8")
