"""Hostile review of the response cache's streamed replay (issue 8 items 9 and 10).

A live stream cuts a client that stops reading after XROUTER_CLIENT_SEND_TIMEOUT. A cached
answer replayed as a stream had no such bound: a client that asks for a large cached answer
(billed at zero cost) and never reads held its task and a copy of the answer for as long as it
kept the socket open — a free way to pile up memory in the gateway. The client here is a raw
socket with a small receive window, so the multi-megabyte replay cannot hide in kernel buffers.
"""

import socket
import time
import uuid
from urllib.parse import urlsplit

import httpx
import orjson

TBANK = "tbank/t-tech/T-lite-it-2.1"
WORDS = 400_000  # a cached answer of about 2.5 MB: ≥ 10 MB of replayed SSE events
SEND_TIMEOUT = 1.0
HANG_GUARD = 120


def request(sock: socket.socket, url, key: str, body: dict) -> None:
    data = orjson.dumps(body)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n")
    sock.sendall(head.encode() + data)


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


def test_a_cached_stream_replayed_to_a_client_that_stops_reading_is_cut_like_a_live_one(spawn):
    gw = spawn(XROUTER_CLIENT_SEND_TIMEOUT=str(SEND_TIMEOUT))
    key = gw.keys["alice"]
    body = {"model": TBANK, "temperature": 0, "messages": [{"role": "user", "content": f"[long:{WORDS}] {uuid.uuid4().hex}"}]}
    warm = httpx.post(gw.v1 + "/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=HANG_GUARD)
    assert warm.status_code == 200 and warm.headers["x-xrouter-cache"] == "miss", warm.text[:300]

    url = urlsplit(gw.base_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # before connect: the window is negotiated then
    sock.settimeout(HANG_GUARD)
    sock.connect((url.hostname, url.port))
    try:
        request(sock, url, key, {**body, "stream": True})
        head = read_at_least(sock, 64 * 1024)
        assert head.startswith(b"HTTP/1.1 200") and b"x-xrouter-cache: hit" in head.lower(), head[:400]
        time.sleep(SEND_TIMEOUT * 2 + 2)  # the client stops reading past the send timeout (1× to 2× of it)
        rest = read_to_end(sock)
    finally:
        sock.close()
    assert b"data: [DONE]" not in rest[-200:], "the replay waited for the stalled client and finished"

    # The gateway is still fine for everyone else.
    again = httpx.post(gw.v1 + "/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=HANG_GUARD)
    assert again.status_code == 200 and again.headers["x-xrouter-cache"] == "hit"
