"""Your own Tornado handlers, served beside Django on the same port.

Tornado handlers run on the server's event loop, for what a thread per request does
badly: WebSockets, long polling, server-sent events. ``settings.TORNADO_ROUTES`` names
the list below; paths that match a route go to Tornado, everything else to Django.
Keep blocking work out of these handlers (``await IOLoop.current().run_in_executor(None,
fn)``): they share the event loop with every connection.

The server checks every request before your handler runs, as Django does for its views: a
Host not in ``ALLOWED_HOSTS`` gets 400, and a browser request from another site (an
``Origin`` that is not this Host) gets 403. To accept other origins, define
``check_origin(self, origin)`` in the handler and return True for those you trust (for a
WebSocketHandler, Tornado calls it on every handshake; on any other handler it tells the
server to leave Origin to you). WebSockets are pinged and closed when the peer stops
answering, messages are limited in size, and at most ``--max-websockets`` are open at once
(see the server options in docs/configuration.md). None of this is authentication: check
``self.get_cookie("sessionid")`` or a token yourself if only some users may connect.
"""

from tornado import websocket


class EchoWebSocket(websocket.WebSocketHandler):
    """An example: sends every message back to the same-origin page that opened it."""

    def on_message(self, message):
        self.write_message(message, binary=isinstance(message, bytes))


# (path regex, handler class[, kwargs]). Nothing is routed until you add it here: an open
# WebSocket holds a connection, so serve only the ones you mean to.
TORNADO_ROUTES = [
    # (r"/ws/echo", EchoWebSocket),
]
