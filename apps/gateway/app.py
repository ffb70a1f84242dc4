"""The /v1 ASGI app: a path table, one error boundary, no per-request thread.

Django's ASGI handler starts a thread for every request (about 1 ms of CPU here), more than
this path's whole budget, so /v1 is served by this small app instead (see README,
"Performance"). It still calls the same Django models and services, through in-process caches.
"""

import logging
import time

from django.conf import settings

from apps.common import tracing
from apps.common.errors import ApiError
from apps.common.request_id import REQUEST_ID, new_request_id

from . import handlers, responses, tokenize
from .http import ClientGone, Request, send_error, send_json

log = logging.getLogger(__name__)

ROUTES = {
    "/v1/chat/completions": {"POST": handlers.chat_completions},
    "/v1/responses": {"POST": responses.create_response},
    "/v1/embeddings": {"POST": handlers.embeddings},
    "/v1/models": {"GET": handlers.list_models},
    "/v1/xrouter/tokenize": {"POST": tokenize.tokenize},
}
MODEL_PREFIX = "/v1/models/"
MAX_INFLIGHT = settings.XROUTER["MAX_INFLIGHT"]
OVERLOADED = ApiError(503, "This gateway worker is at its limit of requests in flight; retry shortly.",
                      code="overloaded", headers={"retry-after": "1"})
inflight = 0  # requests this worker is serving (the event loop is its only writer)


def _route(path: str) -> str | None:
    """The route template serving `path` ("/v1/models/{model}"), None if none does."""
    path = path.rstrip("/") or path
    if path in ROUTES:
        return path
    if path.startswith(MODEL_PREFIX) and len(path) > len(MODEL_PREFIX):
        return MODEL_PREFIX + "{model}"
    return None


def _resolve(method: str, path: str):
    path = path.rstrip("/") or path
    route = _route(path)
    if route is None:
        raise ApiError(404, f"Unknown endpoint: {method} {path}", code="unknown_url")
    methods = ROUTES.get(route) or {"GET": handlers.retrieve_model}
    handler = methods.get(method)
    if handler is None:
        raise ApiError(405, f"Method {method} is not allowed on {path}; use {', '.join(methods)}.", code="method_not_allowed",
                       headers={"allow": ", ".join(methods)})
    return handler


async def gateway_app(scope, receive, send) -> None:
    global inflight
    request_id = new_request_id()
    REQUEST_ID.set(request_id)  # on every log line written while serving it (apps/common/request_id.py)
    if inflight >= MAX_INFLIGHT:  # shed at once: a queue would only make every request late
        await send_error(send, OVERLOADED, {"x-request-id": request_id})
        return
    inflight += 1
    req = Request(scope, receive, request_id, time.monotonic())
    traced = (tracing.start_request(req.method, req.path, _route(req.path), request_id) if tracing.tracer is not None
              else None)
    if traced is not None:
        req.span = traced[0]
    try:
        handler = _resolve(req.method, req.path)
        await handler(req, send)
    except ApiError as exc:
        if traced is not None:
            tracing.refused(req.span, exc.status, exc.code)
        await send_error(send, exc, {"x-request-id": request_id})
    except ClientGone:
        return
    except Exception:
        # A bug, never the client's input: log it (without the body) and keep the envelope.
        log.exception("unhandled error in /v1", extra={"request_id": request_id, "path": req.path})
        try:
            await send_error(send, ApiError(500, "Internal error; the request id identifies it in our logs."), {"x-request-id": request_id})
        except Exception:  # the response had already started: nothing more can be said on it
            return
    finally:
        inflight -= 1
        if traced is not None:
            tracing.end_request(*traced)


async def healthz(scope, receive, send) -> None:
    """Liveness for load balancers and the Docker HEALTHCHECK, without loading Django's URLconf."""
    await send_json(send, 200, b'{"status":"ok"}')
