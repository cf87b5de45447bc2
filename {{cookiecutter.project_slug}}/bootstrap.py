"""Prepare the project to run: .env, .venv, requirements, database, static files.

start_server.bat and start_server.sh run this with any Python 3.10+ they find, then
start tornado_server.py with the virtual environment's Python. Each step says what it
does; a failing step prints ``ERROR: ...`` and exits non-zero. Later runs skip what is
already done, so they take seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import secrets
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
VENV_DIR = BASE_DIR / ".venv"
ENV_FILE = BASE_DIR / ".env"
ENV_EXAMPLE = BASE_DIR / ".env.example"
REQUIREMENTS = BASE_DIR / "requirements.txt"
STAMP = VENV_DIR / "requirements.sha256"
MIN_PYTHON = (3, 10)
TESTED_UP_TO = (3, 13)


class StepFailed(Exception):
    pass


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def venv_python() -> Path:
    if os.name == "nt":
        return VENV_DIR / "Scripts" / "python.exe"
    return VENV_DIR / "bin" / "python"


def run(args: list, what: str) -> None:
    try:
        completed = subprocess.run([str(a) for a in args], cwd=BASE_DIR)
    except OSError as exc:
        raise StepFailed(f"{what} could not start: {exc}") from None
    if completed.returncode != 0:
        raise StepFailed(f"{what} failed (exit code {completed.returncode}); see the output above.")


def new_secret_key() -> str:
    return secrets.token_urlsafe(64)


def ensure_env_file() -> bool:
    """Create .env from .env.example with a new secret key; False if it already exists."""
    if ENV_FILE.exists():
        return False
    try:
        lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise StepFailed(
            f"cannot create .env: {ENV_EXAMPLE} could not be read ({exc.strerror or exc}). "
            "Restore .env.example from the project's repository, or write .env yourself."
        ) from None
    lines = [
        f"DJANGO_SECRET_KEY={new_secret_key()}" if line.startswith("DJANGO_SECRET_KEY=") else line
        for line in lines
    ]
    ENV_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return True


def check_python() -> None:
    if sys.version_info < MIN_PYTHON:
        raise StepFailed(
            f"Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer is needed; this is "
            f"{sys.version.split()[0]} ({sys.executable}). Install it from https://www.python.org/downloads/"
        )
    if sys.version_info[:2] > TESTED_UP_TO:
        print(f"Note: Python {sys.version_info[0]}.{sys.version_info[1]} is newer than the "
              f"versions this project is tested on (up to {TESTED_UP_TO[0]}.{TESTED_UP_TO[1]}).")


def venv_output(*args: str) -> str | None:
    """What the virtual environment's Python prints for ``args``; None if it fails."""
    try:
        completed = subprocess.run([str(venv_python()), *args], cwd=BASE_DIR, capture_output=True,
                                   text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout if completed.returncode == 0 else None


def requirements_digest() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    # The venv's own Python: a venv made again with another Python must reinstall.
    digest.update((venv_output("-c", "import sys; print(sys.version)") or "").encode())
    return digest.hexdigest()


def venv_usable() -> bool:
    # A venv made without ensurepip (Debian without python3-venv) or cut short has a
    # python but no pip, and installing would fail on every run.
    return venv_python().exists() and venv_output("-m", "pip", "--version") is not None


def ensurepip_hint() -> str:
    if importlib.util.find_spec("ensurepip") is not None:
        return ""
    return (f" This Python ({sys.executable}) cannot install pip into a virtual environment"
            " (its ensurepip module is missing). On Debian/Ubuntu: sudo apt install python3-venv")


def ensure_venv() -> None:
    if venv_usable():
        return
    if VENV_DIR.exists():
        step(f"The virtual environment in {VENV_DIR} is incomplete (no working pip); creating it again")
    else:
        step(f"Creating the virtual environment in {VENV_DIR}")
    try:
        run([sys.executable, "-m", "venv", "--clear", VENV_DIR], "Creating the virtual environment")
    except StepFailed as exc:
        raise StepFailed(f"{exc}{ensurepip_hint()}") from None
    if not venv_usable():
        raise StepFailed(f"the new virtual environment in {VENV_DIR} has no working pip.{ensurepip_hint()}")


def ensure_requirements() -> None:
    wanted = requirements_digest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    step("Installing requirements (requirements.txt changed or first run)")
    run([venv_python(), "-m", "pip", "install", "--disable-pip-version-check", "-r", REQUIREMENTS],
        "Installing requirements")
    STAMP.write_text(wanted + "\n")


def prepare_django() -> None:
    step("Applying database migrations")
    run([venv_python(), "manage.py", "migrate", "--noinput"], "manage.py migrate")
    step("Collecting static files")
    run([venv_python(), "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        "manage.py collectstatic")


def main() -> int:
    try:
        check_python()
        if ensure_env_file():
            step("Created .env with a new secret key (edit it to configure the site)")
        ensure_venv()
        ensure_requirements()
        prepare_django()
    except StepFailed as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("ERROR: interrupted.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
