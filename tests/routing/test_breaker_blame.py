"""The circuit breaker counts only what the provider did (issue 8 item 10).

A client that stops reading a long stream blocks the relay, which then stops reading the
upstream: that silence is the client's, and must neither open the target's breaker (in this
process or, through the bus, in any other) nor be billed as a provider timeout. The client is
a raw socket with a small receive buffer, so the 8 MiB answer cannot hide in kernel buffers.
"""

import socket
import time
import uuid
from urllib.parse import urlsplit

import httpx
import orjson

from tests.conftest import wait_for_usage

TBANK = "tbank/t-tech/T-lite-it-2.1"
WORDS = 150_000  # about 50,000 chunks: ≥ 8 MiB of SSE from the gateway
READ_TIMEOUT = 3  # seconds (the emulator needs about one to start 150,000 words); a stall is seen within 1.25×
HANG_GUARD = 120


def open_stream(base_url: str, key: str) -> socket.socket:
    """A streamed chat request on a socket whose receive window stays small."""
    url = urlsplit(base_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # before connect: the window is negotiated then
    sock.settimeout(HANG_GUARD)
    sock.connect((url.hostname, url.port))
    body = orjson.dumps({"model": TBANK, "stream": True,
                         "messages": [{"role": "user", "content": f"[long:{WORDS}] {uuid.uuid4().hex}"}]})
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    sock.sendall(head.encode() + body)
    return sock


def read_at_least(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return bytes(data)


def read_to_end(sock: socket.socket) -> bytes:
    data = bytearray()
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        piece = sock.recv(1 << 20)
        if not piece:
            return bytes(data)
        data += piece
    raise AssertionError("the stream did not end")


def request_id(head: bytes) -> str:
    for line in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"x-request-id":
            return value.strip().decode()
    raise AssertionError("no x-request-id")


def routed_to(gw, key) -> httpx.Response:
    return httpx.post(gw.v1 + "/chat/completions", timeout=30, headers={"authorization": f"Bearer {key}"},
                      json={"model": TBANK, "messages": [{"role": "user", "content": "still there?"}]})


def test_a_client_that_pauses_past_the_read_timeout_gets_the_whole_stream_and_opens_no_breaker(spawn, django_db_blocker):
    gw = spawn(XROUTER_UPSTREAM_READ_TIMEOUT=str(READ_TIMEOUT), XROUTER_BREAKER_FAILURES="1")
    key = gw.keys["alice"]
    sock = open_stream(gw.base_url, key)
    try:
        head = read_at_least(sock, 64 * 1024)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        time.sleep(READ_TIMEOUT * 2)  # stop reading: the relay blocks, the upstream is not read
        rest = read_to_end(sock)
    finally:
        sock.close()

    body = head + rest
    assert len(body) >= 8 * 1024 * 1024
    assert b'"error"' not in body
    assert b"data: [DONE]" in body[-200:]
    follow_up = routed_to(gw, key)
    assert follow_up.status_code == 200, follow_up.text
    assert follow_up.headers["x-xrouter-route"] == f"direct;{TBANK}"
    assert wait_for_usage(django_db_blocker, request_id(head)).status == "ok"


def test_a_client_that_stops_reading_is_cut_without_counting_against_the_provider(spawn, django_db_blocker):
    gw = spawn(XROUTER_UPSTREAM_READ_TIMEOUT=str(READ_TIMEOUT), XROUTER_BREAKER_FAILURES="1",
               XROUTER_CLIENT_SEND_TIMEOUT="1")
    key = gw.keys["alice"]
    sock = open_stream(gw.base_url, key)
    try:
        head = read_at_least(sock, 64 * 1024)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        time.sleep(READ_TIMEOUT * 3)  # past the client send timeout (≤ 2 s) and the read timeout
        rest = read_to_end(sock)
    finally:
        sock.close()

    body = head + rest
    assert b"data: [DONE]" not in body  # the gateway gave up on this client
    assert len(body) < 8 * 1024 * 1024
    follow_up = routed_to(gw, key)
    assert follow_up.status_code == 200, follow_up.text
    assert follow_up.headers["x-xrouter-route"] == f"direct;{TBANK}"
    record = wait_for_usage(django_db_blocker, request_id(head))
    assert (record.status, record.provider) == ("client_stalled", "tbank")
    assert record.completion_tokens > 0  # what was produced is billed


# --- a wait for a local concurrency slot, without a server ----------------------------------------

def _target(public_id: str, adapter):
    from decimal import Decimal

    from apps.routing.catalog import ModelEntry
    from apps.routing.router import Target

    provider, name = public_id.split("/", 1)
    return Target(model=ModelEntry(provider=provider, name=name, kind="chat", input_price=Decimal(0), output_price=Decimal(0),
                                   cached_input_price=Decimal(0), context_window=None, jurisdiction="RU", created=0),
                  adapter=adapter)


async def test_a_wait_for_a_local_concurrency_slot_falls_back_and_counts_nothing_against_the_provider(settings):
    from apps.providers.adapters.base import CredentialConfig, ProviderAdapter, ProviderConfig
    from apps.routing import state
    from apps.routing.router import RoutePlan, run_with_fallback

    settings.XROUTER = {**settings.XROUTER, "CONCURRENCY_WAIT": 0.05}
    state.reset()
    busy = ProviderAdapter(ProviderConfig(name="busy", kind="test", base_url="http://127.0.0.1:9",
                                          credentials=(CredentialConfig("c", {}, max_concurrency=1),)))
    spare = ProviderAdapter(ProviderConfig(name="spare", kind="test", base_url="http://127.0.0.1:9"))
    plan = RoutePlan(requested="busy/m", targets=[_target("busy/m", busy), _target("spare/m", spare)], retries=2)

    async def call(target):
        async with target.adapter.slot():
            return target.label

    async with busy.slot():  # every slot of the busy credential is taken by another request
        result, target = await run_with_fallback(plan, call)

    assert (result, target.label) == ("spare/m", "spare/m")
    assert plan.attempts == ["busy/m", "spare/m"]  # a local wait is not retried on the same target
    assert False not in state.state("busy/m").recent and state.state("busy/m").consecutive_failures == 0
    state.reset()


async def test_a_target_timeout_spent_waiting_for_a_local_slot_is_capacity_not_the_providers_timeout(settings):
    from apps.providers.adapters.base import CredentialConfig, ProviderAdapter, ProviderConfig
    from apps.routing import state
    from apps.routing.router import RoutePlan, run_with_fallback

    settings.XROUTER = {**settings.XROUTER, "CONCURRENCY_WAIT": 30.0}
    settings.REDIS_URL = ""
    state.reset()
    busy = ProviderAdapter(ProviderConfig(name="busy", kind="test", base_url="http://127.0.0.1:9",
                                          credentials=(CredentialConfig("c", {}, max_concurrency=1),)))
    spare = ProviderAdapter(ProviderConfig(name="spare", kind="test", base_url="http://127.0.0.1:9"))
    plan = RoutePlan(requested="busy/m", targets=[_target("busy/m", busy), _target("spare/m", spare)], retries=2)
    plan.targets[0].timeout = 0.1  # runs out long before a slot comes free

    async def call(target):
        async with target.adapter.slot():
            return target.label

    async with busy.slot():
        result, target = await run_with_fallback(plan, call)

    assert target.label == "spare/m" and plan.attempts == ["busy/m", "spare/m"]
    assert False not in state.state("busy/m").recent
    state.reset()


def test_a_stream_that_outlives_the_total_timeout_because_its_client_paused_opens_no_breaker(spawn, django_db_blocker):
    gw = spawn(XROUTER_UPSTREAM_READ_TIMEOUT=str(READ_TIMEOUT), XROUTER_UPSTREAM_TOTAL_TIMEOUT=str(READ_TIMEOUT * 2),
               XROUTER_BREAKER_FAILURES="1")
    key = gw.keys["alice"]
    sock = open_stream(gw.base_url, key)
    try:
        head = read_at_least(sock, 64 * 1024)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        time.sleep(READ_TIMEOUT * 3)  # the total timeout passes while the relay waits on this client
        rest = read_to_end(sock)
    finally:
        sock.close()

    body = head + rest
    assert b'"error"' in body[-1000:] and b"data: [DONE]" in body[-200:]  # cut, and told so
    follow_up = routed_to(gw, key)
    assert follow_up.status_code == 200, follow_up.text
    assert follow_up.headers["x-xrouter-route"] == f"direct;{TBANK}"
    assert wait_for_usage(django_db_blocker, request_id(head)).status == "error"
