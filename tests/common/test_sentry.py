"""Error tracking: with SENTRY_DSN set, errors reach a Sentry-compatible server (here a local capture
server speaking Sentry's envelope endpoint) — and no key, token, query string or local variable does."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.receiver import Receiver

KEY = "xr-abcd1234-SUPERSECRETKEYMATERIAL0123456789"
TOKEN = "xro-" + "T" * 40

CHILD = f"""
import logging, django, sentry_sdk
django.setup()
log = logging.getLogger("apps.gateway.app")
prompt = "my passport 4509 123456"  # a local variable that must not be sent
try:
    raise ValueError("upstream refused key {KEY} for /v1/models?api_key={KEY}")
except ValueError:
    log.exception("unhandled error in /v1 with Bearer {TOKEN}")
sentry_sdk.flush(5)
"""


@pytest.fixture
def capture_server():
    receiver = Receiver(reply=b'{"id": "0"}', content_type="application/json")
    yield receiver.port, _Bodies(receiver)
    receiver.close()


class _Bodies:
    """The envelopes' bodies, read live (the SDK may gzip them; the receiver unpacks)."""

    def __init__(self, receiver: Receiver):
        self.receiver = receiver

    def __iter__(self):
        return iter([body for _headers, body in self.receiver.requests])

    def __bool__(self) -> bool:
        return bool(self.receiver.requests)


def test_errors_reach_sentry_scrubbed(capture_server):
    port, received = capture_server
    env = {**os.environ, "SENTRY_DSN": f"http://publickey@127.0.0.1:{port}/42", "DJANGO_SETTINGS_MODULE": "xrouter_project.settings"}
    result = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert received, "no event reached the capture server"
    text = b"\n".join(received).decode()
    events = [json.loads(line) for body in received for line in body.decode().splitlines()
              if line.startswith('{"level"')]
    assert [e["logentry"]["formatted"] for e in events] == ["unhandled error in /v1 with Bearer [redacted]"]
    assert "exception" in events[0], sorted(events[0])
    [frames] = [v["stacktrace"]["frames"] for v in events[0]["exception"]["values"]]
    assert frames and all("vars" not in f for f in frames)  # no local variables
    assert events[0]["exception"]["values"][0]["type"] == "ValueError"
    for secret in ("SUPERSECRETKEYMATERIAL", "T" * 40, "4509 123456", "api_key="):
        assert secret not in text, secret
    assert "xr-abcd1234-[redacted]" in text
