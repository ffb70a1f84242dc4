"""ASGI entry point: /v1 to the gateway's own lean app, everything else to Django/Channels.

Routing by path keeps Django's per-request thread off the hot path (README, "Performance").
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrouter_project.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_http = get_asgi_application()  # sets Django up before anything imports models

from channels.routing import URLRouter  # noqa: E402

from apps.common.checks import refuse_insecure_start  # noqa: E402
from apps.gateway import lifecycle  # noqa: E402
from apps.gateway.app import gateway_app, healthz  # noqa: E402
from apps.gateway.metrics import metrics_endpoint  # noqa: E402
from apps.gateway.readiness import readyz  # noqa: E402
from apps.gateway.ws_urls import websocket_urlpatterns  # noqa: E402

# No session middleware: the WebSocket endpoints authenticate by API key, and a session lookup
# would cost a database query per handshake. Only the portal's playground sockets read the
# session, themselves (apps/gateway/ws_session.py).
websocket_app = URLRouter(websocket_urlpatterns)


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                refuse_insecure_start()  # XROUTER_ENV=production: no start on development defaults
                await lifecycle.startup()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await lifecycle.shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        path = scope["path"]
        if path.startswith("/v1/") or path == "/v1":
            return await gateway_app(scope, receive, send)
        if path == "/healthz":
            return await healthz(scope, receive, send)
        if path == "/readyz":
            return await readyz(scope, receive, send)
        if path == "/metrics":
            return await metrics_endpoint(scope, receive, send)
        return await django_http(scope, receive, send)
    if kind == "websocket":
        return await websocket_app(scope, receive, send)
    if kind == "lifespan":
        return await lifespan(receive, send)
    raise ValueError(f"unsupported ASGI scope type {kind!r}")
