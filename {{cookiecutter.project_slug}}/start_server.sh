#!/bin/sh
# Start {{ cookiecutter.project_name }}: the first run prepares .venv, the database and
# static files (see bootstrap.py), later runs start in seconds.
#   ./start_server.sh                 serve on the configured port ({{ cookiecutter.port }})
#   ./start_server.sh 8080            serve on port 8080
#   ./start_server.sh 8080 --workers 2    any further tornado_server.py options
# BOOTSTRAP_PYTHON=/path/to/python3.12 chooses the Python that creates .venv.
set -u
cd "$(dirname "$0")" || { echo "ERROR: cannot change to the folder of $0" >&2; exit 1; }

python_ok() {
    "$@" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1
}

PYTHON=""
if [ -n "${BOOTSTRAP_PYTHON:-}" ]; then
    python_ok "$BOOTSTRAP_PYTHON" && PYTHON=$BOOTSTRAP_PYTHON
else
    for candidate in python3 python; do
        if python_ok "$candidate"; then PYTHON=$candidate; break; fi
    done
fi
if [ -z "$PYTHON" ]; then
    echo "ERROR: Python 3.10 or newer was not found${BOOTSTRAP_PYTHON:+ at $BOOTSTRAP_PYTHON}." >&2
    echo "       Install it (https://www.python.org/downloads/ or your package manager) and run ./start_server.sh again." >&2
    exit 1
fi
echo "==> Using $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

if ! "$PYTHON" bootstrap.py; then
    echo "ERROR: setup did not finish; fix the problem above and run ./start_server.sh again." >&2
    exit 1
fi

# A first argument that is not an option is the port.
if [ $# -gt 0 ]; then
    case "$1" in
        -*) ;;
        *) set -- --port "$@" ;;
    esac
fi
echo "==> Starting the server"
exec .venv/bin/python tornado_server.py "$@"
