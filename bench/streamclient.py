"""A small, cheap streaming client for the benchmark: many concurrent SSE chat streams on loopback.

A raw asyncio protocol on uvloop with httptools' C response parser, not aiohttp: holding
5,000 streams and counting 10,000 chunks a second must leave the two cores to the gateway.
Every stream is checked: HTTP 200, at least `chunks` data events, `data: [DONE]` last, no
error event. Prints one JSON object on stdout.

Modes:
  hold  `--streams` streams at once (spread over `--ramp` seconds), one connection each.
  loop  `--streams` workers, each on one keep-alive connection, sending streams one after
        another until `--duration` seconds or `--max-streams` streams in all; `--stagger`
        spreads the workers' starts so that streams do not arrive in lockstep.

Every run is bounded by `--timeout` (seconds) and targets 127.0.0.1 only.
"""

import argparse
import asyncio
import os
import resource
import sys
import time
from urllib.parse import urlsplit

import httptools
import orjson

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


class Result:
    __slots__ = ("ok", "error", "status", "events", "ttft", "duration", "done_seen")

    def __init__(self):
        self.ok = False
        self.error = ""
        self.status = 0
        self.events = 0
        self.ttft = None
        self.duration = None
        self.done_seen = False


class StreamProtocol(asyncio.Protocol):
    """One connection; answers are read one at a time (`begin` arms it for the next)."""

    def __init__(self, stats):
        self.stats = stats
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.result = None
        self.future = None
        self.t0 = 0.0
        self.tail = b""
        self.closed = False
        self.error_seen = False
        self.keep_alive = True

    def begin(self, t0):
        self.result = Result()
        self.future = asyncio.get_running_loop().create_future()
        self.t0 = t0
        self.tail = b""
        self.error_seen = False
        return self.future

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(f"parse_error: {exc}")
            self.transport.close()

    def connection_lost(self, exc):
        self.closed = True
        if self.future is not None and not self.future.done():
            self._finish("connection_lost")

    def on_status(self, status):
        self.result.status = self.parser.get_status_code()

    def on_body(self, body):
        r = self.result
        window = self.tail + body
        # An SSE event ends with a blank line; count those, across frame boundaries.
        new = window.count(b"\n\n") - self.tail.count(b"\n\n")
        if new:
            if r.events == 0:
                r.ttft = time.monotonic() - self.t0
                self.stats.first_event()
            r.events += new
        if b'"error"' in window:
            self.error_seen = True
        if b"data: [DONE]" in window:
            r.done_seen = True
        self.tail = window[-24:]

    def on_message_complete(self):
        self.keep_alive = self.parser.should_keep_alive()
        r = self.result
        if r.status != 200:
            self._finish(f"http_{r.status}")
        elif self.error_seen:
            self._finish("error_event")
        elif not r.done_seen:
            self._finish("no_done")
        else:
            self._finish("")

    def _finish(self, error):
        if self.future is None or self.future.done():
            return
        r = self.result
        r.duration = time.monotonic() - self.t0
        r.error = error
        r.ok = not error
        self.future.set_result(r)


class Stats:
    def __init__(self):
        self.open = 0
        self.max_open = 0
        self.streaming = 0
        self.max_streaming = 0

    def opened(self):
        self.open += 1
        self.max_open = max(self.max_open, self.open)

    def first_event(self):
        self.streaming += 1
        self.max_streaming = max(self.max_streaming, self.streaming)

    def closed(self, got_first):
        self.open -= 1
        if got_first:
            self.streaming -= 1


def build_request(url, key, chunks, interval_ms, direct, include_usage):
    parts = urlsplit(url)
    body = orjson.dumps({
        "model": "bench-model",
        "stream": True,
        "stream_options": {"include_usage": include_usage},
        "messages": [{"role": "user", "content": f"Count for me. chunks={chunks} interval_ms={interval_ms}"}],
    })
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {len(body)}\r\n"
        + ("x-bench-direct: 1\r\n" if direct else "")
        + "\r\n"
    )
    return parts.hostname, parts.port, head.encode() + body


async def one_stream(loop, host, port, request, stats, deadline, min_events):
    t0 = time.monotonic()
    stats.opened()
    proto = None
    try:
        _transport, proto = await asyncio.wait_for(
            loop.create_connection(lambda: StreamProtocol(stats), host, port), max(deadline - time.monotonic(), 0.1))
        future = proto.begin(t0)
        proto.transport.write(request)
        result = await asyncio.wait_for(future, max(deadline - time.monotonic(), 0.1))
    except TimeoutError:
        result = proto.result if proto is not None and proto.result is not None else Result()
        result.error, result.ok = "timeout", False
    except OSError as exc:
        result = Result()
        result.error = f"connect: {exc.__class__.__name__}"
    finally:
        if proto is not None and proto.transport is not None:
            proto.transport.close()
    stats.closed(result.events > 0)
    if result.ok and result.events < min_events:
        result.ok, result.error = False, "short_stream"
    return result


async def worker_loop(loop, host, port, request, stats, deadline, end_at, budget, min_events, results, delay=0.0):
    proto = None
    if delay > 0:
        await asyncio.sleep(delay)
    while time.monotonic() < end_at and budget[0] > 0:
        budget[0] -= 1
        t0 = time.monotonic()
        try:
            if proto is None or proto.closed or not proto.keep_alive:
                if proto is not None:
                    proto.transport.close()
                _t, proto = await asyncio.wait_for(
                    loop.create_connection(lambda: StreamProtocol(stats), host, port), max(deadline - t0, 0.1))
            stats.opened()
            future = proto.begin(t0)
            proto.transport.write(request)
            result = await asyncio.wait_for(future, max(deadline - time.monotonic(), 0.1))
            stats.closed(result.events > 0)
        except TimeoutError:
            result = Result()
            result.error = "timeout"
            stats.closed(False)
        except OSError as exc:
            result = Result()
            result.error = f"connect: {exc.__class__.__name__}"
            await asyncio.sleep(0.05)
        if result.ok and result.events < min_events:
            result.ok, result.error = False, "short_stream"
        results.append(result)
        if not result.ok and proto is not None:
            proto.transport.close()
            proto = None
    if proto is not None:
        proto.transport.close()


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


async def run(args) -> dict:
    loop = asyncio.get_running_loop()
    host, port, request = build_request(args.url, args.key, args.chunks, args.interval_ms, args.direct,
                                        not args.no_usage)
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("streamclient: loopback targets only")
    stats = Stats()
    min_events = args.chunks + 1  # the content chunks and [DONE] at least
    started = time.monotonic()
    deadline = started + args.timeout
    if args.mode == "hold":
        async def delayed(i):
            if args.ramp > 0:
                await asyncio.sleep(args.ramp * i / args.streams)
            return await one_stream(loop, host, port, request, stats, deadline, min_events)

        results = await asyncio.gather(*(delayed(i) for i in range(args.streams)))
    else:
        results = []
        budget = [args.max_streams]
        end_at = min(started + args.duration, deadline)
        await asyncio.gather(*(worker_loop(loop, host, port, request, stats, deadline, end_at, budget, min_events, results,
                                           args.stagger * i / args.streams)
                               for i in range(args.streams)))
    wall = time.monotonic() - started
    ok = [r for r in results if r.ok]
    errors = {}
    for r in results:
        if not r.ok:
            errors[r.error] = errors.get(r.error, 0) + 1
    ttft = [r.ttft * 1000 for r in ok if r.ttft is not None]
    durations = [r.duration for r in ok]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "mode": args.mode,
        "streams": len(results),
        "completed": len(ok),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "events": sum(r.events for r in results),
        "events_ok": sum(r.events for r in ok),
        "ttft_ms_p50": pct(ttft, 50),
        "ttft_ms_p99": pct(ttft, 99),
        "ttft_ms_max": max(ttft) if ttft else None,
        "duration_s_p50": pct(durations, 50),
        "duration_s_p99": pct(durations, 99),
        "duration_s_max": max(durations) if durations else None,
        "wall_s": wall,
        "max_open": stats.max_open,
        "max_streaming": stats.max_streaming,
        "client_cpu_s": ru.ru_utime + ru.ru_stime,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description="concurrent SSE chat streams against 127.0.0.1")
    p.add_argument("--url", required=True)
    p.add_argument("--key", default="none")
    p.add_argument("--direct", action="store_true", help="send x-bench-direct (the mock counts it apart)")
    p.add_argument("--mode", choices=("hold", "loop"), default="hold")
    p.add_argument("--streams", type=int, default=16, help="concurrent streams (hold) or workers (loop)")
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--interval-ms", type=int, default=50)
    p.add_argument("--ramp", type=float, default=0.0, help="hold: spread the starts over this many seconds")
    p.add_argument("--duration", type=float, default=10.0, help="loop: stop starting streams after this")
    p.add_argument("--stagger", type=float, default=0.0,
                   help="loop: spread the workers' first streams over this many seconds (one stream's length keeps "
                        "them from arriving in lockstep)")
    p.add_argument("--max-streams", type=int, default=1_000_000, help="loop: at most this many streams in all")
    p.add_argument("--timeout", type=float, default=120.0, help="hard bound on the whole run, seconds")
    p.add_argument("--no-usage", action="store_true", help="do not ask for stream_options.include_usage")
    args = p.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = args.streams + 64
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        raise SystemExit(f"streamclient: RLIMIT_NOFILE {hard} is below the {need} sockets needed; raise `ulimit -Hn`")
    runner = uvloop.run if uvloop is not None else asyncio.run
    out = runner(run(args))
    out["pid"] = os.getpid()
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
