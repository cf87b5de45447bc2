from django.apps import AppConfig


class StatusConfig(AppConfig):
    name = "tornado_wsgi_server.status"
    label = "tornado_status"
    verbose_name = "Server status"
