"""What the benchmark scripts share: the options that say where their environment and results go,
how each writes its results file, and how each leaves its working directory."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def add_environment_options(parser: argparse.ArgumentParser) -> None:
    """``--python``, ``--cache-dir`` and ``--results``, the same for every script."""
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for the baked project's venv (default: this one)")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.environ.get("BENCH_CACHE_DIR", HERE / ".cache")),
                        help="where the virtual environment is kept between runs")
    parser.add_argument("--results", type=Path, default=RESULTS, help="output directory")


def write_results(directory: Path, filename: str, title: str, *blocks: str | list[str], echo: bool = False) -> Path:
    """Write ``directory/filename`` (the directory made if missing): ``# title``, then each
    block, a paragraph or a list of lines such as a table, with a blank line before each.
    ``echo`` prints the page as well. Returns the file's path."""
    lines = [f"# {title}"]
    for block in blocks:
        lines += ["", *([block] if isinstance(block, str) else block)]
    text = "\n".join(lines) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(text, encoding="utf-8")
    if echo:
        print(text, end="")
    return path


def machine() -> str:
    """The interpreter and the CPU count, for a results page's opening paragraph."""
    return f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs."


def leave_workdir(workdir: Path, keep: bool, log) -> None:
    """Remove the baked project's directory, or with ``keep`` say where it stays."""
    if keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
