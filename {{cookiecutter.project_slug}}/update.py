"""Update this project to the newest version of its template, keeping your changes:
update.bat / ./update.sh (docs/updating.md). The work is done by
tornado_wsgi_server/updating.py (standard library only).
"""

import sys
from pathlib import Path

# Also when run from another folder (a new bake's update.py --project OLD_PROJECT).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tornado_wsgi_server.updating import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
