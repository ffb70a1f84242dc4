"""Hand-made hostile requests, by category (bench/chaos/README.md lists them). Each category sends a few
variants over raw sockets or HTTP; the gateway must answer each with a 4xx (or a 2xx where the input is odd
but valid), or close a connection it cannot parse — never a 500, never a 502/503/504 (no fault is injected
here), never a hang past its timeout, and no worker may die."""

import asyncio
import gzip
import json
import os
import random
import time
from collections import Counter

import httpx
import orjson

from bench.chaos.provision import MODEL

TIMEOUT = 30.0  # no request may take longer (the slowest variant, a slow body, takes about 11 s)
HELD = 5.0
CHAT = "/v1/chat/completions"


def _chat(**fields) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, **fields}


def _nested(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * depth + closer * depth).encode()


def categories(rng: random.Random) -> dict[str, list]:
    """name → variants. A variant is ("http", method, path, headers, body) or ("raw", bytes[, pace]) or
    ("ws", frames)."""
    def j(value) -> bytes:  # the stdlib's: integers past 64 bits too
        return json.dumps(value).encode()
    h = {"content-type": "application/json"}

    def http(body, path=CHAT, method="POST", headers=None):
        return ("http", method, path, {**h, **(headers or {})}, body if isinstance(body, bytes) else j(body))

    garbage = [os.urandom(rng.randint(1, 4000)) for _ in range(6)]
    return {
        "invalid JSON": [http(b) for b in (b"{", b"}{", b"nul", b"{'model': 1}", b'{"a":}', b"[1,2,,3]", b"\x00",
                                               b"{\"model\": \"x\" \"m\": 1}", b"NaN", b"--")],
        "truncated JSON": [http(j(_chat())[:k]) for k in (1, 5, 10, 20, 30, 40, 50, 60, 70, 80)],
        "invalid UTF-8": [http(j(_chat())[:-3] + b) for b in (b"\xff\"}", b"\xc3\x28\"}", b"\xed\xa0\x80\"}",
                                                               b"\xf8\x88\x80\x80\x80\"}", b"\xc0\xaf\"}")] * 2,
        "binary garbage": [http(b) for b in garbage] + [http(b, path="/v1/embeddings") for b in garbage[:4]],
        "deeply nested arrays": [http(b'{"model":"' + MODEL.encode() + b'","messages":' + _nested(d) + b"}")
                                 for d in (100, 1000, 10_000, 100_000, 500_000)] * 2,
        "deeply nested objects": [http(b'{"model":"x","messages":[{"role":"user","content":'
                                       + b'{"a":' * d + b"1" + b"}" * d + b"}]}") for d in (100, 1000, 10_000, 100_000, 300_000)] * 2,
        "oversized body": [http(b'{"model":"x","messages":[{"role":"user","content":"' + b"a" * n + b'"}]}')
                           for n in (4 * 1024 * 1024, 5 * 1024 * 1024, 8 * 1024 * 1024)] * 3 + [http(b"[" * (5 * 1024 * 1024))],
        "wrong types": [http(b) for b in ({"model": 1, "messages": []}, {"model": MODEL, "messages": "hi"},
                                          {"model": MODEL, "messages": [1, 2]}, {"model": MODEL, "messages": [{"role": 5}]},
                                          _chat(max_tokens="5"), _chat(temperature="hot"), _chat(stream="yes"),
                                          _chat(n=[1]), _chat(stop=7), _chat(tools="all"), [1, 2, 3], "just a string")],
        "missing fields": [http(b) for b in ({}, {"model": MODEL}, {"messages": [{"role": "user", "content": "x"}]},
                                             {"model": MODEL, "messages": []}, {"model": MODEL, "messages": [{}]},
                                             {"model": MODEL, "messages": [{"role": "user"}]},
                                             {"model": MODEL, "messages": [{"content": "x"}]},
                                             {"model": "", "messages": [{"role": "user", "content": "x"}]},
                                             {"input": "x"}, {"model": MODEL, "input": None})],
        "empty body": [http(b"")] * 5 + [http(b"", path="/v1/embeddings")] * 5,
        "null values": [http(_chat(**{f: None})) for f in ("model", "messages", "max_tokens", "temperature", "stream",
                                                           "stop", "tools", "n", "user", "response_format")],
        "extreme numbers": [http(_chat(**kv)) for kv in ({"max_tokens": 10**30}, {"max_tokens": 2**63}, {"n": 10**9},
                                                         {"temperature": 1e308}, {"top_p": -1e308}, {"max_tokens": 0},
                                                         {"seed": 2**128}, {"presence_penalty": 9e99},
                                                         {"frequency_penalty": -9e99}, {"top_logprobs": 10**6})]
                           + [http(b'{"model":"' + MODEL.encode() + b'","messages":[{"role":"user","content":"x"}],"max_tokens":'
                                   + b"9" * 5000 + b"}")],
        "NaN and Infinity": [http(b'{"model":"' + MODEL.encode() + b'","messages":[{"role":"user","content":"x"}],"temperature":'
                                  + v + b"}") for v in (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999")] * 2,
        "unknown fields": [http(_chat(**{f"x{i}": i for i in range(k)})) for k in (1, 10, 100, 1000, 10000)] * 2,
        "huge strings": [http(_chat(messages=[{"role": "user", "content": "я" * n}])) for n in (100_000, 500_000, 1_000_001, 1_900_000)]
                        + [http(_chat(user="u" * 1_000_000)), http(_chat(model="m" * 1_000_000))]
                        + [http(_chat(messages=[{"role": "user", "content": "x", "name": "n" * 100_000}]))] * 4,
        "too many messages": [http(_chat(messages=[{"role": "user", "content": "x"}] * n)) for n in (2049, 5000, 50_000)] * 3
                             + [http(_chat(messages=[{"role": "user", "content": ""}] * 100_000))],
        "odd unicode": [http(_chat(messages=[{"role": "user", "content": s}])) for s in
                        ("\u0000", "\u202e\u202dabc", "\ufeff" * 100, "\U0001F600" * 10000, "\u0301" * 50_000,
                         "a\u0000b\u0000c", "\r\n\r\n", "𝕏" * 1000, "\x7f\x1b[31m", "\ud7ff\ue000")],
        "lone surrogates": [http(b'{"model":"' + MODEL.encode() + b'","messages":[{"role":"user","content":"' + s + b'"}]}')
                            for s in (b"\\ud800", b"\\udfff", b"\\ud800\\ud800", b"x\\udc00y", b"\\uDBFF")] * 2,
        "duplicate keys": [http(b'{"model":"a","model":"' + MODEL.encode() + b'","messages":[{"role":"user","content":"x"}],'
                                + b'"stream":true,"stream":' + v + b"}") for v in (b"false", b"true", b"1", b"null", b'"x"')] * 2,
        "wrong content type": [http(j(_chat()), headers={"content-type": ct}) for ct in
                               ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                "application/xml", "", "application/json; charset=latin-1", "*/*", "image/png",
                                "application/json\x00", "a" * 5000)],
        "compressed body": [http(gzip.compress(j(_chat())), headers={"content-encoding": "gzip"}),
                            http(gzip.compress(b"[" * 10_000_000), headers={"content-encoding": "gzip"}),
                            http(j(_chat()), headers={"content-encoding": "br"}),
                            http(j(_chat()), headers={"content-encoding": "gzip, gzip"}),
                            http(b"\x1f\x8b\x08\x00garbage", headers={"content-encoding": "gzip"})] * 2,
        "wrong methods": [("http", m, p, {}, b"") for m in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS")
                          for p in (CHAT, "/v1/embeddings")],
        "path tricks": [("http", "GET", p, {}, b"") for p in
                        ("/v1/../admin/", "/v1/%2e%2e/admin/", "/v1//chat/completions", "/v1/chat/completions/",
                         "/v1/models/%00", "/v1/models/" + "a" * 4000, "/v1/models/..%2f..%2fetc%2fpasswd",
                         "/v1/%ff%fe", "/v1/models/%C0%AE%C0%AE", "/%2e/v1/models")],
        "query garbage": [("http", "POST", CHAT + q, h, j(_chat())) for q in
                          ("?a=%ZZ", "?" + "a=1&" * 5000, "?%00=%00", "?stream=true", "?model=../../x",
                           "?x=" + "%" * 1000, "?;;;", "?a[]=1&a[x]=2", "?\u00e9=1", "?=")],
        "authorization garbage": [http(_chat(), headers={"authorization": v}) for v in
                                  ("Bearer", "Bearer ", "Basic Zm9vOmJhcg==", "Bearer " + "x" * 10000, "bearer\tkey",
                                   "Bearer xr-" + "0" * 64, "Bearer \u00e9\u00e9", "Token abc", "Bearer a b c", "Digest x")],
        "huge headers": [("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * n + b"\r\n\r\n")
                         for n in (8_000, 65_000, 200_000, 1_000_000)]
                        + [("raw", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(k)) + b"\r\n")
                           for k in (100, 1000, 10_000)]
                        + [("raw", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")] * 3,
        "header injection": [("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\rX-Evil: 1\r\n"
                              b"Content-Length: 2\r\n\r\n{}"),
                             ("raw", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\nY: b\r\n\r\n"),
                             ("raw", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX:\x00\r\n\r\n"),
                             ("raw", b"GET /healthz HTTP/1.1\r\nHost: x\r\n Folded: yes\r\n\r\n"),
                             ("raw", b"GET /healthz HTTP/1.1\r\nHo st: x\r\n\r\n"),
                             ("raw", b"GET /healthz HTTP/1.1\r\n: empty\r\n\r\n"),
                             ("raw", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX\x80: y\r\n\r\n"),
                             ("raw", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
                             ("raw", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"\xff" * 100 + b"\r\n\r\n"),
                             ("raw", b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n")],
        "malformed request line": [("raw", b) for b in (b"\r\n\r\n", b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                                                        b"GET / HTTP/1.1 extra\r\n\r\n", b"G\x00T / HTTP/1.1\r\n\r\n",
                                                        b"GET /healthz\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                                                        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", os.urandom(500))],
        "request smuggling": [("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/ HTTP/1.1\r\nHost: x\r\n\r\n"),
                              ("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"zz\r\nabc\r\n0\r\n\r\n"),
                              ("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"ffffffffffffffff\r\nabc\r\n"),
                              ("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
                              ("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
                              ("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
                              ("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n"),
                              ("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"),
                              ("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{}"),
                              ("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n{}}}}")],
        "slow body": [("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Authorization: Bearer {billing}\r\nContent-Length: 200\r\n\r\n" + j(_chat()).rjust(200), 0.5)] * 10,
        "slow headers": [("raw", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: 1\r\n" * 15 + b"\r\n", 0.5)] * 10,
        "abandoned requests": [("raw", b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"m")]
                              * 5 + [("raw", b"GET /healthz HTTP/1.1\r\nHo")] * 5,
        "tools abuse": [http(_chat(tools=t)) for t in
                        ([{"type": "function", "function": {"name": "f" * 10000}}], [{"type": "x"}] * 5000,
                         [{"type": "function", "function": {"name": "f", "parameters": {"$ref": "#"}}}],
                         [{"type": "function", "function": {"name": "f", "parameters": orjson.loads(_nested(200, "[", "]"))}}],
                         [{"type": "function"}], [None], [{"type": "function", "function": {"name": "f"}}] * 2000,
                         [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                                         "properties": {str(i): {} for i in range(5000)}}}}],
                         {"type": "function"}, [{"type": "function", "function": {"name": "a/b c"}}])],
        "response_format abuse": [http(_chat(response_format=r)) for r in
                                  ({"type": "json_schema"}, {"type": "json_schema", "json_schema": {"schema": {"$ref": "#"}}},
                                   {"type": "nope"}, {"type": "json_schema", "json_schema": {"name": "x" * 10000, "schema": {}}},
                                   "json", {"type": "json_object", "extra": [1] * 10000}, {"type": None},
                                   {"type": "json_schema", "json_schema": {"schema": {"type": "object", "properties":
                                                                                      {"a": {"$ref": "#/properties/a"}}}}},
                                   {}, [])],
        "stop abuse": [http(_chat(stop=s)) for s in (["x"] * 5, ["x"] * 1000, "x" * 100_000, [""], [None], ["a", 1],
                                                      ["\u0000"], [" "] * 4, ["x" * 5000] * 4, [])],
        "model name abuse": [http(_chat(model=m)) for m in ("../../etc/passwd", "mts/../tbank/x", "\u0000", "a" * 100_000,
                                                            "mts/", "/", "*", "mts/*", "%s%s%s", "{{7*7}}")],
        "embeddings garbage": [http(b, path="/v1/embeddings") for b in
                               ({"model": "x", "input": [[1, 2]] * 10000}, {"model": "x", "input": [None]},
                                {"model": "x", "input": ""}, {"model": "x", "input": ["a"] * 100_000},
                                {"model": "x", "input": {"a": 1}}, {"model": "x", "input": [1.5]},
                                {"model": "x", "input": "a" * 3_000_000}, {"model": "x", "encoding_format": "hex", "input": "a"},
                                {"model": "x", "dimensions": -1, "input": "a"}, {"model": "x", "input": [[]]})],
        "management API garbage": [("http", m, p, {**h, "authorization": "Bearer {manage}"}, b) for m, p, b in (
            ("POST", "/api/v1/keys/", b"{"), ("POST", "/api/v1/keys/", j({"name": "x" * 100_000})),
            ("POST", "/api/v1/keys/", j({"name": "k", "scopes": ["root"]})), ("POST", "/api/v1/keys/", j({"name": None})),
            ("POST", "/api/v1/keys/", j({"name": "k", "requests_rate": "1e99/min"})),
            ("POST", "/api/v1/keys/", j({"name": "k", "monthly_budget": "NaN"})),
            ("GET", "/api/v1/keys/999999999999999999999/", b""), ("GET", "/api/v1/keys/%00/", b""),
            ("GET", "/api/v1/usage/?page=-1&page_size=99999999", b""), ("POST", "/api/v1/keys/1/revoke/", b"[]"))],
        "websocket garbage": [("ws", f) for f in ([b"\x00" * 10], [b"not json"], [b"{" * 100_000], [b"[]"], [b'{"type":"x"}'],
                                                  [b'{"model":1}'], [orjson.dumps({"type": "chat", "body": "x"})],
                                                  ["text\udcff".encode("utf-8", "surrogatepass")], [os.urandom(1000)],
                                                  [b'{"type":"cancel","id":' + b"9" * 5000 + b"}"])],
    }


async def _http(client: httpx.AsyncClient, base: str, variant, keys: dict) -> str:
    _kind, method, path, headers, body = variant
    headers = {"authorization": f"Bearer {keys['billing']}", **headers}
    headers = {k: v.replace("{manage}", keys["manage"]).encode() for k, v in headers.items()}  # bytes: any octets go
    try:
        response = await client.request(method, base + path, headers=headers, content=body or None)
        return str(response.status_code)
    except httpx.TimeoutException:
        return "hung"
    except httpx.LocalProtocolError:
        return "unsendable"  # the client library would not send it (not counted as a request)
    except httpx.TransportError:
        return "closed"


async def _raw(host: str, port: int, variant, keys: dict) -> str:
    """The status line's code; "closed" when the server hangs up first; "held_open" when a request whose head
    never ends is still open after HELD seconds (the server waits for the rest, as it should: the reverse
    proxy's header timeout cuts slowloris clients, deploy/nginx); "hung" when a complete one gets no answer."""
    data, pace = variant[1].replace(b"{billing}", keys["billing"].encode()), (variant[2] if len(variant) > 2 else 0)
    complete = b"\r\n\r\n" in data.lstrip(b"\r\n")  # empty lines before a request line are skipped (RFC 9112 §2.2)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, TimeoutError):
        return "refused"
    try:
        async with asyncio.timeout(TIMEOUT if complete else HELD):
            if pace:
                for i in range(0, len(data), 10):  # ten bytes at a time: slowloris
                    writer.write(data[i:i + 10])
                    await writer.drain()
                    await asyncio.sleep(pace)
            else:
                writer.write(data)
                await writer.drain()
            line = await reader.readline()
        parts = line.split()
        return parts[1].decode() if len(parts) > 1 and line.startswith(b"HTTP/") else "closed"
    except TimeoutError:
        return "hung" if complete else "held_open"
    except (ConnectionError, OSError):
        return "closed"
    finally:
        writer.close()


async def _ws(host: str, port: int, variant, keys: dict) -> str:
    import websockets

    try:
        async with asyncio.timeout(TIMEOUT):
            async with websockets.connect(f"ws://{host}:{port}/v1/realtime/chat", max_size=2**20,
                                          additional_headers={"authorization": f"Bearer {keys['billing']}"}) as ws:
                for frame in variant[1]:
                    await ws.send(frame)
                try:
                    async with asyncio.timeout(5):
                        await ws.recv()
                except TimeoutError:
                    pass
                return "ws"
    except TimeoutError:
        return "hung"
    except websockets.InvalidStatus as exc:
        return str(exc.response.status_code)
    except (websockets.ConnectionClosed, OSError, websockets.InvalidHandshake):
        return "closed"


def run(base: str, keys: dict, seed: int = 14, concurrency: int = 16) -> dict:
    host, port = base.split("//")[1].split(":")
    port = int(port)
    cats = categories(random.Random(seed))

    async def main():
        by_category: dict[str, Counter] = {}
        slowest = 0.0
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            async def one(name, variant):
                nonlocal slowest
                async with gate:
                    started = time.monotonic()
                    if variant[0] == "http":
                        outcome = await _http(client, base, variant, keys)
                    elif variant[0] == "raw":
                        outcome = await _raw(host, port, variant, keys)
                    else:
                        outcome = await _ws(host, port, variant, keys)
                    slowest = max(slowest, time.monotonic() - started)
                    by_category.setdefault(name, Counter())[outcome] += 1

            await asyncio.gather(*(one(name, v) for name, variants in cats.items() for v in variants))
        return by_category, slowest

    by_category, slowest = asyncio.run(main())
    total = Counter()
    for counts in by_category.values():
        total.update(counts)
    return {
        "categories": len(by_category), "requests": sum(total.values()) - total.get("unsendable", 0),
        "http_500": sum(v for k, v in total.items() if k == "500"),
        "unexpected_5xx": sum(v for k, v in total.items() if k in ("502", "503", "504")),
        "hung": total.get("hung", 0), "slowest_s": round(slowest, 2),
        "outcomes": dict(total), "by_category": {k: dict(v) for k, v in by_category.items()},
    }
