from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/server-status/", include("tornado_wsgi_server.status.urls")),
    path("admin/", admin.site.urls),
]
