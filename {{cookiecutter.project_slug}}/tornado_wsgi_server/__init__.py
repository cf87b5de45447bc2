"""tornado_wsgi_server: Django (any WSGI application) on Tornado, on a thread pool.

The server this project runs, started by ``python tornado_server.py``. You do not edit it:
the project's update command (update.bat / ./update.sh) brings the template's newest version
of this folder; CHANGELOG.md says what changed in each version and what needs action.
"""

__version__ = "1.2.0"
