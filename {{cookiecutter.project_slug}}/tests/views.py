"""Views for tests only (see tests/settings.py)."""

import hashlib
import os
import sys
import threading
import time
from pathlib import Path

from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.signals import request_finished
from django.db import connection, transaction
from django.http import (
    FileResponse,
    HttpResponse,
    HttpResponseNotModified,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt


def block(request):
    """Hold a worker thread, as a slow database query or API call would."""
    seconds = float(request.GET.get("seconds", "1"))
    time.sleep(seconds)
    return HttpResponse(f"slept {seconds}s on {threading.current_thread().name}\n")


def stall_stream(request):
    """A stream that sends its first part, then stalls ?seconds= before its last one."""
    seconds = float(request.GET.get("seconds", "10"))

    def produce():
        yield b"first part\n"
        time.sleep(seconds)
        yield b"late part\n"

    return StreamingHttpResponse(produce(), content_type="text/plain")


def hold(request):
    """Hold a worker thread while the file ?path= exists; ``<path>.started`` says it began."""
    path = Path(request.GET["path"])
    Path(f"{path}.started").touch()
    deadline = time.monotonic() + 60
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return HttpResponse(f"held on {threading.current_thread().name}\n")


def record(request):
    """Append "<tag> <wall-clock time>" to the file ?log= as the view starts, then sleep."""
    with open(request.GET["log"], "a", encoding="utf-8") as log:
        log.write(f"{request.GET['tag']} {time.time()}\n")
    time.sleep(float(request.GET.get("seconds", "0")))
    return HttpResponse(f"ran {request.GET['tag']}\n")


def resident_kib() -> int:
    """This process's resident memory (psutil: VmRSS on Linux, the working set on Windows)."""
    import psutil  # a test requirement, not the site's

    return psutil.Process().memory_info().rss // 1024


@csrf_exempt
def upload_memory(request):
    """Resident memory while the request body is held (before reading it), then its digest."""
    rss = resident_kib()
    digest, length = hashlib.sha256(), 0
    while block := request.read(65536):
        digest.update(block)
        length += len(block)
    return JsonResponse({"pid": os.getpid(), "rss_kib": rss, "length": length, "sha256": digest.hexdigest()})


def stream(request):
    chunks = int(request.GET.get("chunks", "5"))
    size = int(request.GET.get("size", "10"))
    delay = float(request.GET.get("delay", "0"))

    def produce():
        for index in range(chunks):
            if delay:
                time.sleep(delay)
            yield (str(index % 10) * size).encode()

    return StreamingHttpResponse(produce(), content_type="application/octet-stream")


def stream_error(request):
    def produce():
        yield b"first part\n"
        raise RuntimeError("broken while streaming (on purpose)")

    return StreamingHttpResponse(produce(), content_type="text/plain")


def big_file(request):
    """Serve the file named by TEST_FILE (the memory test makes a sparse 1 GB one)."""
    return FileResponse(open(os.environ["TEST_FILE"], "rb"), content_type="application/octet-stream")


@csrf_exempt
def echo(request):
    # Read in blocks: request.body refuses bodies past DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB).
    digest, length = hashlib.sha256(), 0
    while block := request.read(65536):
        digest.update(block)
        length += len(block)
    return JsonResponse({"length": length, "sha256": digest.hexdigest()})


@csrf_exempt
def form_fields(request):
    """How many fields and files of a posted form reached Django."""
    return JsonResponse({"fields": sum(len(values) for _, values in request.POST.lists()),
                         "files": sum(len(files) for _, files in request.FILES.lists())})


@csrf_exempt
def environ(request, rest=""):
    """The WSGI environ the server built (its text and flag entries), the path Django made
    of it and the body."""
    meta = {key: value for key, value in request.META.items() if isinstance(value, (str, bool, int))}
    return JsonResponse({**meta, "path": request.path, "body": request.body.decode("latin-1")})


def user(request):
    """Who Django says is signed in, what the server passed as REMOTE_USER, and the Windows
    groups it passed (None: none in the environ; ``group_keys``: every environ key that
    speaks of groups, so that a client's header posing as them shows); and that user's Django
    groups and rights as the database has them once the middleware ran (read again, not
    request.user's copy)."""
    from django.contrib.auth import get_user_model

    from tornado_wsgi_server.windows_auth import GROUPS_KEY

    name = request.user.get_username() if request.user.is_authenticated else None
    groups = request.META.get(GROUPS_KEY)
    stored = get_user_model().objects.filter(username=name).first() if name else None
    return JsonResponse({
        "user": name,
        "remote_user": request.META.get("REMOTE_USER"),
        "users_with_that_name": get_user_model().objects.filter(username=name).count() if name else 0,
        "django_groups": sorted(stored.groups.values_list("name", flat=True)) if stored else [],
        "is_staff": bool(stored and stored.is_staff),
        "is_superuser": bool(stored and stored.is_superuser),
        "headers": sorted(key for key in request.META if "USER" in key and key != "HTTP_USER_AGENT"),
        "groups": None if groups is None else list(groups),
        "groups_type": type(groups).__name__,
        "group_keys": sorted(key for key in request.META if "GROUP" in key.upper()),
    })


def whoami(request):
    return JsonResponse({
        "pid": os.getpid(),
        "remote_addr": request.META.get("REMOTE_ADDR"),
        "scheme": request.scheme,
        "is_secure": request.is_secure(),
        "host": request.get_host(),
        "port": request.get_port(),
    })


def cookie(request):
    response = HttpResponse("cookie set\n")
    response.set_cookie("flavour", "ginger", httponly=True, samesite="Lax")
    response.set_cookie("second", "two")
    return response


@csrf_exempt
def db_write(request):
    """One small write transaction, for concurrent-write tests."""
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name="counter")
        Group.objects.filter(pk=group.pk).update(name="counter")
    return HttpResponse("written\n")


@csrf_exempt
def cache_value(request):
    """POST stores ?value= under ?key=, GET reads it: is the cache shared between servers?"""
    key = request.GET["key"]
    if request.method == "POST":
        cache.set(key, request.GET.get("value", ""), 300)
    return JsonResponse({"key": key, "value": cache.get(key), "pid": os.getpid()})


@csrf_exempt
def group(request):
    """POST creates the Group ?name=, GET says whether it exists: is the database shared?"""
    name = request.GET["name"]
    if request.method == "POST":
        Group.objects.get_or_create(name=name)
    return JsonResponse({"name": name, "exists": Group.objects.filter(name=name).exists(),
                         "pid": os.getpid()})


def db_connection(request):
    """Which database connection served this request (persistent connections, health checks)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid(), current_database()")
            backend_pid, database = cursor.fetchone()
        else:
            cursor.execute("SELECT 1")
            backend_pid, database = None, str(connection.settings_dict["NAME"])
    return JsonResponse({
        "vendor": connection.vendor,
        "backend_pid": backend_pid,
        "database": database,
        "connection_id": id(connection.connection),
        "thread": threading.current_thread().name,
        "pid": os.getpid(),
    })


def no_content(request):
    """A 204: Django's CommonMiddleware gives it a Content-Length, which must not go out."""
    return HttpResponse(status=204)


def pipe_file(request):
    """A FileResponse over a pipe: reads come back short long before the end."""
    read_end, write_end = os.pipe()

    def produce():
        with os.fdopen(write_end, "wb", buffering=0) as pipe:
            for _ in range(5):
                pipe.write(b"p" * 1000)
                time.sleep(0.05)

    threading.Thread(target=produce, daemon=True).start()
    return FileResponse(os.fdopen(read_end, "rb", buffering=0), content_type="application/octet-stream")


@csrf_exempt
def mark(request):
    """Say in the server's output that the application ran this request (?name=)."""
    print(f"app ran mark:{request.GET.get('name', '')}", file=sys.stderr, flush=True)
    return HttpResponse("marked\n")
# --- Responses to clients that do not read, and the WSGI contract (test_streaming, test_errors)

FINISHED = {"count": 0}


def count_finished(sender, **kwargs):
    FINISHED["count"] += 1


# A receiver of the project's keeps static files off the event loop (static_files.py); the
# servers of test_static_files.py (TEST_PLAIN_WSGI) want them on it, and count nothing.
if os.environ.get("TEST_PLAIN_WSGI") != "1":
    request_finished.connect(count_finished)


def finished_count(request):
    """How many times request_finished fired: each response's close() fires it once."""
    return JsonResponse({"finished": FINISHED["count"]})


def big_page(request):
    """A large ordinary HttpResponse (?size= bytes), sent whole from the event loop."""
    return HttpResponse(b"x" * int(request.GET.get("size", str(20 * 1024 * 1024))),
                        content_type="application/octet-stream")


def not_modified(request):
    """A 304 from a view: Django's CommonMiddleware gives it ``Content-Length: 0``."""
    return HttpResponseNotModified()


def system_exit(request):
    """A view (or a library it calls) that calls sys.exit(): Django does not catch it."""
    sys.exit(3)


def view_error(request):
    """A view that fails: a 500 that Django logs and mails to the admins."""
    raise RuntimeError("view failed on purpose")


@csrf_exempt
def media_upload(request):
    """Save the uploaded "file" with the project's default storage (MEDIA_ROOT), as a
    FileField would; answers the stored name and its URL."""
    from django.core.files.storage import default_storage

    upload = request.FILES["file"]
    name = default_storage.save(request.POST.get("name") or upload.name, upload)
    return JsonResponse({"name": name, "url": default_storage.url(name)})


@csrf_exempt
def send_test_mail(request):
    """Send one e-mail with the project's mail settings, as a password reset would."""
    from django.core.mail import send_mail

    sent = send_mail(request.POST["subject"], "The body.\n", None, [request.POST["to"]])
    return JsonResponse({"sent": sent})
