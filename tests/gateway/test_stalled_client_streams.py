"""Clients that stop reading a stream, or reset it, cost the gateway little.

A stream's socket keeps at most XROUTER_STREAM_SEND_BUFFER bytes its client has not read queued in the kernel
(apps/gateway/http.py, cap_send_buffer): without the bound Linux grows the send buffer of a loopback connection
to megabytes, and a client that stops reading has the gateway relay all of that for nothing. Read from the
kernel's own view of the gateway's sockets (`ss -tm`). And a client that resets its connection stops the relay
at its next chunk (uvicorn's sends return at once once the client is gone: the relay used to race through
everything it had buffered from the provider, billing it, before it stopped).
"""

import re
import socket
import struct
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import httpx
import orjson
from websockets.sync.client import connect

from tests.conftest import wait_for_usage
from tests.routing.test_breaker_blame import request_id

CAP = 64 * 1024  # the default
TBANK = "tbank/t-tech/T-lite-it-2.1"


def _kernel_view(gateway_port: int, client_port: int) -> tuple[int, int]:
    """(bytes queued unread, send buffer size) of the gateway's end of one connection."""
    out = subprocess.run(["ss", "-tnmH", "state", "established", f"( sport = :{gateway_port} and dport = :{client_port} )"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    queued = re.search(r"^\s*\d+\s+(\d+)\s", out, re.M)
    size = re.search(r"tb(\d+)", out)
    assert queued and size, out
    return int(queued.group(1)), int(size.group(1))


def _settled(gateway_port: int, client_port: int) -> tuple[int, int]:
    """The kernel's view once the gateway's sends stop growing the queue (the relay blocked)."""
    last, deadline = None, time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _kernel_view(gateway_port, client_port)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the queue kept growing: {last}")


def _connect(base_url: str) -> socket.socket:
    url = urlsplit(base_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # before connect: the window stays small
    sock.settimeout(60)
    sock.connect((url.hostname, url.port))
    return sock


def _long_answer() -> dict:
    """A request for ≥ 8 MiB of SSE (150,000 words, a chunk each)."""
    return {"model": TBANK, "messages": [{"role": "user", "content": f"[long:150000] {uuid.uuid4().hex}"}]}


def _post(sock: socket.socket, base_url: str, key: str, body: dict) -> None:
    data = orjson.dumps(body)
    sock.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: {urlsplit(base_url).netloc}\r\nAuthorization: Bearer {key}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data)


def test_a_stream_whose_client_stops_reading_backs_up_after_the_bound_not_megabytes(gateway):
    sock = _connect(gateway.base_url)
    try:
        _post(sock, gateway.base_url, gateway.keys["alice"], {**_long_answer(), "stream": True})
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")  # then it stops reading: ≥ 8 MiB of SSE waits
        queued, _ = _settled(urlsplit(gateway.base_url).port, sock.getsockname()[1])
        assert queued <= 2 * CAP, queued  # the bound, what the client's window holds in flight, one segment
    finally:
        sock.close()


def test_a_websocket_stream_whose_client_stops_reading_is_bounded_too(gateway):
    sock = _connect(gateway.base_url)
    url = gateway.base_url.replace("http://", "ws://") + "/v1/realtime/chat"
    with connect(url, sock=sock, additional_headers={"Authorization": f"Bearer {gateway.keys['alice']}"}, open_timeout=10) as ws:
        ws.send(orjson.dumps({"type": "request", **_long_answer()}).decode())
        assert orjson.loads(ws.recv(timeout=15))["object"] == "chat.completion.chunk"  # then it stops reading
        queued, _ = _settled(urlsplit(gateway.base_url).port, sock.getsockname()[1])
        assert queued <= 2 * CAP, queued


def test_a_client_that_resets_a_stalled_stream_stops_the_relay_at_its_next_chunk(gateway, django_db_blocker):
    port = urlsplit(gateway.base_url).port
    sock = _connect(gateway.base_url)
    _post(sock, gateway.base_url, gateway.keys["alice"], {**_long_answer(), "stream": True})
    received = bytearray()
    while len(received) < 64 * 1024:
        piece = sock.recv(65536)
        assert piece, bytes(received[:300])
        received += piece
    queued, _ = _settled(port, sock.getsockname()[1])  # the relay is blocked on the client, the provider's answer buffered
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset

    record = wait_for_usage(django_db_blocker, request_id(bytes(received)))
    assert (record.status, record.estimated) == ("client_disconnected", True)
    body = bytes(received).split(b"\r\n\r\n", 1)[1]
    text = 0
    for line in body.split(b"\n"):
        if line.startswith(b"data: {") and line.endswith(b"}"):
            text += sum(len(c["delta"].get("content") or "") for c in orjson.loads(line[6:])["choices"])
    # What the gateway could have handed on: what was read, the client's receive buffer (doubled by Linux), what
    # the kernel held for it and uvicorn's write buffer (64 KiB), with room to spare; not the provider's backlog.
    handed = len(received) + 2 * 16 * 1024 + queued + 64 * 1024 + 32 * 1024
    with django_db_blocker.unblock():
        from apps.providers.models import ProviderModel

        ratio = ProviderModel.objects.get(provider__name="tbank", name="t-tech/T-lite-it-2.1").chars_per_token or 4
    bound = handed * text / len(body) / ratio  # the estimate's tokens for that many characters of text
    assert record.completion_tokens <= bound + 1, (record.completion_tokens, bound)


def test_a_client_that_leaves_before_the_first_token_is_billed_as_gone_not_as_a_provider_error(
        gateway, emulators, emulator_control, django_db_blocker):
    emulator_control("tbank", first_byte_delay_ms=1500)  # the headers at once, the first chunk 1.5 s later
    started = time.time()
    sock = _connect(gateway.base_url)
    _post(sock, gateway.base_url, gateway.keys["alice"], {**_long_answer(), "stream": True})
    time.sleep(0.5)  # the gateway holds the provider's headers and waits for its first chunk
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()

    # The gateway's request id, from the emulator's ledger (its request-id header: "<request id>.<attempt>").
    deadline, entries = time.monotonic() + 10, []
    while time.monotonic() < deadline and not entries:
        time.sleep(0.2)
        ledger = httpx.get(f"{emulators['tbank'].control_url}/ledger", timeout=10).json()["entries"]
        entries = [e for e in ledger if e["fault"] == "delay" and e["ts"] >= started and e.get("ended")]
    assert entries, "the emulator never saw the request end"
    record = wait_for_usage(django_db_blocker, entries[-1]["client_request_id"].rsplit(".", 1)[0])
    assert (record.status, record.http_status, record.error_type) == ("client_disconnected", 200, "")
