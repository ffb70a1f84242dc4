"""OpenTelemetry traces, when an OTLP endpoint is configured (XROUTER_OTLP_ENDPOINT, or the standard
OTEL_EXPORTER_OTLP_ENDPOINT): a server span per /v1 request and a client span per upstream attempt,
with the GenAI semantic conventions (gen_ai.* attributes; https://opentelemetry.io/docs/specs/semconv/gen-ai/).
No prompt or answer text is ever put on a span. Without an endpoint nothing is imported and `tracer`
stays None: the request path pays one `is None` check."""

import logging
import os

log = logging.getLogger(__name__)
tracer = None  # an opentelemetry Tracer once setup() found an endpoint
_provider = None


def endpoint() -> str:
    return os.environ.get("XROUTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""


def setup() -> None:
    """In each gateway worker at startup: an OTLP/HTTP exporter behind a batching processor (spans leave
    in the background, never on the request's path; a full queue drops spans rather than waiting)."""
    global tracer, _provider
    base = endpoint()
    if not base or tracer is not None:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "xrouter")})
    _provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=base.rstrip("/") + "/v1/traces", timeout=5)
    _provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=8192, schedule_delay_millis=1000))
    tracer = _provider.get_tracer("xrouter")


def shutdown() -> None:
    """Send what is queued (a stopping worker's last spans)."""
    global tracer, _provider
    if _provider is not None:
        try:
            _provider.shutdown()
        except Exception:  # noqa: BLE001 - the collector may be gone; spans are not worth a failed stop
            log.warning("tracing: the last spans could not be sent")
    tracer = _provider = None


# The client chooses the method and the path: a span's name takes only our route (HTTP semantic conventions:
# "{method} {http.route}", an unknown method as HTTP and _OTHER), so a backend's index of span names stays bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
MAX_PATH = 256  # of url.path on a span


def start_request(method: str, path: str, route: str | None, request_id: str):
    """The request's server span, made current; returns (span, token) for end_request. `route`: the path's
    route template ("/v1/models/{model}"), None for a path we do not serve."""
    from opentelemetry import context, trace

    known = method if method in METHODS else "_OTHER"
    shown = "HTTP" if known == "_OTHER" else known
    name = f"{shown} {route}" if route else shown
    attributes = {"http.request.method": known, "url.path": path[:MAX_PATH], "xrouter.request_id": request_id}
    if route:
        attributes["http.route"] = route
    span = tracer.start_span(name, kind=trace.SpanKind.SERVER, attributes=attributes)
    return span, context.attach(trace.set_span_in_context(span))


def end_request(span, token) -> None:
    from opentelemetry import context

    context.detach(token)
    span.end()


def describe(span, *, operation: str, requested: str, provider: str, model: str, route: str, usage, http_status: int,
             status: str, stream: bool, ttft_ms: float | None, error_type: str) -> None:
    """What the request became (set where its usage is recorded)."""
    span.update_name(f"{operation} {model or requested}")
    span.set_attributes({
        "gen_ai.operation.name": operation, "gen_ai.request.model": requested, "gen_ai.provider.name": provider,
        "gen_ai.response.model": model, "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens, "http.response.status_code": http_status,
        "xrouter.route": route, "xrouter.status": status, "xrouter.stream": stream,
    })
    if ttft_ms is not None:
        span.set_attribute("xrouter.time_to_first_token_ms", ttft_ms)
    if status not in ("ok", "cache_hit") and (error_type or http_status >= 400):
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", error_type or str(http_status))
        if http_status >= 500:
            span.set_status(Status(StatusCode.ERROR))


def refused(span, http_status: int, code: str) -> None:
    """A request answered with an error before (or instead of) a provider's answer."""
    span.set_attributes({"http.response.status_code": http_status, "error.type": code or str(http_status)})
    if http_status >= 500:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR))


def start_attempt(provider: str, model: str, attempt: int):
    from opentelemetry import trace

    return tracer.start_span(f"chat {model}", kind=trace.SpanKind.CLIENT, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model,
        "xrouter.attempt": attempt})


def end_attempt(span, error_kind: str = "") -> None:
    if error_kind:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", error_kind)
        span.set_status(Status(StatusCode.ERROR))
    span.end()
