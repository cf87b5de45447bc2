"""start_server.sh as a user runs it, checked with a real browser."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpers import clean_env, free_port, main_python, need
from png import hex_colour, read_png

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),  # the first start makes the venv: up to 420 s, then the checks
    pytest.mark.skipif(sys.platform == "win32", reason="start_server.sh is for Linux and macOS"),
]

READY = "is running at"
ACCENT = hex_colour("#0b6e4f")  # --accent in static/css/site.css
PAPER = hex_colour("#f6f8f7")  # --paper
# Django admin's header: --header-bg in the light and the dark colour scheme.
ADMIN_HEADER = [hex_colour("#417690"), hex_colour("#264b5d")]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class StartedServer:
    def __init__(self, project: Path, port: int, env: dict, log: Path, cwd: Path | None = None,
                 options: tuple = ()) -> None:
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.started = time.monotonic()
        self.handle = log.open("wb")
        # A session of its own: stopping it is Ctrl+C in a terminal, sent to the process group.
        # From another folder the script is named by its full path, as a file manager would.
        script = "./start_server.sh" if cwd is None else str(project / "start_server.sh")
        self.process = subprocess.Popen(
            [script, str(port), *options], cwd=cwd or project, env=env, stdin=subprocess.DEVNULL,
            stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_bytes().decode("utf-8", "replace")

    def wait_ready(self, timeout: float) -> float:
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if READY in self.output():
                return time.monotonic() - self.started
            if self.process.poll() is not None:
                pytest.fail(f"start_server.sh exited with {self.process.returncode}:\n{self.output()}")
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"start_server.sh not ready in {timeout}s:\n{self.output()}")

    def interrupt(self, timeout: float = 60) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"server did not stop on SIGINT in {timeout}s:\n{self.output()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.handle.close()


def screenshot(chromium: str, url: str, out: Path, profile: Path) -> None:
    completed = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-color-profile=srgb",
         f"--user-data-dir={profile}", "--window-size=800,600", f"--screenshot={out}", url],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    assert out.is_file(), f"no screenshot of {url}:\n{completed.stdout}\n{completed.stderr}"


def test_start_server_sh_serves_a_styled_site(cookies, tmp_path):
    chromium = find_chromium()
    need(chromium is not None, "Chromium not installed (apt-get install chromium)")
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    # A folder name with spaces, and started from somewhere else.
    project = tmp_path / "my sites" / result.project_path.name
    project.parent.mkdir()
    shutil.move(result.project_path, project)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(BOOTSTRAP_PYTHON=main_python())

    port = free_port()
    server = StartedServer(project, port, env, tmp_path / "first.log", cwd=elsewhere)
    try:
        server.wait_ready(timeout=420)
        first = server.output()
        assert "Installing requirements" in first
        assert f"127.0.0.1:{port}" in first

        home = tmp_path / "home.png"
        screenshot(chromium, server.url + "/", home, tmp_path / "profile")
        image = read_png(home)
        band = (0, 0, image.width, 12)
        band_pixels = image.width * 12
        assert image.count(ACCENT, box=band) > 0.9 * band_pixels, "header is not the accent colour"
        below = (0, image.height - 40, image.width, image.height)
        assert image.count(PAPER, tolerance=2, box=below) > 0.9 * image.width * 40, \
            "page background is not the stylesheet's"

        login = tmp_path / "admin-login.png"
        screenshot(chromium, server.url + "/admin/login/", login, tmp_path / "profile")
        image = read_png(login)
        header = max(image.count(colour) for colour in ADMIN_HEADER)
        assert header > 2000, "the admin login page is not styled (no admin header colour)"

        log = server.output()
        static_hits = re.findall(r'"GET (/static/\S+) HTTP/1.1" (\d+)', log)
        assert any(path.startswith("/static/css/site.") and code == "200" for path, code in static_hits), log
        assert any(path.startswith("/static/admin/css/") and code == "200" for path, code in static_hits), log
        assert re.search(r'"GET /admin/login/ HTTP/1.1" 200', log), log
    finally:
        code = server.interrupt() if server.process.poll() is None else server.process.returncode
        server.kill()
    assert code == 0, server.output()

    # A second start reuses .venv and the installed requirements. The port comes first and
    # what follows goes to tornado_server.py: the banner shows both (the bake says 8 threads).
    port = free_port()
    again = StartedServer(project, port, env, tmp_path / "second.log",
                          options=("--workers", "2", "--threads", "3"))
    try:
        took = again.wait_ready(timeout=60)
        second = again.output()
        assert "Installing requirements" not in second
        assert took < 30, f"second start took {took:.1f}s"
        assert f"is running at http://127.0.0.1:{port}/ - 3 threads x 2 processes." in second, second
        response = httpx.get(again.url + "/", timeout=30)
        assert response.status_code == 200
    finally:
        code = again.interrupt() if again.process.poll() is None else again.process.returncode
        again.kill()
    assert code == 0, again.output()
