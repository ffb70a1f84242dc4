"""Upstream time limits belong to the request, not to the pooled connection (transport.without_read_timer).

An upstream that sends a stray empty line after its answer (tolerated by HTTP parsers, RFC 9112 §2.2) used to
arm aiohttp's read timer on the connection idling in the keep-alive pool; when it fired, the next request that
took the connection failed at once with `upstream timed out` — the battery's unexplained 504 within 3 ms.
Real HTTP against a small server of the test's own; the read timeout still holds for headers and bodies."""

import asyncio
import time

import aiohttp
import pytest

from apps.providers.adapters.base import ProviderError
from apps.providers.adapters.transport import send

READ_TIMEOUT = 0.5
ANSWER = b'{"ok": true}'


async def _upstream(behaviour: str):
    """One keep-alive server: `stray` answers and then sends an empty line; `hang` never answers;
    `stall` sends its headers and half of its body, then stops; `trickle` sends its headers at once and then
    keep-alive whitespace, a byte every 0.2 s for 1.6 s (as aggregators do during a long generation), then the answer."""
    connections = []

    async def serve(reader, writer):
        connections.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                if behaviour == "hang":
                    await asyncio.sleep(30)
                headers = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ANSWER)
                if behaviour == "trickle":
                    padding = b" " * 8
                    writer.write(headers.replace(b"%d" % len(ANSWER), b"%d" % (len(ANSWER) + len(padding))))
                    for byte in padding:
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(0.2)
                if behaviour == "stall":
                    writer.write(headers + ANSWER[:4])
                    await writer.drain()
                    await asyncio.sleep(30)
                writer.write(ANSWER if behaviour == "trickle" else headers + ANSWER)
                await writer.drain()
                if behaviour == "stray":
                    await asyncio.sleep(0.05)
                    writer.write(b"\r\n")
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"


def _session():
    # As the adapters build theirs (base.ProviderAdapter.timeout): read and total limits on the session.
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30, sock_connect=5, sock_read=READ_TIMEOUT))


async def test_a_stray_byte_on_an_idle_pooled_connection_does_not_fail_the_next_request():
    server, url = await _upstream("stray")
    async with server, _session() as session:
        for _ in range(3):
            status, raw, _headers = await send(session, "P", "POST", url, {}, json_body={"q": 1})
            assert (status, raw) == (200, ANSWER)
            await asyncio.sleep(READ_TIMEOUT * 2.5)  # past the read timeout, idling in the pool
        assert len(session.connector._conns) == 1  # the connection was reused, not replaced


@pytest.mark.parametrize("behaviour", ["hang", "stall"])
async def test_the_read_timeout_still_bounds_the_headers_and_the_body(behaviour):
    server, url = await _upstream(behaviour)
    async with server, _session() as session:
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            await send(session, "P", "POST", url, {}, json_body={"q": 1})
        took = time.monotonic() - started
    assert (caught.value.status, caught.value.kind) == (504, "timeout")
    assert READ_TIMEOUT * 0.9 <= took < 5


async def test_the_read_timeout_bounds_silence_not_the_length_of_a_trickling_body():
    server, url = await _upstream("trickle")
    async with server, _session() as session:
        status, raw, _headers = await send(session, "P", "POST", url, {}, json_body={"q": 1})
    assert (status, raw.strip()) == (200, ANSWER)  # 1.6 s of body, never 0.5 s of silence
