"""tornado_wsgi_server: Django (any WSGI application) on Tornado, on a thread pool.

The server this project runs. You do not edit it: your code lives in your Django package,
and upgrading the server means replacing this folder with the one from a newer bake.
Start it with ``python tornado_server.py`` in the project folder.
"""

__version__ = "1.0.0"
