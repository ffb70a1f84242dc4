"""uvicorn's WebSocket protocol ("websockets" implementation), drained on SIGTERM like HTTP.

uvicorn fails every open WebSocket with 1012 the moment it starts shutting down, so a chat
streaming over one was cut (and billed as a client disconnect) while HTTP streams got the whole
grace period. Here the connection offers the app an event in its scope, `xrouter.draining`;
on shutdown the event is set instead, and the app (apps/gateway/consumers.py) finishes the
answer in flight, then closes with 1012 itself. uvicorn still waits at most
XROUTER_SHUTDOWN_GRACE for it, then cancels the app, which bills what was produced.
Its socket keeps no more unsent than an SSE stream's (apps/gateway/http.py, cap_send_buffer).
"""

import asyncio

from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol

from apps.gateway.http import cap_send_buffer


class DrainingWebSocketProtocol(WebSocketProtocol):
    draining: asyncio.Event | None = None

    async def run_asgi(self) -> None:
        self.draining = asyncio.Event()
        self.scope["xrouter.draining"] = self.draining  # type: ignore[typeddict-unknown-key]
        cap_send_buffer(self.transport)
        await super().run_asgi()

    def shutdown(self) -> None:
        if self.draining is None or not self.handshake_completed_event.is_set() or self.closed_event.is_set():
            super().shutdown()  # no open socket to drain: uvicorn's own handling (500 or 1012)
            return
        self.ws_server.closing = True
        self.draining.set()
