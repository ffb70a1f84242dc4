"""The floor for relaying a stream: uvicorn + aiohttp copying the upstream's bytes, nothing else.

No keys, no parsing, no re-encoding, no usage: what any Python gateway built on these two
libraries pays per relayed chunk for the event-loop wake-up and the read and write syscalls.
The benchmark runs it with the gateway's worker count and prints its CPU per chunk beside
XRouter's, so the distance to the floor is measured in the same sitting.

    BENCH_UPSTREAM=http://127.0.0.1:PORT/v1 uvicorn --app-dir bench passthrough:app --workers 2 --lifespan off

Requests reach the mock marked `x-bench-direct`, so its gateway counters stay XRouter's alone.
"""

import os

import aiohttp

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9900/v1") + "/chat/completions"
_session: aiohttp.ClientSession | None = None


async def app(scope, receive, send):
    global _session
    if scope["path"] == "/healthz":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    headers = {"content-type": "application/json", "authorization": "Bearer bench", "x-bench-direct": "1"}
    async with _session.post(UPSTREAM, data=body, headers=headers) as resp:
        await send({"type": "http.response.start", "status": resp.status,
                    "headers": [(b"content-type", b"text/event-stream")]})
        async for chunk in resp.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
