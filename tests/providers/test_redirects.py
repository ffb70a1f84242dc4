"""Issue 8 item 20: no upstream call follows a redirect, so a 3xx can never carry a credential elsewhere.

A real loopback server answers every path with 302 to a second server on another port, which
records each request it gets; the credential must never reach it.
"""

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.providers.adapters import adapter_class
from apps.providers.adapters.base import CredentialConfig, ProviderConfig, ProviderError

SECRET = "sk-redirect-canary-0123456789"
GIGA_KEY = "Z2lnYS1jYW5hcnk6c2VjcmV0"


class _Server:
    def __init__(self, handler):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def elsewhere():
    """The server a redirect points to: it records what it is sent."""
    heard = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            heard.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = _record

        def log_message(self, *args):
            pass

    server = _Server(Handler)
    server.heard = heard
    yield server
    server.close()


@pytest.fixture
def redirector(elsewhere):
    """The provider's configured origin: every request is answered 302 to `elsewhere`."""

    class Handler(BaseHTTPRequestHandler):
        def _redirect(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{elsewhere.port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _redirect

        def log_message(self, *args):
            pass

    server = _Server(Handler)
    yield server
    server.close()


def adapter_for(kind, base_url, secrets, auth_url=""):
    config = ProviderConfig(name=f"{kind}-redirect", kind=kind, base_url=base_url, auth_url=auth_url,
                            credentials=(CredentialConfig(name="default", secrets=secrets),))
    return adapter_class(kind)(config)


async def _every_call(adapter, model):
    calls = {
        "chat": lambda: adapter.chat({"messages": [{"role": "user", "content": "hi"}]}, model),
        "stream": lambda: _drain(adapter.stream_chat({"messages": [{"role": "user", "content": "hi"}], "stream": True}, model)),
        "models": adapter.list_models,
        "health": adapter.health_check,
    }
    outcomes = {}
    try:
        for name, call in calls.items():
            try:
                await asyncio.wait_for(call(), 30)
                outcomes[name] = "answered"
            except ProviderError as exc:
                outcomes[name] = exc.status
    finally:
        await adapter.close()
    return outcomes


async def _drain(stream):
    async for _ in stream:
        pass


def _leaked(heard, *needles):
    return [r for r in heard if any(n in str(r["headers"]) or n.encode() in r["body"] for n in needles)]


async def test_an_openai_compatible_upstream_redirect_is_not_followed(redirector, elsewhere):
    adapter = adapter_for("mts", f"http://127.0.0.1:{redirector.port}/v1", {"api_key": SECRET})
    outcomes = await _every_call(adapter, "mws-gpt-alpha")
    assert elsewhere.heard == [], f"followed a redirect: {[r['path'] for r in elsewhere.heard]}"
    assert all(o != "answered" for o in outcomes.values()), outcomes


async def test_a_token_endpoint_redirect_is_not_followed(redirector, elsewhere):
    adapter = adapter_for("gigachat", f"http://127.0.0.1:{redirector.port}/api/v1", {"authorization_key": GIGA_KEY},
                          auth_url=f"http://127.0.0.1:{redirector.port}/api/v2/oauth")
    outcomes = await _every_call(adapter, "GigaChat-2")
    assert _leaked(elsewhere.heard, GIGA_KEY) == []
    assert elsewhere.heard == []
    assert all(o != "answered" for o in outcomes.values()), outcomes
