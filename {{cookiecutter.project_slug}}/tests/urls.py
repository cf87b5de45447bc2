from django.urls import include, path

from . import reload_views, views

urlpatterns = [
    path("__test__/block", views.block),
    path("__test__/hold", views.hold),
    path("__test__/record", views.record),
    path("__test__/upload-memory", views.upload_memory),
    path("__test__/stream", views.stream),
    path("__test__/stream-error", views.stream_error),
    path("__test__/stall-stream", views.stall_stream),
    path("__test__/file", views.big_file),
    path("__test__/echo", views.echo),
    path("__test__/form-fields", views.form_fields),
    path("__test__/whoami", views.whoami),
    path("__test__/user", views.user),
    path("__test__/environ", views.environ),
    path("__test__/environ/<path:rest>", views.environ),
    path("__test__/cookie", views.cookie),
    path("__test__/db-write", views.db_write),
    path("__test__/cache", views.cache_value),
    path("__test__/group", views.group),
    path("__test__/db-connection", views.db_connection),
    path("__test__/no-content", views.no_content),
    path("__test__/pipe", views.pipe_file),
    path("__test__/mark", views.mark),
    # Responses to clients that do not read, and the WSGI contract.
    path("__test__/finished-count", views.finished_count),
    path("__test__/big-page", views.big_page),
    path("__test__/system-exit", views.system_exit),
    path("__test__/not-modified", views.not_modified),
    path("__test__/code-version", reload_views.code_version),
    path("__test__/ask-to-be-replaced", reload_views.ask_to_be_replaced),
    path("__test__/view-error", views.view_error),
    path("", include("{{ cookiecutter.project_slug }}.urls")),
]
