"""bootstrap.py, run on a copy of the project with an empty requirements.txt and a
manage.py that does nothing, so only its own steps are exercised."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import IS_WINDOWS, PROJECT_DIR, copy_bootstrap


@pytest.fixture
def project(tmp_path):
    copy_bootstrap(tmp_path)
    shutil.copy(PROJECT_DIR / ".env.example", tmp_path)
    (tmp_path / "requirements.txt").write_text("# nothing to install\n", encoding="utf-8")
    (tmp_path / "manage.py").write_text("", encoding="utf-8")
    return tmp_path


def bootstrap(project) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bootstrap.py"], cwd=project, capture_output=True, text=True,
                          timeout=300)


def venv_python(project):
    return project / ".venv" / ("Scripts/python.exe" if IS_WINDOWS else "bin/python")


def test_missing_env_example_is_a_clear_error(project):
    (project / ".env.example").unlink()
    completed = bootstrap(project)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "ERROR: cannot create .env" in completed.stderr
    assert ".env.example" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (project / ".env").exists()


def bootstrap_until_venv(project, **kwargs) -> subprocess.CompletedProcess:
    """bootstrap.py up to the virtual environment, which fails at once (.venv is a file):
    the steps before it, .env among them, run for real in a fraction of a second."""
    (project / ".venv").unlink(missing_ok=True)
    (project / ".venv").write_text("not a folder", encoding="utf-8")
    return subprocess.run([sys.executable, "bootstrap.py"], cwd=project, capture_output=True, text=True,
                          timeout=120, **kwargs)


@pytest.mark.skipif(IS_WINDOWS, reason="POSIX file modes (Windows: the folder's inherited ACL)")
def test_new_env_file_is_readable_by_its_owner_only(project):
    completed = bootstrap_until_venv(project, umask=0o022)  # the usual umask: files 0644
    assert "Created .env with a new secret key" in completed.stdout, completed.stdout + completed.stderr
    env_file = project / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    text = env_file.read_text(encoding="utf-8")
    assert "DJANGO_SECRET_KEY=replace-me" not in text and "DJANGO_SECRET_KEY=" in text


@pytest.mark.skipif(IS_WINDOWS, reason="POSIX file modes (Windows: the folder's inherited ACL)")
def test_existing_env_file_is_left_alone_and_warned_about_when_others_can_read_it(project):
    env_file = project / ".env"
    for mode, warning in ((0o644, "can be read by every user of this machine"),
                          (0o640, "can be read by the group"), (0o600, None), (0o400, None)):
        env_file.unlink(missing_ok=True)
        env_file.write_text("DJANGO_SECRET_KEY=kept\n", encoding="utf-8")
        env_file.chmod(mode)
        completed = bootstrap_until_venv(project)
        assert env_file.read_text(encoding="utf-8") == "DJANGO_SECRET_KEY=kept\n"
        assert env_file.stat().st_mode & 0o777 == mode
        warnings = [line for line in completed.stdout.splitlines() if line.startswith("WARNING: ") and ".env" in line]
        if warning is None:
            assert warnings == [], (oct(mode), completed.stdout)
        else:
            assert len(warnings) == 1 and warning in warnings[0], (oct(mode), completed.stdout)
            assert f"chmod 600 {env_file}" in warnings[0]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A copy whose .venv was made without pip (what Debian's python3 without python3-venv,
    or a creation cut short, leaves behind), after one bootstrap. Made once: a venv is slow."""
    project = tmp_path_factory.mktemp("bootstrapped")
    copy_bootstrap(project)
    shutil.copy(PROJECT_DIR / ".env.example", project)
    (project / "requirements.txt").write_text("# nothing to install\n", encoding="utf-8")
    (project / "manage.py").write_text("", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", ".venv"], cwd=project, check=True,
                   timeout=120)
    return project, bootstrap(project)


@pytest.mark.slow
def test_venv_without_pip_is_made_again(first_run):
    project, completed = first_run
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "is incomplete (no pip); adding pip to it" in completed.stdout
    assert "Installing requirements" in completed.stdout
    pip = subprocess.run([str(venv_python(project)), "-m", "pip", "--version"], capture_output=True,
                         timeout=120)
    assert pip.returncode == 0


@pytest.mark.slow
def test_requirements_are_installed_again_only_when_they_change(first_run):
    project, _ = first_run
    stamp = project / ".venv" / "requirements.sha256"
    installed = stamp.read_text()

    again = bootstrap(project)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "virtual environment" not in again.stdout
    assert "Installing requirements" not in again.stdout
    assert stamp.read_text() == installed

    requirements = project / "requirements.txt"
    requirements.write_text(requirements.read_text(encoding="utf-8") + "# changed\n", encoding="utf-8")
    changed = bootstrap(project)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "Installing requirements (requirements.txt changed" in changed.stdout
    assert stamp.read_text() != installed

    settled = bootstrap(project)
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert "Installing requirements" not in settled.stdout


@pytest.mark.slow
def test_working_venv_in_a_folder_outside_the_code_page_is_kept(tmp_path):
    """A folder name the ANSI code page lacks (a Cyrillic one on cp1252, simulated here with
    PYTHONIOENCODING, which is what Windows does to piped output) must neither crash bootstrap
    nor make it wipe and fail a working .venv."""
    project = tmp_path / "Проекты" / "сайт"
    project.mkdir(parents=True)
    copy_bootstrap(project)
    shutil.copy(PROJECT_DIR / ".env.example", project)
    (project / "requirements.txt").write_text("# nothing to install\n", encoding="utf-8")
    (project / "manage.py").write_text("", encoding="utf-8")
    cp1252 = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    cp1252.pop("PYTHONUTF8", None)

    def run_bootstrap() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "bootstrap.py"], cwd=project, capture_output=True,
                              env=cp1252, timeout=300)

    first = run_bootstrap()
    output = (first.stdout + first.stderr).decode("cp1252", "replace")
    assert first.returncode == 0, output
    assert "Traceback" not in output
    marker = project / ".venv" / "kept.txt"
    marker.write_text("still here", encoding="utf-8")
    again = run_bootstrap()
    output = (again.stdout + again.stderr).decode("cp1252", "replace")
    assert again.returncode == 0, output
    assert "virtual environment" not in output, output  # neither made again nor repaired
    assert marker.exists()


ONEDRIVE = r"C:\Users\Anna\OneDrive - Contoso Ltd"


@pytest.mark.parametrize("project_dir,environ,prefix,long_paths,expected", [
    # OneDrive, as %OneDriveCommercial% names it, in any letter case.
    (ONEDRIVE + r"\Documents\site", {"OneDriveCommercial": ONEDRIVE}, r"C:\Python312", True, ["OneDrive"]),
    (ONEDRIVE.lower() + r"\site", {"OneDrive": ONEDRIVE}, r"C:\Python312", True, ["OneDrive"]),
    # A sibling folder whose name merely starts the same is not in OneDrive.
    (ONEDRIVE + r" (old)\site", {"OneDrive": ONEDRIVE}, r"C:\Python312", True, []),
    (r"C:\Sites\site", {"OneDrive": ONEDRIVE}, r"C:\Python312", True, []),
    (r"\\fileserver\share\site", {}, r"C:\Python312", True, ["network drive"]),
    ("C:\\" + "x" * 140, {}, r"C:\Python312", False, ["characters long"]),
    ("C:\\" + "x" * 140, {}, r"C:\Python312", True, []),  # LongPathsEnabled
    ("/home/anna/" + "x" * 140, {}, "/usr", None, []),  # no such limit
    (r"C:\Sites\site", {}, r"C:\Program Files\WindowsApps\PythonSoftwareFoundation.Python.3.12_3.12.2288.0_x64__qbz5n2kfra8p0",
     True, ["Microsoft Store"]),
    # python.org's "Install Now" (or the Python install manager): under the user's profile.
    (r"C:\Sites\site", {"USERPROFILE": r"C:\Users\Anna"},
     r"C:\Users\Anna\AppData\Local\Programs\Python\Python313", True, ["for one user"]),
    (r"C:\Sites\site", {"USERPROFILE": r"C:\Users\Anna"}, r"C:\Program Files\Python313", True, []),
])
def test_location_warnings(project_dir, environ, prefix, long_paths, expected):
    bootstrap_module = load_bootstrap()
    warnings = bootstrap_module.location_warnings(project_dir, environ, prefix, long_paths)
    assert len(warnings) == len(expected), warnings
    for warning, words in zip(warnings, expected, strict=True):
        assert words in warning


def test_mapped_network_drive_is_warned_about():
    warnings = load_bootstrap().location_warnings(r"Z:\site", {}, r"C:\Python312", True, network_drive=True)
    assert ["network drive" in w for w in warnings] == [True]


@pytest.mark.slow
def test_a_warning_does_not_stop_bootstrap(project):
    env = {**os.environ, "OneDrive": str(project.parent)}
    completed = subprocess.run([sys.executable, "bootstrap.py"], cwd=project, capture_output=True, text=True,
                               env=env, timeout=300)
    assert "WARNING: " in completed.stdout and "is in OneDrive (OneDrive)" in completed.stdout
    assert "Creating the virtual environment" in completed.stdout, completed.stdout + completed.stderr


def load_bootstrap():
    spec = importlib.util.spec_from_file_location("bootstrap_under_test",
                                                  PROJECT_DIR / "tornado_wsgi_server" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_wheel(folder, name: str, version: str) -> None:
    """A minimal pure-Python wheel (PEP 427) holding one module."""
    import base64
    import hashlib
    import zipfile

    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    folder.mkdir(exist_ok=True)
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
        wheel.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")


# Any attempt to reach a package index or a proxy fails at once (port 9 is "discard").
NO_NETWORK = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "",
              "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
              "PIP_RETRIES": "0", "PIP_TIMEOUT": "5"}


@pytest.mark.slow
def test_first_start_installs_from_the_wheelhouse_with_no_network(tmp_path):
    copy_bootstrap(tmp_path)
    shutil.copy(PROJECT_DIR / ".env.example", tmp_path)
    (tmp_path / "requirements.txt").write_text("offline_only_pkg==1.0\n", encoding="utf-8")
    (tmp_path / "manage.py").write_text("", encoding="utf-8")
    env = {**os.environ, **NO_NETWORK}

    # The control: without the wheelhouse the index is needed, and unreachable.
    offline = subprocess.run([sys.executable, "bootstrap.py"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300, env=env)
    assert offline.returncode == 1, offline.stdout + offline.stderr
    assert "ERROR: Installing requirements failed" in offline.stderr
    assert "PIP_INDEX_URL" in offline.stderr and "wheelhouse" in offline.stderr

    make_wheel(tmp_path / "wheelhouse", "offline_only_pkg", "1.0")
    completed = subprocess.run([sys.executable, "bootstrap.py"], cwd=tmp_path, capture_output=True,
                               text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Installing requirements from wheelhouse/ only (no network)" in completed.stdout
    installed = subprocess.run([str(venv_python(tmp_path)), "-c", "import offline_only_pkg; print(offline_only_pkg.VERSION)"],
                               capture_output=True, text=True, timeout=60)
    assert installed.stdout.strip() == "1.0"


@pytest.mark.slow
@pytest.mark.skipif(IS_WINDOWS, reason="held here with POSIX rights; on Windows an antivirus holds the file")
def test_pip_is_tried_again_when_a_file_it_must_change_is_held(tmp_path):
    """site-packages made unchangeable (chattr +i as root, whom modes do not stop) fails the
    first pip run as a scanned file does; released as soon as bootstrap says it will retry."""
    import threading

    copy_bootstrap(tmp_path)
    shutil.copy(PROJECT_DIR / ".env.example", tmp_path)
    (tmp_path / "requirements.txt").write_text("offline_only_pkg==1.0\n", encoding="utf-8")
    (tmp_path / "manage.py").write_text("", encoding="utf-8")
    make_wheel(tmp_path / "wheelhouse", "offline_only_pkg", "1.0")
    subprocess.run([sys.executable, "-m", "venv", ".venv"], cwd=tmp_path, check=True, timeout=300)
    site_packages = Path(subprocess.run(
        [str(venv_python(tmp_path)), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    as_root = os.geteuid() == 0

    def hold(held: bool) -> None:
        if as_root:
            subprocess.run(["chattr", "+i" if held else "-i", str(site_packages)], check=True, timeout=30)
        else:
            site_packages.chmod(0o555 if held else 0o755)

    if as_root and (not shutil.which("chattr") or subprocess.run(
            ["chattr", "+i", str(site_packages)], capture_output=True, timeout=30).returncode):
        pytest.skip("chattr +i is not supported here")
    hold(True)
    try:
        process = subprocess.Popen([sys.executable, "bootstrap.py"], cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, env={**os.environ, **NO_NETWORK})
        lines = []

        def read() -> None:
            for line in process.stdout:
                lines.append(line)
                if "trying again in" in line:
                    hold(False)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            process.wait(300)
        finally:
            process.kill()
            reader.join(30)
    finally:
        hold(False)
    output = "".join(lines)
    assert process.returncode == 0, output
    assert output.count("a file in .venv is held by another program") == 1, output
    installed = subprocess.run([str(venv_python(tmp_path)), "-c", "import offline_only_pkg"], timeout=60)
    assert installed.returncode == 0


# What pip prints when real-time scanning holds a file it must replace (Windows).
LOCKED = ("ERROR: Could not install packages due to an OSError: [WinError 32] The process cannot "
          "access the file because it is being used by another process: 'C:\\\\Sites\\\\site\\\\.venv"
          "\\\\Lib\\\\site-packages\\\\cryptography\\\\hazmat\\\\bindings\\\\_rust.pyd'")


def test_only_a_locked_file_is_tried_again_a_bounded_number_of_times():
    bootstrap = load_bootstrap()
    assert bootstrap.locked_file_error(LOCKED)
    assert bootstrap.locked_file_error("OSError: [WinError 5] Access is denied: 'C:\\\\x.dll'")
    assert not bootstrap.locked_file_error("ERROR: No matching distribution found for django==9")

    def runs(*results):
        results = list(results)
        return lambda: results.pop(0)

    waits = []
    code, _, attempts = bootstrap.run_with_retries(runs((1, LOCKED), (1, LOCKED), (0, "")), 3, 5,
                                                   sleep=waits.append)
    assert (code, attempts, waits) == (0, 3, [5, 5])
    waits.clear()
    code, output, attempts = bootstrap.run_with_retries(runs(*[(1, LOCKED)] * 5), 3, 5, sleep=waits.append)
    assert (code, attempts, waits, output) == (1, 3, [5, 5], LOCKED)
    waits.clear()
    code, _, attempts = bootstrap.run_with_retries(runs((1, "no network")), 3, 5, sleep=waits.append)
    assert (code, attempts, waits) == (1, 1, [])


# Fails like pip on a locked file as many times as FAIL_TIMES says, counting in a file.
FLAKY_INSTALL = f"""
import os, sys
count_file = sys.argv[1]
count = int(open(count_file).read()) if os.path.exists(count_file) else 0
open(count_file, "w").write(str(count + 1))
if count < int(sys.argv[2]):
    sys.exit({LOCKED!r})
print("installed")
"""


def test_an_install_held_up_by_a_scanner_succeeds_on_a_later_attempt(tmp_path, monkeypatch, capsys):
    bootstrap = load_bootstrap()
    monkeypatch.setattr(bootstrap, "PIP_RETRY_WAIT", 0.1)
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY_INSTALL)
    bootstrap.install_with_retries([sys.executable, script, tmp_path / "count", "2"], "Installing")
    assert (tmp_path / "count").read_text() == "3"
    output = capsys.readouterr().out
    assert output.count("a file in .venv is held by another program (antivirus, EDR") == 2
    assert "installed" in output
    with pytest.raises(bootstrap.StepFailed) as failed:
        bootstrap.install_with_retries([sys.executable, script, tmp_path / "count2", "9"], "Installing")
    assert (tmp_path / "count2").read_text() == "3"
    message = str(failed.value)
    assert "3 times in a row" in message and "antivirus or EDR" in message and "WinError 5 or 32" in message
