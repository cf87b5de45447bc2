#!/bin/sh
# Update this project to the newest version of its template (see docs/updating.md), keeping
# your changes; conflicts are listed and the exit code is 1. Then run ./upgrade.sh.
#   ./update.sh                      from the template recorded in .cruft.json
#   ./update.sh --template URL-OR-FOLDER --checkout REF
set -u
cd "$(dirname "$0")" || { echo "ERROR: cannot change to the folder of $0" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
    echo "ERROR: $(pwd)/.venv does not exist yet. Run ./start_server.sh once first." >&2
    exit 1
fi
exec .venv/bin/python update.py "$@"
