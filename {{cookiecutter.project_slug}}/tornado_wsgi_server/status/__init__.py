"""The admin's live server status page: a small Django app that ships with the server.

Add ``"tornado_wsgi_server.status"`` to INSTALLED_APPS (before ``django.contrib.admin``, for
the link on the admin index) and include ``tornado_wsgi_server.status.urls``; staff only.
"""
