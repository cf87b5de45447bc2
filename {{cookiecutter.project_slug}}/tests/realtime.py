"""Tornado routes for test servers: the example echo WebSocket, turned on."""

from {{ cookiecutter.project_slug }}.realtime import TORNADO_ROUTES as PROJECT_ROUTES
from {{ cookiecutter.project_slug }}.realtime import EchoWebSocket

TORNADO_ROUTES = [*PROJECT_ROUTES, (r"/ws/echo", EchoWebSocket)]
