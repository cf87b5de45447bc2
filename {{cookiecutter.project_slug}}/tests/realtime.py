"""Tornado routes for test servers: the example echo WebSocket, turned on, and handlers
that show the checks every route gets."""

from tornado import web

from {{ cookiecutter.project_slug }}.realtime import TORNADO_ROUTES as PROJECT_ROUTES
from {{ cookiecutter.project_slug }}.realtime import EchoWebSocket


class HelloHandler(web.RequestHandler):
    """A plain handler: the server's Host and Origin checks apply to it as well."""

    def get(self):
        self.write("hello from tornado")


class AnyOriginEchoWebSocket(EchoWebSocket):
    """Defines check_origin: Origin is left to it."""

    def check_origin(self, origin):
        return True


TORNADO_ROUTES = [
    *PROJECT_ROUTES,
    (r"/ws/echo", EchoWebSocket),
    (r"/ws/any-origin-echo", AnyOriginEchoWebSocket),
    (r"/tornado/hello", HelloHandler),
]
