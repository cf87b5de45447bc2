"""Staff-only views: the status page, and its data fetched from this server's metrics listener.

The numbers live in the supervisor (or the single server process): the data view asks its
listener on loopback for ``/status.json``, so every worker's counts are on the page.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from ..metrics_hub import status_url

# Straight to the listener on this machine, whatever proxy the environment (or, on Windows,
# the registry) names for outgoing HTTP.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@staff_member_required
@never_cache
def status_page(request):
    context = {**admin.site.each_context(request), "title": "Server status",
               "metrics_on": status_url() is not None}
    return render(request, "tornado_status/status.html", context)


@staff_member_required
@never_cache
def status_data(request):
    url = status_url()
    if url is None:
        return JsonResponse({"enabled": False, "reason": "Metrics are off: start the server with "
                             "--metrics 9100 (or SERVER_METRICS=9100) to see them here."})
    try:
        with _DIRECT.open(url, timeout=3) as answer:
            data = json.load(answer)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        return JsonResponse({"enabled": False, "reason": f"The metrics listener at {url} did not answer: {exc}"},
                            status=502)
    data["enabled"] = True
    return JsonResponse(data)
