from django.contrib import admin
from django.urls import include, path

from tornado_wsgi_server.media_files import media_urls

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/server-status/", include("tornado_wsgi_server.status.urls")),
    path("admin/", admin.site.urls),
    # Uploaded files (MEDIA_ROOT), checked and served safely: docs/server.md, "Uploaded files".
    *media_urls(),
]
