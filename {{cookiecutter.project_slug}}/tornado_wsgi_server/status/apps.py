from django.apps import AppConfig


class StatusConfig(AppConfig):
    """The server's Django app: its status page, and the server's own system checks."""

    name = "tornado_wsgi_server.status"
    label = "tornado_status"
    verbose_name = "Server status"

    def ready(self) -> None:
        from django.core import checks

        from ..windows_groups import check_groups_can_arrive, check_user_format

        checks.register(check_groups_can_arrive)
        checks.register(check_user_format)
