"""Prepare the project to run: .env, .venv, requirements, database, static files.

Run through the project's ``bootstrap.py`` by start_server.bat/.sh (and upgrade.py) with any
Python 3.10+ they find, before .venv exists: the standard library only. Each step says what
it does; a failing step prints ``ERROR: ...`` and exits non-zero. Later runs skip what is
already done, so they take seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import ntpath
import os
import secrets
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent  # the project, above this package
VENV_DIR = BASE_DIR / ".venv"
ENV_FILE = BASE_DIR / ".env"
ENV_EXAMPLE = BASE_DIR / ".env.example"
REQUIREMENTS = BASE_DIR / "requirements.txt"
STAMP = VENV_DIR / "requirements.sha256"
# The server package version put to work by the last upgrade (or the first start): the upgrade
# shows the CHANGELOG's "Action required" lines of the versions after it.
SERVER_VERSION_STAMP = VENV_DIR / "server-version"
# Wheels for servers without internet (docs/offline-install.md).
WHEELHOUSE = BASE_DIR / "wheelhouse"
MIN_PYTHON = (3, 10)
TESTED_UP_TO = (3, 14)


class StepFailed(Exception):
    pass


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def warn(message: str) -> None:
    print(f"WARNING: {message}", flush=True)


def tolerate_unencodable_output() -> None:
    """A path or name the console's code page lacks is printed escaped, not a crash
    (Windows encodes a redirected stdout in the ANSI code page)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass


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
    write_private_file(ENV_FILE, "\n".join(lines) + "\n")
    return True


def write_private_file(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only on POSIX (0600 from the start, not chmod-ed
    after: nobody can open it in between). Windows gives it the folder's inherited ACL."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def exposure_warning(path: Path, mode: int, group_name: str) -> str | None:
    """Why ``path`` (the secrets file, of POSIX ``mode``) is readable by others; None if it is not."""
    if mode & 0o004:
        who = "every user of this machine"
    elif mode & 0o040:
        who = f"the group {group_name!r}"
    else:
        return None
    return (f"{path} (mode {mode & 0o777:o}) can be read by {who}; it holds the secret key and "
            f"passwords. Make it the server's account's alone: chmod 600 {path} "
            "(docs/linux.md, \"The account and the folder\").")


def warn_about_env_file_rights() -> None:
    if os.name == "nt":
        return
    import grp

    try:
        status = ENV_FILE.stat()
    except OSError:
        return
    try:
        group_name = grp.getgrgid(status.st_gid).gr_name
    except KeyError:
        group_name = str(status.st_gid)
    message = exposure_warning(ENV_FILE, status.st_mode, group_name)
    if message:
        warn(message)


def check_python() -> None:
    if sys.version_info < MIN_PYTHON:
        raise StepFailed(
            f"Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer is needed; this is "
            f"{sys.version.split()[0]} ({sys.executable}). Install it from https://www.python.org/downloads/"
        )
    if sys.version_info[:2] > TESTED_UP_TO:
        print(f"Note: Python {sys.version_info[0]}.{sys.version_info[1]} is newer than the "
              f"versions this project is tested on (up to {TESTED_UP_TO[0]}.{TESTED_UP_TO[1]}).")


# A probe's output goes through a pipe: in UTF-8 it cannot fail on a path the ANSI code
# page lacks (C:\Users\Łukasz on cp1252), which would make a working venv look broken.
PROBE_ENV = {"PYTHONUTF8": "1", "PYTHONIOENCODING": "utf-8"}


# Installed files reach ~127 characters past the project folder (.venv\Lib\site-packages\
# django\...\__pycache__\...pyc); Windows' classic limit is 260.
LONG_PATH_LIMIT = 130


def _folded(path: str) -> str:
    return str(path).replace("\\", "/").rstrip("/").casefold()


def is_under(path: str, folder: str) -> bool:
    path, folder = _folded(path), _folded(folder)
    return bool(folder) and (path == folder or path.startswith(folder + "/"))


def location_warnings(project_dir: str, environ, base_exec_prefix: str,
                      long_paths_enabled: bool | None, network_drive: bool = False) -> list[str]:
    """Why this folder or this Python may break the site later (docs/windows-service.md: "Where to put the
    project on Windows"). ``long_paths_enabled`` is None where there is no such limit."""
    warnings = []
    for name in ("OneDrive", "OneDriveCommercial", "OneDriveConsumer"):
        if environ.get(name) and is_under(project_dir, environ[name]):
            warnings.append(
                f"{project_dir} is in OneDrive ({name}). Syncing .venv and the SQLite database "
                "causes conflicts and 'database is locked' errors, and files OneDrive keeps only "
                "online cannot be read by the Windows service. Move the project to a local "
                "folder such as C:\\Sites.")
            break
    if str(project_dir).startswith(("\\\\", "//")) or network_drive:
        warnings.append(
            f"{project_dir} is on a network drive. SQLite cannot lock its database safely "
            "there, and the Windows service cannot see mapped drives. Use a local folder.")
    if long_paths_enabled is False and len(str(project_dir)) > LONG_PATH_LIMIT:
        warnings.append(
            f"the project folder path is {len(str(project_dir))} characters long; with Windows' "
            f"260-character limit pip may fail to install packages past ~{LONG_PATH_LIMIT}. "
            "Use a shorter folder, or enable long paths (LongPathsEnabled, see docs/windows-service.md).")
    # As windows_admin.per_user_python(), which `service.bat install` uses (this file runs alone).
    profile = environ.get("USERPROFILE", "").rstrip("\\")
    if "windowsapps" in str(base_exec_prefix).casefold() or (
            profile and is_under(str(base_exec_prefix), ntpath.dirname(profile))):
        warnings.append(
            f"this Python ({base_exec_prefix}) is installed for one user (the Microsoft Store's, or "
            "python.org's \"Install Now\"): the Windows service's own account cannot read it, and "
            "`service.bat install` refuses it. For a service, install Python from "
            "https://www.python.org/downloads/ \"for all users\" and delete .venv to create it again.")
    return warnings


def windows_long_paths_enabled() -> bool | None:
    """LongPathsEnabled from the registry on Windows; None elsewhere."""
    if os.name != "nt":
        return None
    import winreg

    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem") as key:
            return bool(winreg.QueryValueEx(key, "LongPathsEnabled")[0])
    except OSError:
        return False


def windows_network_drive(path: Path) -> bool:
    if os.name != "nt" or not path.drive:
        return False
    import ctypes

    return ctypes.windll.kernel32.GetDriveTypeW(path.drive + "\\") == 4  # DRIVE_REMOTE


def warn_about_location() -> None:
    for message in location_warnings(str(BASE_DIR), os.environ, sys.base_exec_prefix,
                                     windows_long_paths_enabled(), windows_network_drive(BASE_DIR)):
        warn(message)


def venv_output(*args: str) -> str | None:
    """What the virtual environment's Python prints for ``args``; None if it fails."""
    try:
        completed = subprocess.run([str(venv_python()), *args], cwd=BASE_DIR, capture_output=True,
                                   env={**os.environ, **PROBE_ENV}, encoding="utf-8",
                                   errors="replace", timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout if completed.returncode == 0 else None


def requirements_digest() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    # The venv's own Python: a venv made again with another Python must reinstall.
    digest.update((venv_output("-c", "import sys; print(sys.version)") or "").encode())
    return digest.hexdigest()


def venv_state() -> str:
    """"missing", "broken" (its python does not run), "no pip", or "ok".

    A venv made without ensurepip (Debian without python3-venv) or cut short has a
    python but no pip, and installing would fail on every run.
    """
    if not venv_python().exists():
        return "missing"
    if venv_output("-c", "import sys") is None:
        return "broken"
    if venv_output("-c", "import pip") is None:
        return "no pip"
    return "ok"


def ensurepip_hint() -> str:
    if importlib.util.find_spec("ensurepip") is not None:
        return ""
    return (f" This Python ({sys.executable}) cannot install pip into a virtual environment"
            " (its ensurepip module is missing). On Debian/Ubuntu: sudo apt install python3-venv")


def ensure_venv() -> None:
    state = venv_state()
    if state == "ok":
        return
    command = [sys.executable, "-m", "venv", VENV_DIR]
    if state == "broken":
        # Only a venv whose python cannot run is wiped: one in use (a running service)
        # is never deleted because a probe failed.
        step(f"The virtual environment in {VENV_DIR} does not run; creating it again")
        command.insert(3, "--clear")
    elif state == "no pip":
        step(f"The virtual environment in {VENV_DIR} is incomplete (no pip); adding pip to it")
    else:
        step(f"Creating the virtual environment in {VENV_DIR}")
    try:
        run(command, "Creating the virtual environment")
    except StepFailed as exc:
        raise StepFailed(f"{exc}{ensurepip_hint()}") from None
    if venv_state() != "ok":
        raise StepFailed(f"the virtual environment in {VENV_DIR} has no working pip.{ensurepip_hint()}")


def has_wheelhouse() -> bool:
    return WHEELHOUSE.is_dir() and any(WHEELHOUSE.glob("*.whl"))


def pip_install_command() -> list:
    """pip install of requirements.txt; from wheelhouse/ alone when it holds wheels. pip
    reads PIP_INDEX_URL, HTTPS_PROXY, PIP_CERT... from the environment, passed on as is."""
    command = [venv_python(), "-m", "pip", "install", "--disable-pip-version-check"]
    if has_wheelhouse():
        command += ["--no-index", "--find-links", WHEELHOUSE]
    return [*command, "-r", REQUIREMENTS]


PIP_HINT = (" Behind a proxy or without internet: set PIP_INDEX_URL, HTTPS_PROXY or PIP_CERT, "
            "or put the wheels in the wheelhouse folder (docs/offline-install.md).")


# pip cannot replace a file that another program holds open. On Windows that is most often a
# real-time scanner (antivirus, EDR) opening each new file for a moment, so a short wait helps.
# Windows: WinError 5 "access denied", 32 "in use by another process"; elsewhere a permission error.
LOCKED_FILE_ERRORS = ("[WinError 5]", "[WinError 32]", "[Errno 13]", "[Errno 1]")
PIP_ATTEMPTS = 3
PIP_RETRY_WAIT = 5.0  # seconds between attempts: at most 10 s more in all
LOCKED_FILE_HINT = (
    " pip could not replace a file in .venv that another program holds open (WinError 5 or 32), "
    "{attempts} times in a row. Usually an antivirus or EDR scanning the new files: run the "
    "command again once it is done, and ask for the scan on write of .venv\\Lib\\site-packages "
    "to be excluded during installs (docs/security.md). Or a server still runs from this "
    "folder: stop it (Ctrl+C, or service.bat stop) first.")


def locked_file_error(output: str) -> bool:
    """True when pip's output says it met a file held by another program."""
    return any(marker in output for marker in LOCKED_FILE_ERRORS)


def run_with_retries(run_once: Callable[[], tuple[int, str]], attempts: int = PIP_ATTEMPTS,
                     wait: float = PIP_RETRY_WAIT, sleep: Callable[[float], None] = time.sleep,
                     ) -> tuple[int, str, int]:
    """Run ``run_once`` (returning exit code and output) again after ``wait`` seconds while it
    fails on a locked file, ``attempts`` times at most; returns (code, output, attempts made)."""
    for attempt in range(1, attempts + 1):
        code, output = run_once()
        if code == 0 or not locked_file_error(output) or attempt == attempts:
            return code, output, attempt
        warn(f"a file in .venv is held by another program (antivirus, EDR or a running server); "
             f"trying again in {wait:g} s (attempt {attempt + 1} of {attempts})")
        sleep(wait)
    raise AssertionError("unreachable")


def run_showing_output(args: list) -> tuple[int, str]:
    """Run ``args``, passing its output on as it comes; returns its exit code and its last lines."""
    tail: deque[str] = deque(maxlen=40)
    try:
        with subprocess.Popen([str(a) for a in args], cwd=BASE_DIR, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace") as process:
            for line in process.stdout:
                print(line, end="", flush=True)
                tail.append(line)
    except OSError as exc:
        return -1, f"could not start: {exc}"
    return process.returncode, "".join(tail)


def install_with_retries(command: list, what: str) -> None:
    code, output, attempts = run_with_retries(lambda: run_showing_output(command), PIP_ATTEMPTS,
                                              PIP_RETRY_WAIT)
    if code == 0:
        return
    if locked_file_error(output):
        raise StepFailed(f"{what} failed (exit code {code})."
                         + LOCKED_FILE_HINT.format(attempts=attempts))
    raise StepFailed(f"{what} failed (exit code {code}); see the output above.{PIP_HINT}")


def requirements_changed() -> bool:
    """True when requirements.txt (or the venv's Python) changed since the last install."""
    return not (STAMP.exists() and STAMP.read_text().strip() == requirements_digest())


def ensure_requirements() -> None:
    if not requirements_changed():
        return
    wanted = requirements_digest()
    source = " from wheelhouse/ only (no network)" if has_wheelhouse() else ""
    step(f"Installing requirements{source} (requirements.txt changed or first run)")
    install_with_retries(pip_install_command(), "Installing requirements")
    STAMP.write_text(wanted + "\n")


def prepare_django() -> None:
    step("Applying database migrations")
    run([venv_python(), "manage.py", "migrate", "--noinput"], "manage.py migrate")
    step("Collecting static files")
    run([venv_python(), "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        "manage.py collectstatic")


def record_server_version() -> None:
    from . import __version__

    SERVER_VERSION_STAMP.write_text(__version__ + "\n")


def main() -> int:
    tolerate_unencodable_output()
    try:
        check_python()
        warn_about_location()
        if ensure_env_file():
            step("Created .env with a new secret key (edit it to configure the site)")
        else:
            warn_about_env_file_rights()
        new_venv = venv_state() == "missing"
        ensure_venv()
        if new_venv:
            record_server_version()  # a new project: no earlier version's action applies
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
