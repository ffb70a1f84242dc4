"""WebSocket URL patterns (xrouter_project/asgi.py routes the `websocket` scope here)."""

from django.urls import path, re_path

from .consumers import realtime_chat


async def not_found(scope, receive, send) -> None:
    """Any other path: refused at the handshake (uvicorn answers 403 and logs one INFO line). Without
    it the router raises, and each handshake anyone sends is an ERROR traceback and a 500."""
    if (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008})


websocket_urlpatterns = [path("v1/realtime/chat", realtime_chat), re_path(r"", not_found)]
