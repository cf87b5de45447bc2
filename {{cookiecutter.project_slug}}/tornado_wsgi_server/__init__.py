"""tornado_wsgi_server: Django (any WSGI application) on Tornado, on a thread pool.

The server this project runs, started by ``python tornado_server.py``. You do not edit it:
upgrading the server means replacing this folder with the one from a newer bake.
"""

__version__ = "1.0.0"
