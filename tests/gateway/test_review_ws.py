"""Issue 8 review: what a hostile read of the WebSocket endpoint and its log filter found.

- A key reaches the log: uvicorn's WebSocket protocol (the `websockets` library) logs every
  handshake header at DEBUG (`< Authorization: Bearer xr-...`, `< Sec-WebSocket-Protocol:
  xrouter.v1, xrouter.key.xr-...`); a query the filter's pattern does not expect (a quote in it,
  a path without "/") and exception texts went through unfiltered.
- Every key event made each open socket's key a task and a database lookup of its own, once
  per event: a burst of key edits multiplied into events x sockets tasks.
"""

import asyncio
import logging
import uuid

import pytest
from pythonjsonlogger.json import JsonFormatter
from websockets.asyncio.client import connect

from apps.gateway import consumers
from tests.conftest import start_gateway
from tests.gateway.conftest import _stop_with_children
from xrouter_project.log_filters import StripQueryStrings

KEY = "xr-0a1b2c3d-" + "S3cretS3cretS3cretS3cretS3cretS3cretS3c"
SECRET = KEY.split("-", 2)[2]


def _formatted(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    StripQueryStrings().filter(record)
    return formatter.format(record)


def _record(msg, args=(), exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, exc_info)


@pytest.mark.parametrize("path", [
    "/v1/realtime/chat?api_key='" + KEY + "'",       # a quote in the query stopped the cut
    "/v1/realtime/chat?a=\"&api_key=" + KEY,
    "v1?api_key=" + KEY,                             # a request target without a leading "/"
    "/ ?api_key=" + KEY,                             # a path with a blank (%20) before the query
])
def test_no_query_string_reaches_a_log_line_whatever_the_path(path):
    for formatter in (logging.Formatter("%(message)s"), JsonFormatter("%(message)s")):
        line = _formatted(_record('%s - "WebSocket %s" [accepted]', ("127.0.0.1:5", path)), formatter)
        assert SECRET not in line and "api_key" not in line, line


@pytest.mark.parametrize("header", ["Bearer " + KEY, "xrouter.v1, xrouter.key." + KEY])
def test_a_handshake_header_logged_at_debug_keeps_its_key_out(header):
    line = _formatted(_record("< %s: %s", ("Authorization", header)), logging.Formatter("%(message)s"))
    assert SECRET not in line, line


def test_an_exception_text_keeps_keys_and_queries_out():
    try:
        raise ValueError(f"upstream said no: https://api.example/v1/models?key={SECRET} (key {KEY})")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    for formatter in (logging.Formatter("%(message)s"), JsonFormatter("%(message)s")):
        line = _formatted(_record("call failed", exc_info=exc_info), formatter)
        assert "ValueError" in line and SECRET not in line, line


def test_a_websocket_handshake_at_debug_level_logs_no_key(gateway, tmp_path):
    """The real server at LOG_LEVEL=debug: uvicorn's WebSocket protocol logs the handshake's headers."""
    log_path = tmp_path / "server.log"
    env = {**gateway.env, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}", "LOG_LEVEL": "debug"}
    key = gateway.keys["alice"]
    with open(log_path, "wb") as log:
        process, base = start_gateway(env, log=log)
    try:
        async def handshakes():
            url = base.replace("http://", "ws://") + "/v1/realtime/chat"
            async with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
                await ws.send('{"type": "ping"}')
                await asyncio.wait_for(ws.recv(), 10)
            async with connect(url, subprotocols=["xrouter.v1", f"xrouter.key.{key}"]) as ws:
                await ws.send('{"type": "ping"}')
                await asyncio.wait_for(ws.recv(), 10)

        asyncio.run(handshakes())
    finally:
        _stop_with_children(process)
    text = log_path.read_text(errors="replace")
    assert "WebSocket /v1/realtime/chat" in text, text[-2000:]  # the handshakes were logged
    assert key.split("-", 2)[2] not in text, [line for line in text.splitlines() if key[:12] in line][:5]


async def test_a_burst_of_key_events_starts_one_recheck_not_one_per_socket_and_event():
    """Events x open sockets tasks (each a database lookup once the key cache is cleared) made a
    burst of key edits a storm: the re-check is one sweep, and events during it ask for one more."""
    tokens = [f"xr-{i:08x}-{uuid.uuid4().hex}" for i in range(50)]
    for token in tokens:
        consumers._sockets[token] = set()  # an open socket's key (the sweep finds no socket to close)
    before = {t for t in asyncio.all_tasks() if not t.done()}
    try:
        for _ in range(100):
            consumers._on_keys_event({})
        started = {t for t in asyncio.all_tasks() if not t.done()} - before
        assert len(started) <= 1, len(started)
    finally:
        for token in tokens:
            consumers._sockets.pop(token, None)
        for task in {t for t in asyncio.all_tasks() if not t.done()} - before - {asyncio.current_task()}:
            task.cancel()
        await asyncio.sleep(0)


@pytest.fixture
def private_redis():
    """A Redis of the test's own, which the test may stop (SIGSTOP) and resume."""
    import shutil
    import signal
    import subprocess
    import time

    import redis

    from tests.conftest import free_port, need

    binary = shutil.which("redis-server")
    need("redis-server (a private Redis)", binary is not None)
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no", "--daemonize", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield process, url
    process.send_signal(signal.SIGCONT)
    process.kill()
    process.wait(10)


def test_after_its_done_frame_an_answer_is_over_whatever_its_cache_write_does(gateway, emulator_control, private_redis):
    """The done frame goes out before the relay writes the answer to the response cache. A client
    that sends its next `request` (or a late `cancel`) on `done` must be served (not told
    `request_in_flight`, nor sent a second `done`), however long that write takes: here Redis
    stops answering mid-stream, so the write hangs."""
    import json
    import signal

    redis_process, redis_url = private_redis
    env = {**gateway.env, "REDIS_URL": redis_url, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}"}
    emulator_control("gigachat", chunk_delay_ms=100)
    process, base = start_gateway(env)
    try:
        async def conversation():
            url = base.replace("http://", "ws://") + "/v1/realtime/chat"
            body = {"model": "gigachat/GigaChat-2-Max", "temperature": 0,
                    "messages": [{"role": "user", "content": f"cache me [long] {uuid.uuid4().hex}"}]}
            async with connect(url, additional_headers={"Authorization": f"Bearer {gateway.keys['alice']}"}) as ws:
                await ws.send(json.dumps({"type": "request", **body}))
                for _ in range(2):
                    await asyncio.wait_for(ws.recv(), 15)
                redis_process.send_signal(signal.SIGSTOP)  # the cache write after `done` will hang
                while (frame := json.loads(await asyncio.wait_for(ws.recv(), 15))).get("type") not in ("done", "error"):
                    pass
                assert frame["type"] == "done", frame
                await ws.send('{"type": "cancel"}')  # late: the answer is complete
                second = {**body, "temperature": 1}
                await ws.send(json.dumps({"type": "request", **second}))
                return json.loads(await asyncio.wait_for(ws.recv(), 15))

        first = asyncio.run(conversation())
    finally:
        redis_process.send_signal(signal.SIGCONT)
        _stop_with_children(process)
    assert first.get("object") == "chat.completion.chunk", first


def test_a_handshake_the_key_store_cannot_check_is_closed_with_try_again_later(gateway, tmp_path):
    """PostgreSQL unreachable and the key not cached: the socket is told to come back (1013),
    not failed with an HTTP 500 and an 'Exception in ASGI application' traceback per attempt."""
    from websockets.exceptions import ConnectionClosed

    from tests.conftest import free_port

    log_path = tmp_path / "server.log"
    env = {**gateway.env, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}", "LOG_LEVEL": "info",
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nowhere", "XROUTER_DB_CONNECT_TIMEOUT": "1"}
    with open(log_path, "wb") as log:
        process, base = start_gateway(env, log=log)
    try:
        async def handshake():
            url = base.replace("http://", "ws://") + "/v1/realtime/chat"
            async with connect(url, additional_headers={"Authorization": f"Bearer {gateway.keys['alice']}"}) as ws:
                try:
                    await asyncio.wait_for(ws.recv(), 10)
                except ConnectionClosed as exc:
                    return exc.rcvd.code if exc.rcvd else 1006, exc.rcvd.reason if exc.rcvd else ""
            return None

        code, reason = asyncio.run(handshake())
    finally:
        _stop_with_children(process)
    assert code == 1013 and "retry" in reason, (code, reason)
    assert "Exception in ASGI application" not in log_path.read_text(errors="replace")


def test_a_cancel_before_the_first_chunk_still_leaves_a_usage_row(gateway, emulator_control, django_db_blocker):
    """The upstream was called (its prompt is processed and may be charged): the request is
    recorded (client_cancelled, prompt estimated) as an SSE client that leaves early is."""
    import json

    from tests.conftest import wait_for_usage

    emulator_control("gigachat", latency_ms=3000)

    async def cancel_while_waiting():
        url = gateway.base_url.replace("http://", "ws://") + "/v1/realtime/chat"
        async with connect(url, additional_headers={"Authorization": f"Bearer {gateway.keys['alice']}"}) as ws:
            await ws.send(json.dumps({"type": "request", "model": "gigachat/GigaChat-2-Max",
                                      "messages": [{"role": "user", "content": f"slow {uuid.uuid4().hex}"}]}))
            await asyncio.sleep(1.0)  # the upstream has the request, no chunk yet
            await ws.send('{"type": "cancel"}')
            while (frame := json.loads(await asyncio.wait_for(ws.recv(), 15))).get("type") not in ("done", "error"):
                pass
            return frame

    frame = asyncio.run(cancel_while_waiting())
    assert frame.get("cancelled") is True, frame
    record = wait_for_usage(django_db_blocker, frame["id"].removeprefix("chatcmpl-"), timeout=10)
    assert record.status == "client_cancelled" and record.prompt_tokens > 0


def test_an_unknown_websocket_path_is_refused_quietly(gateway, tmp_path):
    """Anyone, without a key, could make each handshake to a wrong path an ERROR traceback in the
    log (and an HTTP 500): it is a plain 403, logged as uvicorn's one INFO line."""
    from websockets.exceptions import InvalidStatus

    log_path = tmp_path / "server.log"
    env = {**gateway.env, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}", "LOG_LEVEL": "info"}
    with open(log_path, "wb") as log:
        process, base = start_gateway(env, log=log)
    try:
        async def handshake():
            with pytest.raises(InvalidStatus) as refused:
                async with connect(base.replace("http://", "ws://") + "/v1/realtime/nope"):
                    pass
            return refused.value.response.status_code

        status = asyncio.run(handshake())
    finally:
        _stop_with_children(process)
    assert status == 403, status
    text = log_path.read_text(errors="replace")
    assert "Exception in ASGI application" not in text and "Traceback" not in text, text[-3000:]


def test_a_key_revoked_through_the_gateways_own_api_closes_its_sockets(gateway, django_db_blocker, private_redis):
    """The management API runs in the gateway's processes, in a thread: the key event it publishes
    reaches this process's handlers there (the bus skips a process's own events), where there is
    no event loop, so the sockets of the process that served the revocation stayed open. (A Redis
    of its own: another run's key events on a shared bus would close the socket by chance.)"""
    import time

    import httpx
    from websockets.exceptions import ConnectionClosed

    from apps.accounts.models import User
    from apps.keys.services import key_create

    with django_db_blocker.unblock():
        key, plaintext = key_create(user=User.objects.get(username="alice"), name="ws-revoked-by-api",
                                    scopes=["chat", "keys:manage"])
    _, redis_url = private_redis
    process, base = start_gateway({**gateway.env, "REDIS_URL": redis_url})

    async def revoke_through_the_api():
        url = base.replace("http://", "ws://") + "/v1/realtime/chat"
        async with connect(url, additional_headers={"Authorization": f"Bearer {plaintext}"}) as ws:
            await ws.send('{"type": "ping"}')
            await asyncio.wait_for(ws.recv(), 5)
            async with httpx.AsyncClient() as http:
                answer = await http.post(f"{base}/api/v1/keys/{key.id}/revoke/",
                                         headers={"Authorization": f"Bearer {plaintext}"}, timeout=10)
            revoked = time.monotonic()  # the revocation is committed once the API has answered
            assert answer.status_code < 300, answer.text
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 3)
            except ConnectionClosed as exc:
                return (exc.rcvd.code if exc.rcvd else 1006), time.monotonic() - revoked
            except TimeoutError:
                return None, time.monotonic() - revoked

    try:
        code, after = asyncio.run(revoke_through_the_api())
    finally:
        _stop_with_children(process)
    assert code == 4401 and after < 1.5, (code, after)
