#!/usr/bin/env python
"""Start {{ cookiecutter.project_name }}: Django on Tornado, on a thread pool, ready for production.

    python tornado_server.py                  # http://127.0.0.1:{{ cookiecutter.port }}/
    python tornado_server.py --help           # every option, with its environment variable
    python tornado_server.py service install  # the Windows service (see service.bat)

Every option is a flag and an environment variable (SERVER_PORT...), also read from .env.
The server is the tornado_wsgi_server package beside this file: you do not edit it (see
"Upgrading the server" in docs/development.md). This file only says which project it serves; your
own Tornado handlers go in {{ cookiecutter.project_slug }}/realtime.py.
"""

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from tornado_wsgi_server.project import Project  # noqa: E402

PROJECT = Project(
    name={{ cookiecutter.project_name | jsonify }},
    slug="{{ cookiecutter.project_slug }}",
    directory=PROJECT_DIR,
    settings="{{ cookiecutter.project_slug }}.settings",
    port={{ cookiecutter.port }},
    threads={{ cookiecutter.threads }},
)

if __name__ == "__main__":
    from tornado_wsgi_server.cli import main

    sys.exit(main(PROJECT))
