"""``start_server.bat`` as a new user runs it: the project copied to a fresh folder whose path
has spaces and characters outside ASCII, started with a port and an option; the first run
prepares .venv, .env and the database, then the site answers and the banner shows the
option. Run by the Windows job of .github/workflows/ci.yml
(``python ci/start_server_bat_check.py``); elsewhere ``ci/windows.py`` runs
``start_server.sh`` the same way. Exits 0 when it worked, else 1.

GitHub sets CI=true, so a failure does not wait at "pause".
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CheckSuite, expect, status, wait_for  # noqa: E402
from windows import PROJECT_DIR, Windows, system  # noqa: E402
from windows_service_checks import free_port  # noqa: E402

# Spaces, an accented letter and a Cyrillic word: what a user's Documents folder may hold.
FOLDER_NAME = "Sites de démonstration/сайт копия"
# What a fresh checkout holds: nothing the first run makes.
NOT_COPIED = (".venv", ".git", ".env", "logs", "data", "staticfiles", "backups", "__pycache__", "*.sqlite3",
              ".server-*", ".pytest_cache", ".ruff_cache", ".hypothesis",
              ".requirements-installed", "pytest-report.xml")


class StartServerCheck(CheckSuite):
    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self.root = Path(tempfile.mkdtemp(prefix="start-server-"))
        self.process = None

    def fresh_folder_start(self) -> None:
        folder = self.root / FOLDER_NAME
        shutil.copytree(PROJECT_DIR, folder, ignore=shutil.ignore_patterns(*NOT_COPIED))
        port = free_port()
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("SERVER_", "DJANGO_", "VIRTUAL_ENV"))}
        env["CI"] = "true"
        log_path = self.root / "start.log"
        with open(log_path, "wb") as log:
            self.process = self.windows.start_batch(folder, [str(port), "--threads", "3"], env, log)
        answered = wait_for(lambda: status(port) == 200 or self.process.poll() is not None, 600, 1)
        output = log_path.read_text(encoding="utf-8", errors="replace")
        print(output[-5000:], flush=True)
        expect(answered and status(port) == 200, f"/healthz never answered 200 on port {port}")
        expect("3 threads x 1 process" in output, "the port and options did not reach the server")
        expect((folder / ".env").is_file(), "the first run made no .env")

    def cleanup(self) -> None:
        if self.process is not None:
            self.windows.kill_tree(self.process)
        shutil.rmtree(self.root, ignore_errors=True)

    def checks(self) -> list:
        return [("start_server.bat from a fresh folder with spaces and non-ASCII characters",
                 self.fresh_folder_start)]


def main(windows: Windows | None = None) -> int:
    return StartServerCheck(windows or system()).run()


if __name__ == "__main__":
    sys.exit(main())
