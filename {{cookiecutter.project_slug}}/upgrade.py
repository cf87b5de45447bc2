"""Upgrade the running site to the code now in this folder: upgrade.bat / ./upgrade.sh.

    upgrade.py                   prepare the new code, then switch the running server to it
    upgrade.py --prepare-only    prepare only; restart the server yourself
    upgrade.py --no-backup       skip the backup before migrating (then a failed migration is
                                 undone by reversing it, which not every migration allows)
    upgrade.py --port P          reload only the server on port P (default: every server
                                 running from this folder)

Prepares beside the running server, which keeps serving the old code: requirements (only when
requirements.txt changed), a database backup (manage.py backup), migrations, static files.
Then the switch: ``tornado_server.py reload`` (new workers, no dropped request), else a drained
restart of the Windows service. When a step fails, what it changed is undone: the migrations
it applied are reversed (or, if the service had to stop for pip, the database is restored from
the backup, the previous packages put back, and the service started again).

Exit codes: 0 upgraded (or prepared, with --prepare-only); 1 failed, everything undone, the
site runs as before; 2 bad input, nothing changed; 3 prepared but not switched (no running
server could be reloaded: restart it); 4 failed and could not be undone (the message says
what to do); 130 interrupted.
"""

import sys

from tornado_wsgi_server.upgrading import main

if __name__ == "__main__":
    sys.exit(main())
