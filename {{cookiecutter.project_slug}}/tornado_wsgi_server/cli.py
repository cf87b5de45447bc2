"""``python tornado_server.py``: serve the project, or manage its Windows service.

    tornado_server.py [options]             serve (one process, or --workers N)
    tornado_server.py --version             this server package's version (CHANGELOG.md)
    tornado_server.py reload [--port P]     replace the running server's workers (new code)
    tornado_server.py status [--port P]     the running server's processes
    tornado_server.py service COMMAND ...   install/start/stop/reload/remove/status/run the service
"""

from __future__ import annotations

import sys
from pathlib import Path

from .options import load_options, read_dotenv
from .process import serve_single
from .project import Project
from .supervisor import serve_workers
from .tornado_check import check_tornado
from .windows_admin import disable_quick_edit


def main(project: Project, argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if str(project.directory) not in sys.path:
        sys.path.insert(0, str(project.directory))
    if argv[:1] == ["service"]:
        from .windows_service import main as service_main

        return service_main(project, argv[1:])
    read_dotenv(project.dotenv)
    if argv[:1] in (["reload"], ["status"]):
        from .control import run_client

        return run_client(project, load_options(project, argv[1:]), argv[0])
    options = load_options(project, argv)
    check_tornado()
    if options.log_file and not Path(options.log_file).is_absolute():
        # .env's SERVER_LOG_FILE=logs/server.log means the project's folder, wherever the
        # server was started from (as for the Windows service).
        options.log_file = str(project.directory / options.log_file)
    disable_quick_edit()  # a click in the console window must not freeze the site
    if options.workers > 1:
        return serve_workers(project, options)
    return serve_single(project, options)
