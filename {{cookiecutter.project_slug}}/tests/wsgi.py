"""The project's WSGI application, wrapped with paths that break the WSGI contract.

Django turns view errors into 500 pages itself, so server-side failure handling is
tested with these raw WSGI misbehaviours instead. Only tests/settings.py uses this.
"""

import sys

from {{ cookiecutter.project_slug }}.wsgi import application as django_application


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if not path.startswith("/__fault__/"):
        return django_application(environ, start_response)
    fault = path.rsplit("/", 1)[-1]
    if fault == "raise-before":
        raise RuntimeError("failed before start_response (on purpose)")
    if fault == "raise-after":
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise RuntimeError("failed after start_response (on purpose)")
    if fault == "bad-status":
        start_response("OK-ish", [("Content-Type", "text/plain")])
        return [b"bad status"]
    if fault == "bad-header":
        start_response("200 OK", [("X-Injected", "a\r\nSet-Cookie: evil=1")])
        return [b"bad header"]
    if fault == "non-latin1-header":
        start_response("200 OK", [("X-Price", "5 \u20ac")])
        return [b"a header HTTP/1.1 cannot carry"]
    if fault == "no-start-response":
        return [b"forgot start_response"]
    if fault == "write-then-error":
        # PEP 3333: write() commits the head, so the error restart must re-raise, never
        # put an error page after data already given to write().
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial-secret-data")
        try:
            raise RuntimeError("failed after write() (on purpose)")
        except RuntimeError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"error page"]
    if fault == "write-while-iterating":
        write = start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            write(b"A")
            yield b"B"
            write(b"C")
            yield b"D"

        return body()
    if fault == "same-length-twice":
        start_response("200 OK", [("Content-Length", "2"), ("Content-Length", "2")])
        return [b"ok"]
    if fault == "two-lengths":
        start_response("200 OK", [("Content-Length", "2"), ("Content-Length", "3")])
        return [b"ok"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"unknown fault"]
