"""``python tornado_server.py``: serve the project, or manage its Windows service.

    tornado_server.py [options]             serve (one process, or --workers N)
    tornado_server.py --version             this server package's version (CHANGELOG.md)
    tornado_server.py reload [--port P]     replace the running server's workers (new code)
    tornado_server.py status [--json] [--port P]  state, addresses, uptime, last error (exit 0: running, 3: not)
    tornado_server.py service COMMAND ...   install/start/stop/reload/remove/status/run the service
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

from .logs import log_start_failure, start_failure_log_file
from .options import ServerOptions, load_options, read_dotenv
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
    if argv[:1] == ["status"]:
        from . import server_status

        return server_status.main(project, lambda args: load_options(project, args), argv[1:])
    if argv[:1] == ["reload"]:
        from .control import run_client

        return run_client(project, load_options(project, argv[1:]), "reload")
    options = options_or_exit(project, argv)
    if options.log_file and not Path(options.log_file).is_absolute():
        # .env's SERVER_LOG_FILE=logs/server.log means the project's folder, wherever the
        # server was started from (as for the Windows service).
        options.log_file = str(project.directory / options.log_file)
    try:
        check_tornado()
    except SystemExit as exc:
        log_start_failure(options.log_file, exc)
        raise
    disable_quick_edit()  # a click in the console window must not freeze the site
    if options.workers > 1:
        return serve_workers(project, options)
    return serve_single(project, options)


def options_or_exit(project: Project, argv: list[str]) -> ServerOptions:
    """The options; a bad one (or a bad value in .env) ends the start with argparse's message,
    which goes to the log file too."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return load_options(project, argv)
    except SystemExit as exc:
        said = errors.getvalue().strip().splitlines()
        if exc.code:
            log_start_failure(start_failure_log_file(project.directory, service=False),
                              SystemExit(said[-1].partition(" error: ")[2] or said[-1] if said
                                         else f"bad server options (exit {exc.code})"))
        raise
    finally:
        sys.stderr.write(errors.getvalue())
