"""Uploaded files (MEDIA_ROOT) through the real server: an upload is served at once, with
ranges and revalidation; paths that could reach anything else are refused; what a browser
would run (HTML, SVG) is downloaded, never shown as a page of the site."""

from __future__ import annotations

import os
import socket
import sys
import time

import httpx
import pytest

from .server.test_status_page import browser  # noqa: F401  (the headless Chromium fixture)

SECRET = b"SECRET-OUTSIDE-MEDIA"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@pytest.fixture(scope="module")
def media_site(start_module_server, server_env, tmp_path_factory):
    """A server whose MEDIA_ROOT holds a few files, beside a secret one outside it."""
    base = tmp_path_factory.mktemp("media_site")
    media = base / "media"
    (media / "sub").mkdir(parents=True)
    (base / "secret.txt").write_bytes(SECRET)
    (media / "ok.txt").write_bytes(b"plain text\n")
    (media / "sub" / "inner.png").write_bytes(PNG)
    # Names that must not be served anywhere. Linux lets them exist as files, so there the
    # refusal is seen with a file behind the name; Windows would open a device or drop the
    # trailing dot instead.
    names = [".hidden", "SECRET~1.TXT"]
    if sys.platform != "win32":
        names += ["con.txt", "NUL", "trail.txt.", "trail.txt "]
    for name in names:
        (media / name).write_bytes(SECRET)
    if hasattr(os, "symlink"):
        try:
            (media / "link.txt").symlink_to(base / "secret.txt")
            (media / "linked-folder").symlink_to(base, target_is_directory=True)
        except OSError:  # Windows without the right to make links
            pass
    server = start_module_server(env={"DJANGO_MEDIA_ROOT": str(media)})
    return server, media


def raw_get(port: int, target: str, headers: str = "") -> tuple[int, bytes, bytes]:
    """GET ``target`` exactly as written (no client normalises its dots): status, head, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
                     .encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def upload(url: str, name: str, content: bytes) -> str:
    response = httpx.post(f"{url}/__test__/media-upload", files={"file": (name, content)}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["url"]


def test_an_upload_is_served_at_once_with_ranges_and_revalidation(media_site):
    server, media = media_site
    url = upload(server.url, "photo.png", PNG)  # the server was started before the upload
    assert url.startswith("/media/") and (media / url.removeprefix("/media/")).is_file()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.get(url)
        assert response.status_code == 200 and response.content == PNG
        assert response.headers["content-type"] == "image/png"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-disposition" not in response.headers  # a picture is shown
        part = client.get(url, headers={"Range": "bytes=8-15"})
        assert part.status_code == 206 and part.content == PNG[8:16]
        assert part.headers["content-range"] == f"bytes 8-15/{len(PNG)}"
        again = client.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        head = client.head(url)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(PNG))
        # A file in a folder, and one deleted while the site runs.
        assert client.get("/media/sub/inner.png").content == PNG
        (media / url.removeprefix("/media/")).unlink()
        assert client.get(url).status_code == 404


@pytest.mark.parametrize("target", [
    "/media/",  # no listing of the folder
    "/media/sub/",
    "/media/sub",
    "/media/../secret.txt",
    "/media/%2e%2e/secret.txt",
    "/media/%2E%2E%2Fsecret.txt",
    "/media/sub/..%2f..%2fsecret.txt",
    "/media/..%5csecret.txt",
    "/media/sub%5c..%5c..%5csecret.txt",
    "/media/.%2e/secret.txt",
    "/media//secret.txt",
    "/media/%2f" + "%2e%2e/" * 3 + "etc/passwd",
    "/media/ok.txt::$DATA",
    "/media/ok.txt:stream",
    "/media/C:/Windows/win.ini",
    "/media/SECRET~1.TXT",
    "/media/con.txt",
    "/media/NUL",
    "/media/.hidden",
    "/media/trail.txt.",
    "/media/trail.txt%20",
    "/media/ok.txt%00.png",
    "/media/link.txt",
    "/media/linked-folder/secret.txt",
])
def test_paths_that_could_reach_anything_else_are_refused(media_site, target):
    server, _ = media_site
    status, _, body = raw_get(server.port, target)
    assert status in (400, 404), (target, status, body[:200])
    assert SECRET not in body


def test_the_refusals_are_not_blanket(media_site):
    """The same server does serve a plain name: the refusals above are about the path."""
    server, _ = media_site
    status, head, body = raw_get(server.port, "/media/ok.txt")
    assert status == 200 and body == b"plain text\n"
    assert b"content-type: text/plain; charset=utf-8" in head.lower()


@pytest.mark.parametrize(("name", "content_type"), [
    ("page.html", "text/html"),
    ("drawing.svg", "image/svg+xml"),
    ("data.xml", "text/xml"),
    ("script.js", "text/javascript"),
    ("unknown.weird", "application/octet-stream"),
])
def test_what_a_browser_would_run_is_downloaded_not_shown(media_site, name, content_type):
    server, _ = media_site
    active = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
    url = upload(server.url, name, active)
    response = httpx.get(server.url + url, timeout=30)
    assert response.status_code == 200 and response.content == active
    assert response.headers["content-type"].split(";")[0] == content_type
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_real_browser_does_not_show_uploaded_html_or_svg_as_a_page(media_site, browser):  # noqa: F811
    """Chromium, sent to an uploaded HTML page or SVG drawing, downloads it: nothing of it is
    shown, so nothing of it can act as a page of the site."""
    from selenium.webdriver.common.by import By

    server, _ = media_site
    files = {
        "shown.html": b"<html><head><title>UPLOADED</title></head><body><h1 id=uploaded>uploaded</h1></body></html>",
        "shown.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><title>UPLOADED</title>'
                     b'<text id="uploaded" x="5" y="20">uploaded</text></svg>',
    }
    for name, content in files.items():
        url = upload(server.url, name, content)
        browser.get(server.url + "/healthz")
        browser.get(server.url + url)
        time.sleep(0.5)  # a page that did render would have its elements by now
        assert browser.title != "UPLOADED" and not browser.find_elements(By.ID, "uploaded"), name
    # The same browser does show a picture inline: the downloads are about the types.
    picture = upload(server.url, "shown.png", PNG)
    browser.get(server.url + picture)
    assert browser.current_url == server.url + picture and browser.find_elements(By.TAG_NAME, "img")
