"""Uploaded files (MEDIA_ROOT at MEDIA_URL), served by Django on the worker threads.

Unlike static files, which WhiteNoise lists once at start-up, uploads come and go while the
site runs, so each request looks on disk: a file saved a moment ago is served at once. What
WhiteNoise's fixed table gives static files for free is checked here instead:

- the path: only plain names under MEDIA_ROOT. Refused (404, as for a missing file): empty
  segments (``/media/`` itself: no directory listing), ``.`` and ``..`` (also percent-encoded:
  the server decodes the target first), names starting with a dot, backslashes, and what
  Windows would read as something other than the name: ``:`` (drive letters, alternate data
  streams ``file.html::$DATA``), a trailing dot or space (``file.html.`` opens ``file.html``),
  ``~`` and a digit (8.3 short names such as ``SECRET~1.HTM``), device names (``CON``,
  ``NUL.txt``, ``COM1``), wildcards and control characters. A symbolic link or junction that
  leads out of MEDIA_ROOT is refused too. The rules are the same on every system, so a site
  moved between Linux and Windows serves the same files.
- the answer: WhiteNoise's own responder (``StaticFile``), so byte ranges, ``If-None-Match``
  and ``If-Modified-Since`` work as for static files, with the content type from WhiteNoise's
  table (never the Windows registry) and ``X-Content-Type-Options: nosniff``.
- the browser never renders what a user uploaded as a page of this site: only types that
  cannot run script (pictures, audio, video, plain text, PDF) are shown inline; everything
  else (HTML, SVG, XML, scripts, unknown types) comes with ``Content-Disposition: attachment``
  and is downloaded. Every answer but PDF (which browsers refuse to show sandboxed) also has
  ``Content-Security-Policy: sandbox``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Types a browser shows without running anything of the file's: inline. The rest download.
INLINE_TYPES = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
    "image/x-icon", "image/vnd.microsoft.icon", "image/tiff",
    "text/plain", "application/pdf",
})
INLINE_PREFIXES = ("audio/", "video/")
# Users replace and delete uploads: browsers keep a copy but ask (304) before each use.
CACHE_CONTROL = "no-cache"
MAX_PATH = 1024

_UNSAFE_CHARACTERS = re.compile(r'[\x00-\x1f\x7f\\:*?"<>|]')
_SHORT_NAME = re.compile(r"~[0-9]")
_DEVICE_NAME = re.compile(r"(?:CON|PRN|AUX|NUL|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3]|CONIN\$|CONOUT\$)",
                          re.IGNORECASE)


def safe_segment(segment: str) -> bool:
    """``segment`` (one name between slashes) means the same file on Linux and Windows and
    can only name something inside its folder."""
    return bool(
        segment
        and not segment.startswith(".")
        and not segment.endswith((".", " "))
        and not _UNSAFE_CHARACTERS.search(segment)
        and not _SHORT_NAME.search(segment)
        # Windows opens the device for CON, con.txt and "con .txt" alike.
        and not _DEVICE_NAME.fullmatch(segment.split(".", 1)[0].rstrip(" "))
    )


def media_file(root: str | Path, url_path: str) -> str | None:
    """The regular file under ``root`` that ``url_path`` (the part of the path after
    MEDIA_URL, already percent-decoded) names, or None when it is refused or missing."""
    if not url_path or len(url_path) > MAX_PATH:
        return None
    segments = url_path.split("/")
    if not all(safe_segment(segment) for segment in segments):
        return None
    real_root = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(real_root, *segments))
    if os.path.commonpath([real_root, candidate]) != real_root or candidate == real_root:
        return None  # a link that leads elsewhere
    return candidate if os.path.isfile(candidate) else None


def response_headers(url_path: str, media_types) -> list[tuple[str, str]]:
    """Content type and the headers that keep an upload from acting as a page of the site."""
    from django.utils.http import content_disposition_header

    content_type = media_types.get_type(url_path)
    headers = [
        ("Content-Type", content_type + ("; charset=utf-8" if content_type.startswith("text/") else "")),
        ("Cache-Control", CACHE_CONTROL),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if content_type != "application/pdf":
        headers.append(("Content-Security-Policy", "sandbox"))
    if not (content_type in INLINE_TYPES or content_type.startswith(INLINE_PREFIXES)):
        name = url_path.rsplit("/", 1)[-1]
        headers.append(("Content-Disposition", content_disposition_header(True, name)))
    return headers


_media_types = None


def serve_media(request, path: str):
    """The view: the file ``path`` names under MEDIA_ROOT, or 404."""
    from django.conf import settings
    from django.http import Http404
    from whitenoise.media_types import MediaTypes
    from whitenoise.middleware import WhiteNoiseMiddleware
    from whitenoise.responders import NotARegularFileError, StaticFile

    global _media_types
    if _media_types is None:
        _media_types = MediaTypes()
    found = media_file(settings.MEDIA_ROOT, path)
    if found is None:
        raise Http404("No such file")
    try:
        static_file = StaticFile(found, response_headers(path, _media_types))
        return WhiteNoiseMiddleware.serve(static_file, request)
    except (NotARegularFileError, FileNotFoundError):
        raise Http404("No such file") from None  # deleted since it was looked up


def media_urls() -> list:
    """The URL pattern that serves MEDIA_ROOT at MEDIA_URL (none when MEDIA_URL names
    another host, a CDN or an IIS site of its own)."""
    from django.conf import settings
    from django.urls import re_path

    prefix = settings.MEDIA_URL or ""
    if not prefix or "://" in prefix or prefix.startswith("//"):
        return []
    return [re_path(rf"^{re.escape(prefix.lstrip('/'))}(?P<path>.*)\Z", serve_media, name="media")]


def __getattr__(name: str):
    """``include("tornado_wsgi_server.media_files")`` in urls.py: the patterns are made when
    the URLconf loads, once the settings are ready (and no import line to merge on updates)."""
    if name == "urlpatterns":
        return media_urls()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
