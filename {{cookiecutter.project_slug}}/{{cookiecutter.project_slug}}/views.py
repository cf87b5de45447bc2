import logging

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe


@require_safe
def home(request):
    return render(request, "home.html", {"project_name": settings.PROJECT_NAME})


@never_cache
@require_safe
def healthz(request):
    """Liveness for load balancers and service monitors: 200 while the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any database failure means "not healthy"
        # The detail (host names, user names, paths) goes to the log, not to whoever asks.
        logging.getLogger(__name__).warning("Health check: the database does not answer", exc_info=True)
        return JsonResponse({"status": "error"}, status=503)
    return HttpResponse("ok", content_type="text/plain")


@never_cache
@require_safe
def windows_signon(request):
    """Where the server signs people on with Windows (SERVER_WINDOWS_AUTH=paths): by the
    time Django runs, the user is signed in; back to where they came from."""
    if not request.user.is_authenticated:
        return HttpResponseForbidden("Windows sign-on is done by the server (SERVER_WINDOWS_AUTH=paths).\n",
                                     content_type="text/plain")
    target = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "/"
    return redirect(target)
