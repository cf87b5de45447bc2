#!/bin/sh
# Upgrade the running site to the code now in this folder (see README.md, "Upgrades"):
# requirements when requirements.txt changed, migrations, static files, then a reload.
#   ./upgrade.sh                 prepare and switch
#   ./upgrade.sh --prepare-only  prepare only; restart the server yourself
set -u
cd "$(dirname "$0")" || { echo "ERROR: cannot change to the folder of $0" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
    echo "ERROR: $(pwd)/.venv does not exist yet. Run ./start_server.sh once first." >&2
    exit 1
fi
exec .venv/bin/python upgrade.py "$@"
