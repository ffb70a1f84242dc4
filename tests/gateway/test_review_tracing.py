"""Hostile review of tracing (review10): what a client sends must not name spans. A tracing backend indexes
span names (Jaeger's operations, Tempo's span-name tag); one per path or method a client invents grows its
index without bound, and a path of kilobytes rides on every such span. The gateway's ASGI app is called
in-process with the real OpenTelemetry SDK recording to memory."""

import pytest

from apps.common import tracing
from apps.gateway.app import gateway_app


@pytest.fixture
def recorded(monkeypatch):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", provider.get_tracer("review10"))
    yield exporter
    provider.shutdown()


async def _call(method: str, path: str) -> int:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await gateway_app({"type": "http", "method": method, "path": path, "headers": [], "query_string": b"",
                       "client": ("127.0.0.1", 5000)}, receive, send)
    return sent[0]["status"]


async def test_span_names_come_from_our_routes_not_from_the_client(recorded):
    assert await _call("GET", "/v1/no-such-" + "x" * 4000) == 404
    assert await _call("GET", "/v1/no-such-thing-2") == 404
    assert await _call("BREW", "/v1/chat/completions") == 405
    assert await _call("GET", "/v1/models/some-model-of-the-client") in (401, 404)
    names = [span.name for span in recorded.get_finished_spans()]
    assert names == ["GET", "GET", "HTTP /v1/chat/completions", "GET /v1/models/{model}"], names
    for span in recorded.get_finished_spans():
        assert len(span.attributes["url.path"]) <= tracing.MAX_PATH
        assert span.attributes["http.request.method"] in ("GET", "_OTHER")
