"""Prepare the project to run: .env, .venv, requirements, database, static files.

start_server.bat and start_server.sh run this with any Python they find, then start
tornado_server.py with the virtual environment's Python. The work is done by
tornado_wsgi_server/bootstrap.py (standard library only: .venv may not exist yet).
"""

import sys

if sys.version_info < (3, 10):  # noqa: UP036  (before importing code an older Python cannot read)
    sys.stderr.write(f"ERROR: Python 3.10 or newer is needed; this is {sys.version.split()[0]} "
                     f"({sys.executable}). Install it from https://www.python.org/downloads/\n")
    sys.exit(1)

from tornado_wsgi_server.bootstrap import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
