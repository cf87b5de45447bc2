"""Which project the server serves: its name, folder, settings module and defaults.

The project's ``tornado_server.py`` describes itself with a ``Project``; code that starts
without it (the Windows service host) finds it with ``load_project()``.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

ENTRY_POINT = "tornado_server.py"


@dataclass(frozen=True)
class Project:
    name: str  # shown in the start-up banner and the service's display name
    slug: str  # the Django package; also the Windows service name
    directory: Path  # the folder holding manage.py, .env and tornado_server.py
    settings: str  # default Django settings module (DJANGO_SETTINGS_MODULE wins)
    port: int = 8000
    threads: int = 8

    @property
    def dotenv(self) -> Path:
        return self.directory / ".env"

    @property
    def data_dir(self) -> Path:
        """Where the server writes while it runs (with ``logs``): the rest of the folder may
        be read-only to the account that runs it."""
        return self.directory / "data"


def load_project(directory: Path) -> Project:
    """The ``PROJECT`` that ``directory/tornado_server.py`` defines."""
    directory = Path(directory).resolve()
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    path = directory / ENTRY_POINT
    spec = importlib.util.spec_from_file_location("tornado_server", path)
    if spec is None or not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it says which project to serve")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    project = getattr(module, "PROJECT", None)
    if not isinstance(project, Project):
        raise TypeError(f"{path} must define PROJECT = Project(...)")
    return project
