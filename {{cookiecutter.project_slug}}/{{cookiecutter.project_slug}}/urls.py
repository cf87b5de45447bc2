from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/server-status/", include("tornado_wsgi_server.status.urls")),
    path("admin/", admin.site.urls),
    # Uploaded files (MEDIA_ROOT), checked and served safely: docs/server.md, "Uploaded files".
    path("", include("tornado_wsgi_server.media_files")),
]

if settings.WINDOWS_AUTH == "paths":
    # The server signs people on at this path (SERVER_WINDOWS_AUTH_PATHS); the admin's login
    # page links to it.
    urlpatterns.insert(0, path("accounts/windows/", views.windows_signon, name="windows-signon"))
    admin.site.login_template = "admin/login_with_windows.html"
