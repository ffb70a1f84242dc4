"""A minimal OpenAI-compatible upstream for the benchmark: as cheap per request as Python allows.

One process, uvloop, a raw asyncio protocol and httptools' C parser (no web framework), so its
own CPU per request is a small fraction of the gateway's (the benchmark reads it from /proc
and prints it beside the gateway's).

    POST /v1/chat/completions   any `Authorization: Bearer ...` is accepted
      non-stream: answers at once with a fixed small completion and usage.
      "stream": true: N content chunks, the first at once and then one every I ms, then at N*I ms
        a finish chunk (empty delta, finish_reason "stop"), a usage chunk when
        stream_options.include_usage is true, and `data: [DONE]`. So a stream lasts exactly
        N*I ms: the upstream's own pace.
        N and I come from `--chunks` / `--interval-ms`, overridden per request by the text
        `chunks=N` and `interval_ms=I` anywhere in the messages (the gateway passes messages
        through unchanged, which a header or the model name would not survive).
    GET /v1/models              one model
    GET /stats                  JSON counters: requests (direct / via the gateway), streams, chunks, CPU
    GET /healthz                ok
    POST /v1/traces             an OTLP/HTTP sink (accepts and drops spans: `bench/run.py --tracing`)

A request carrying the header `x-bench-direct` counts as direct; any other as via the gateway.

    python bench/mock_upstream.py --port 9900 [--chunks 20] [--interval-ms 50]
"""

import argparse
import asyncio
import os
import re
import resource
import signal
import socket
import sys
import time

import httptools
import orjson

try:
    import uvloop
except ImportError:  # pragma: no cover - the venv has it; plain asyncio still works
    uvloop = None

CHUNKS_RE = re.compile(rb"chunks=(\d{1,6})")
INTERVAL_RE = re.compile(rb"interval_ms=(\d{1,6})")
MAX_CHUNKS = 100_000
MAX_INTERVAL_MS = 10_000

COMPLETION = orjson.dumps({
    "id": "chatcmpl-mock",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "mock-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the mock."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
})
MODELS = orjson.dumps({"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 1700000000, "owned_by": "mock"}]})
_CHUNK_HEAD = b'{"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,"model":"mock-model","choices":'
FIRST_EVENT = b"data: " + _CHUNK_HEAD + b'[{"index":0,"delta":{"role":"assistant","content":"tok "},"finish_reason":null}]}\n\n'
TOKEN_EVENT = b"data: " + _CHUNK_HEAD + b'[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}\n\n'
FINISH_EVENT = b"data: " + _CHUNK_HEAD + b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
DONE_EVENT = b"data: [DONE]\n\n"


def usage_event(chunks: int) -> bytes:
    usage = {"prompt_tokens": 9, "completion_tokens": chunks, "total_tokens": 9 + chunks}
    return b"data: " + _CHUNK_HEAD + b"[],\"usage\":" + orjson.dumps(usage) + b"}\n\n"


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunked-encoding frame."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Stats:
    requests_direct = 0
    requests_gateway = 0
    streams = 0
    streams_done = 0
    chunks = 0
    open_streams = 0
    max_open_streams = 0
    bad_requests = 0


def response(status: bytes, body: bytes, keep_alive: bool) -> bytes:
    return b"".join((
        b"HTTP/1.1 ", status, b"\r\ncontent-type: application/json\r\ncontent-length: ",
        str(len(body)).encode(), b"\r\n" if keep_alive else b"\r\nconnection: close\r\n", b"\r\n", body,
    ))


class MockProtocol(asyncio.Protocol):
    __slots__ = ("defaults", "transport", "parser", "url", "body", "direct", "streaming", "queue", "task")

    def __init__(self, defaults):
        self.defaults = defaults
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body = []
        self.direct = False
        self.streaming = False  # a stream is being written: later pipelined requests wait in `queue`
        self.queue = []
        self.task = None

    # --- asyncio.Protocol ---
    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            Stats.bad_requests += 1
            self.transport.write(response(b"400 Bad Request", b'{"error":"bad request"}', False))
            self.transport.close()

    def connection_lost(self, exc):
        if self.task is not None:
            self.task.cancel()

    # --- httptools callbacks ---
    def on_message_begin(self):
        self.url = b""
        self.body = []
        self.direct = False

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        if name.lower() == b"x-bench-direct":
            self.direct = True

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        request = (self.parser.get_method(), self.url, b"".join(self.body), self.direct, self.parser.should_keep_alive())
        if self.streaming:
            self.queue.append(request)
        else:
            self.handle(*request)

    # --- answering ---
    def handle(self, method, url, body, direct, keep_alive):
        if method == b"POST" and url.startswith(b"/v1/chat/completions"):
            if direct:
                Stats.requests_direct += 1
            else:
                Stats.requests_gateway += 1
            try:
                request = orjson.loads(body)
            except orjson.JSONDecodeError:
                self.transport.write(response(b"400 Bad Request", b'{"error":{"message":"invalid JSON"}}', keep_alive))
                return
            if request.get("stream"):
                self.start_stream(body, request, keep_alive)
                return
            self.transport.write(response(b"200 OK", COMPLETION, keep_alive))
        elif method == b"POST" and url.startswith(b"/v1/traces"):  # the OTLP/HTTP sink of `make bench --tracing`
            self.transport.write(response(b"200 OK", b"", keep_alive))
        elif method == b"GET" and url.startswith(b"/stats"):
            self.transport.write(response(b"200 OK", stats_json(), keep_alive))
        elif method == b"GET" and url.startswith(b"/v1/models"):
            self.transport.write(response(b"200 OK", MODELS, keep_alive))
        elif method == b"GET" and url.startswith(b"/healthz"):
            self.transport.write(response(b"200 OK", b'{"status":"ok"}', keep_alive))
        else:
            self.transport.write(response(b"404 Not Found", b'{"error":{"message":"not found"}}', keep_alive))
        if not keep_alive:
            self.transport.close()

    def start_stream(self, body, request, keep_alive):
        m = CHUNKS_RE.search(body)
        n = min(int(m.group(1)), MAX_CHUNKS) if m else self.defaults.chunks
        m = INTERVAL_RE.search(body)
        interval = (min(int(m.group(1)), MAX_INTERVAL_MS) if m else self.defaults.interval_ms) / 1000
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        self.streaming = True
        self.task = asyncio.get_running_loop().create_task(self.stream(max(n, 1), interval, include_usage, keep_alive))

    async def stream(self, n, interval, include_usage, keep_alive):
        Stats.streams += 1
        Stats.open_streams += 1
        Stats.max_open_streams = max(Stats.max_open_streams, Stats.open_streams)
        write = self.transport.write
        loop = asyncio.get_running_loop()
        try:
            write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                  b"transfer-encoding: chunked\r\n" + (b"" if keep_alive else b"connection: close\r\n") + b"\r\n"
                  + chunk(FIRST_EVENT))
            Stats.chunks += 1
            start = loop.time()
            for i in range(1, n + 1):
                # Sleep to an absolute schedule so the stream's pace does not drift under load.
                delay = start + i * interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.transport.is_closing():
                    return
                if i < n:
                    write(chunk(TOKEN_EVENT))
                    Stats.chunks += 1
            tail = FINISH_EVENT + (usage_event(n) if include_usage else b"") + DONE_EVENT
            write(chunk(tail) + b"0\r\n\r\n")
            Stats.streams_done += 1
        finally:
            Stats.open_streams -= 1
            self.streaming = False
            self.task = None
        if not keep_alive:
            self.transport.close()
            return
        queued, self.queue = self.queue, []
        for request in queued:
            if self.streaming:
                self.queue.append(request)
            else:
                self.handle(*request)


def stats_json() -> bytes:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return orjson.dumps({
        "pid": os.getpid(),
        "requests_direct": Stats.requests_direct,
        "requests_gateway": Stats.requests_gateway,
        "streams": Stats.streams,
        "streams_done": Stats.streams_done,
        "chunks": Stats.chunks,
        "open_streams": Stats.open_streams,
        "max_open_streams": Stats.max_open_streams,
        "bad_requests": Stats.bad_requests,
        "cpu_seconds": ru.ru_utime + ru.ru_stime,
        "maxrss_kib": ru.ru_maxrss,
    })


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def serve(args) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: MockProtocol(args), args.host, args.port, backlog=8192, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream listening on http://{args.host}:{args.port} (pid {os.getpid()}, nofile {raise_nofile()})",
          file=sys.stderr, flush=True)
    async with server:
        await stop.wait()
    print(f"mock upstream stopped: {stats_json().decode()}", file=sys.stderr, flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9900)
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream (default 20)")
    parser.add_argument("--interval-ms", type=int, default=50, help="ms between chunks (default 50)")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the mock serves loopback only")
    started = time.monotonic()
    if uvloop is not None:
        uvloop.run(serve(args))
    else:
        asyncio.run(serve(args))
    print(f"mock upstream ran {time.monotonic() - started:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
