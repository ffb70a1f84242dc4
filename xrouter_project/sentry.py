"""Error tracking with Sentry (or a compatible service: GlitchTip, self-hosted Sentry) when SENTRY_DSN is
set; imported only then. Nothing secret or personal leaves: no request bodies, cookies, headers that
authenticate, query strings or local variables are sent, and every string of an event (messages,
exception texts, breadcrumbs) goes through the log filters' scrubbing (API keys, bearer and OAuth tokens)."""

from .log_filters import strip_query

DROPPED_HEADERS = {"authorization", "cookie", "x-api-key", "proxy-authorization", "sec-websocket-protocol"}


def init(dsn: str, environment: str, logging_config: dict) -> None:
    """Start the SDK, and send ERROR log records as events through a handler placed before the console's:
    the console's filter replaces a record's exception by its cleaned text, and the event needs the
    exception itself (its strings are scrubbed in scrub_event instead)."""
    import logging

    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    logging_config["handlers"]["sentry"] = {"class": "sentry_sdk.integrations.logging.EventHandler", "level": "ERROR"}
    logging_config["root"]["handlers"].insert(0, "sentry")
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(transaction_style="function_name"),
                      LoggingIntegration(level=logging.INFO, event_level=None)],  # events: the handler above
        send_default_pii=False,  # no user names, addresses or cookies
        include_local_variables=False,  # a frame's locals may hold a prompt or a key
        max_request_body_size="never",
        traces_sample_rate=0.0,  # errors only: tracing is OpenTelemetry's job
        before_send=scrub_event,
        before_breadcrumb=lambda crumb, hint: _scrub(crumb),
    )


def scrub_event(event: dict, hint) -> dict:
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("query_string", None)
        request.pop("cookies", None)
        request.pop("data", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {k: v for k, v in headers.items() if k.lower() not in DROPPED_HEADERS}
    return _scrub(event)


def _scrub(value):
    if isinstance(value, str):
        return strip_query(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value
