"""Your own Tornado handlers, served beside Django on the same port.

Tornado handlers run on the server's event loop, for what a thread per request does
badly: WebSockets, long polling, server-sent events. ``settings.TORNADO_ROUTES`` names
the list below; paths that match a route go to Tornado, everything else to Django.
Keep blocking work out of these handlers (``await IOLoop.current().run_in_executor(None,
fn)``): they share the event loop with every connection.
"""

from tornado import websocket


class EchoWebSocket(websocket.WebSocketHandler):
    """An example: sends every message back. Tornado checks that the Origin matches the Host."""

    def on_message(self, message):
        self.write_message(message, binary=isinstance(message, bytes))


# (path regex, handler class[, kwargs]). Nothing is routed until you add it here: an open
# WebSocket holds a connection, so serve only the ones you mean to.
TORNADO_ROUTES = [
    # (r"/ws/echo", EchoWebSocket),
]
