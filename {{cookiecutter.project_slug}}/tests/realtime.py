"""Tornado routes for test servers: the example echo WebSocket, turned on, and handlers
that show the checks every route gets."""

from tornado import web

from {{ cookiecutter.project_slug }}.realtime import TORNADO_ROUTES as PROJECT_ROUTES
from {{ cookiecutter.project_slug }}.realtime import EchoWebSocket


class HelloHandler(web.RequestHandler):
    """A plain handler: the server's Host and Origin checks apply to it as well."""

    def get(self):
        self.write("hello from tornado")


class FormHandler(web.RequestHandler):
    """Counts the fields and files of a posted form (Tornado parses it)."""

    def post(self):
        self.write({"fields": sum(len(values) for values in self.request.body_arguments.values()),
                    "files": sum(len(files) for files in self.request.files.values())})


class AnyOriginEchoWebSocket(EchoWebSocket):
    """Defines check_origin: Origin is left to it."""

    def check_origin(self, origin):
        return True


TORNADO_ROUTES = [
    *PROJECT_ROUTES,
    (r"/ws/echo", EchoWebSocket),
    (r"/ws/any-origin-echo", AnyOriginEchoWebSocket),
    (r"/tornado/hello", HelloHandler),
    (r"/tornado/form", FormHandler),
]
