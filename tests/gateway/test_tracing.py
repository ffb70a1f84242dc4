"""OpenTelemetry traces: with an OTLP endpoint configured, each /v1 request leaves a server span and each
upstream attempt a client span under it, with GenAI attributes and without the prompt or the answer — sent
over OTLP/HTTP to a local capture server by a real gateway serving the openai SDK."""

import time
import uuid

import httpx
import pytest
from openai import OpenAI

from tests.conftest import start_gateway
from tests.gateway.conftest import _stop_with_children
from tests.receiver import Receiver

PROMPT = "my card is 4276 1600 0000 0000, secret words"


class _Spans:
    """The spans the collector received (OTLP/HTTP protobuf), decoded as they are read."""

    def __init__(self, receiver: Receiver):
        self.receiver = receiver

    def __iter__(self):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        for _headers, body in list(self.receiver.requests):
            for resource in ExportTraceServiceRequest.FromString(body).resource_spans:
                for scope in resource.scope_spans:
                    yield from scope.spans


class _Raw:
    def __init__(self, receiver: Receiver):
        self.receiver = receiver

    def __iter__(self):
        return iter([body for _headers, body in self.receiver.requests])


@pytest.fixture
def collector():
    receiver = Receiver(reply=b"", content_type="application/x-protobuf")
    yield receiver.base, _Spans(receiver), _Raw(receiver)
    receiver.close()


def _attributes(span) -> dict:
    values = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, kind)
    return values


def test_requests_and_attempts_are_traced_with_genai_attributes_and_no_content(gateway, collector):
    endpoint, spans, raw = collector
    env = {**gateway.env, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}",
           "XROUTER_OTLP_ENDPOINT": endpoint}
    process, base = start_gateway(env)
    try:
        client = OpenAI(base_url=base + "/v1", api_key=gateway.keys["alice"], max_retries=0, timeout=30)
        answer = client.chat.completions.create(model="mts/mws-gpt-alpha", max_tokens=8,
                                                messages=[{"role": "user", "content": PROMPT}])
        chunks = list(client.chat.completions.create(model="gigachat/GigaChat-2", max_tokens=8, stream=True,
                                                     messages=[{"role": "user", "content": PROMPT}]))
        assert answer.choices[0].message.content and chunks
        missing = httpx.post(base + "/v1/chat/completions", json={"model": "nope/none", "messages": [{"role": "user", "content": "x"}]},
                             headers={"authorization": f"Bearer {gateway.keys['alice']}"}, timeout=30)
        assert missing.status_code == 404
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len([s for s in spans if s.kind == 2]) < 3:
            time.sleep(0.2)
    finally:
        _stop_with_children(process)
    servers = [s for s in spans if s.kind == 2]  # SPAN_KIND_SERVER
    clients = [s for s in spans if s.kind == 3]  # SPAN_KIND_CLIENT
    assert len(servers) == 3, [s.name for s in spans]
    plain = next(s for s in servers if _attributes(s).get("gen_ai.provider.name") == "mts")
    attributes = _attributes(plain)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "mts/mws-gpt-alpha"
    assert attributes["gen_ai.response.model"] == "mws-gpt-alpha"
    assert attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert attributes["http.response.status_code"] == 200 and attributes["xrouter.stream"] is False
    assert len(attributes["xrouter.request_id"]) == 24
    streamed = next(s for s in servers if _attributes(s).get("gen_ai.provider.name") == "gigachat")
    assert _attributes(streamed)["xrouter.stream"] is True and _attributes(streamed)["xrouter.time_to_first_token_ms"] > 0
    # Each attempt is a client span under its request's span.
    [attempt] = [c for c in clients if c.trace_id == plain.trace_id]
    assert attempt.parent_span_id == plain.span_id and _attributes(attempt)["gen_ai.provider.name"] == "mts"
    assert any(c.trace_id == streamed.trace_id for c in clients)
    refused = next(s for s in servers if _attributes(s).get("http.response.status_code") == 404)
    assert refused.name.startswith("POST /v1/chat/completions")
    # No prompt or answer text on any span.
    blob = b"".join(raw)
    assert b"4276" not in blob and b"secret words" not in blob
    assert answer.choices[0].message.content.encode()[:20] not in blob
