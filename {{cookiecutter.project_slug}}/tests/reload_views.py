"""Views for the reload tests: code that a test changes under a running server.

The file named by TEST_CODE_FILE is run as part of this module when a process imports it,
as a real edit of a .py file would be: a new worker sees the new text, or fails to import.
"""

import os
from pathlib import Path

from django.http import HttpResponse, JsonResponse

CODE_VERSION = "none"
if os.environ.get("TEST_CODE_FILE"):
    _path = os.environ["TEST_CODE_FILE"]
    exec(compile(Path(_path).read_text(encoding="utf-8"), _path, "exec"))  # noqa: S102


def code_version(request):
    return HttpResponse(f"{CODE_VERSION} {os.getpid()}", content_type="text/plain")


def ask_to_be_replaced(request):
    """What the request watchdog does when every thread of a worker is stuck."""
    from tornado_wsgi_server.supervisor import ask_to_be_replaced as ask

    return JsonResponse({"pid": os.getpid(), "asked": ask(request.GET.get("reason", "test"))})
