"""The per-worker in-flight cap (XROUTER_MAX_INFLIGHT): beyond it, 503 with Retry-After at once,
and the count comes back down on every path (here: errors and normal answers)."""

import asyncio

import orjson

from apps.gateway import app


def _call(path="/v1/nowhere"):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": []}
    asyncio.run(app.gateway_app(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), orjson.loads(sent[1]["body"])


def test_beyond_the_cap_requests_are_shed_with_503_and_retry_after(monkeypatch):
    monkeypatch.setattr(app, "MAX_INFLIGHT", 0)
    status, headers, body = _call()
    assert status == 503 and headers[b"retry-after"] == b"1"
    assert body["error"]["code"] == "overloaded"


def test_the_count_returns_to_zero_after_each_request(monkeypatch):
    monkeypatch.setattr(app, "MAX_INFLIGHT", 1)
    for _ in range(3):
        status, _, _ = _call()  # an unknown path: a 404, answered inside the cap
        assert status == 404
    assert app.inflight == 0
