"""The id of the request being served, so every log line written while serving it carries it
(xrouter_project/log_filters.RequestIdFilter adds it as `request_id`). /v1 sets it to the id it answers
in `x-request-id` (and sends to the providers, `<id>.<attempt>`), a WebSocket to each request's id,
and Django (apps.common.middleware.RequestIdMiddleware) to a fresh one it answers in `X-Request-ID`.
A context variable: each request runs in a task of its own, so one never sees another's id."""

import os
from contextvars import ContextVar

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")


def new_request_id() -> str:
    return os.urandom(12).hex()
