"""The project's WSGI application, wrapped with paths that break the WSGI contract.

Django turns view errors into 500 pages itself, so server-side failure handling is
tested with these raw WSGI misbehaviours instead. Only tests/settings.py uses this.
"""

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
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"unknown fault"]
