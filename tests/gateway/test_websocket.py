"""The WebSocket endpoint `/v1/realtime/chat` (apps/gateway/consumers.py) on the real server
process, driven with the `websockets` client: auth by header or subprotocol (never the query
string), the request/cancel/ping protocol, the relay it shares with SSE (rules, billing), key
revocation closing open sockets, and streams drained on SIGTERM."""

import asyncio
import json
import signal
import time
import uuid

import httpx
import pytest
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import need, start_gateway, wait_for_usage
from tests.gateway.conftest import _stop_with_children

SLOW = {"chunk_delay_ms": 150}  # GigaChat's [long] answer is 24 chunks: about 3.5 s


def _ws_url(base_url: str, query: str = "") -> str:
    return base_url.replace("http://", "ws://") + "/v1/realtime/chat" + query


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _request(model="gigachat/GigaChat-2-Max", text="over ws [long]", **extra) -> str:
    return json.dumps({"type": "request", "model": model, "messages": [{"role": "user", "content": text}], **extra})


async def _until_end(ws, frames=None, timeout=15) -> list[dict]:
    """Frames up to and including `done` or `error`."""
    frames = [] if frames is None else frames
    while True:
        data = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        frames.append(data)
        if data.get("type") in ("done", "error"):
            return frames


async def _converse(base_url: str, key: str, request: str, **connect_kwargs) -> list[dict]:
    kwargs = {"additional_headers": _auth(key), **connect_kwargs}
    async with connect(_ws_url(base_url), open_timeout=10, **kwargs) as ws:
        await ws.send(request)
        return await _until_end(ws)


async def _close_code(ws, timeout=5) -> tuple[int, str]:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as exc:
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1006, "")


def _text(frames) -> str:
    return "".join(f["choices"][0]["delta"].get("content") or "" for f in frames if f.get("object") == "chat.completion.chunk")


def _request_id(frames) -> str:
    return frames[0]["id"].removeprefix("chatcmpl-")


@pytest.mark.parametrize("model", ["gigachat/GigaChat-2-Max", "yandexgpt/yandexgpt-lite"])
def test_it_streams_a_chat_over_a_websocket_then_says_done(gateway, django_db_blocker, model):
    from apps.emulators.behaviour import LONG_ANSWER

    # Synchronous, so the usage lookup below runs in this thread and its database connection is
    # closed with the session's (one left open in a worker thread blocks dropping the test database).
    frames = asyncio.run(_converse(gateway.base_url, gateway.keys["alice"], _request(model)))
    done = frames[-1]
    assert done["type"] == "done", done
    assert done["usage"]["prompt_tokens"] > 0 and done["usage"]["completion_tokens"] > 0
    chunks = frames[:-1]
    assert len(chunks) > 3
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == model for c in chunks)
    assert _text(chunks) == LONG_ANSWER
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    record = wait_for_usage(django_db_blocker, _request_id(chunks))
    assert record.stream and record.status == "ok"
    assert record.completion_tokens == done["usage"]["completion_tokens"]


async def test_it_takes_the_key_as_a_subprotocol_and_answers_xrouter_v1_only(gateway):
    key = gateway.keys["alice"]
    async with connect(_ws_url(gateway.base_url), subprotocols=["xrouter.v1", f"xrouter.key.{key}"], open_timeout=10) as ws:
        assert ws.subprotocol == "xrouter.v1"
        await ws.send(_request(text="hello"))
        frames = await _until_end(ws)
    assert frames[-1]["type"] == "done", frames[-1]


@pytest.mark.parametrize("how", ["missing", "unknown", "query"])
async def test_it_refuses_a_websocket_without_a_good_key_with_4401(gateway, how):
    headers, query = {}, ""
    if how == "unknown":
        headers = _auth("xr-notakey0-" + "x" * 43)
    elif how == "query":
        headers, query = _auth(gateway.keys["alice"]), f"?api_key={gateway.keys['alice']}"
    async with connect(_ws_url(gateway.base_url, query), additional_headers=headers, open_timeout=10) as ws:
        code, reason = await _close_code(ws)
    assert code == 4401
    if how == "unknown":
        assert "revoked" in reason, reason
    else:
        assert "Authorization" in reason and "xrouter.key." in reason, reason


async def test_it_answers_a_bad_websocket_request_with_an_error_message(gateway):
    frames = await _converse(gateway.base_url, gateway.keys["alice"],
                             json.dumps({"type": "request", "model": "gigachat/GigaChat-2-Max", "messages": []}))
    assert frames[-1]["type"] == "error"
    assert frames[-1]["error"]["param"] == "messages"


async def test_it_refuses_charlie_a_model_outside_his_key_over_the_websocket(gateway):
    frames = await _converse(gateway.base_url, gateway.keys["charlie"], _request(text="x"))
    assert frames[-1]["type"] == "error"
    assert frames[-1]["error"]["code"] == "model_not_allowed"


def test_a_key_without_the_chat_scope_gets_an_error_frame_and_no_answer(gateway, django_db_blocker):
    from apps.accounts.models import User
    from apps.keys.services import key_create

    with django_db_blocker.unblock():
        _, plaintext = key_create(user=User.objects.get(username="alice"), name="embeddings-only", scopes=["embeddings"])
    frames = asyncio.run(_converse(gateway.base_url, plaintext, _request(text="x")))
    assert [f["type"] for f in frames] == ["error"]
    assert frames[0]["error"]["code"] == "missing_scope"


async def test_it_answers_ping_with_pong(gateway):
    async with connect(_ws_url(gateway.base_url), additional_headers=_auth(gateway.keys["alice"]), open_timeout=10) as ws:
        await ws.send('{"type":"ping"}')
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "pong"}


@pytest.mark.parametrize("model", ["gigachat/GigaChat-2-Max", "yandexgpt/yandexgpt-lite"])
async def test_a_stop_sequence_cuts_the_websocket_stream_for_providers_without_stop(gateway, model):
    from apps.emulators.behaviour import LONG_ANSWER

    stop = LONG_ANSWER.split()[10]
    frames = await _converse(gateway.base_url, gateway.keys["alice"], _request(model, "[long]", stop=[stop]))
    assert frames[-1]["type"] == "done"
    assert _text(frames) == LONG_ANSWER[: LONG_ANSWER.index(stop)]
    assert frames[-2]["choices"][0]["finish_reason"] == "stop"
    assert frames[-1]["usage"]["completion_tokens"] > 0


def _upstream_stopped(emulators, started: float) -> bool:
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        ledger = httpx.get(emulators["gigachat"].control_url + "/ledger", timeout=5).json()["entries"]
        if [e for e in ledger if e["ts"] >= started and e.get("stream") and e["note"] == "client_disconnected"]:
            return True
        time.sleep(0.1)
    return False


def test_a_cached_answer_is_replayed_over_the_websocket_and_billed_as_a_hit(gateway, django_db_blocker):
    request = _request(text=f"cache me {uuid.uuid4().hex}", temperature=0)  # temperature 0: cached
    first = asyncio.run(_converse(gateway.base_url, gateway.keys["alice"], request))
    again = asyncio.run(_converse(gateway.base_url, gateway.keys["alice"], request))
    assert first[-1]["type"] == again[-1]["type"] == "done"
    assert _text(again) == _text(first) and _text(first)
    record = wait_for_usage(django_db_blocker, _request_id(again))
    assert record.status == "cache_hit" and record.cache_hit and record.stream


def test_a_websocket_client_that_leaves_mid_stream_stops_the_upstream_and_is_billed(
    gateway, emulators, emulator_control, django_db_blocker
):
    emulator_control("gigachat", **SLOW)
    started = time.time()

    async def leave_after_three_chunks() -> str:
        async with connect(_ws_url(gateway.base_url), additional_headers=_auth(gateway.keys["alice"])) as ws:
            await ws.send(_request(text="[long]"))
            frames = [json.loads(await asyncio.wait_for(ws.recv(), 15)) for _ in range(3)]
        return _request_id(frames)

    request_id = asyncio.run(leave_after_three_chunks())
    record = wait_for_usage(django_db_blocker, request_id)
    assert record.status == "client_disconnected" and record.stream
    assert record.estimated and 0 < record.completion_tokens < 120
    assert _upstream_stopped(emulators, started), "the gateway read the upstream stream to its end for nobody"
    assert time.time() - started < 6


def test_cancel_ends_the_stream_bills_what_was_produced_and_keeps_the_socket(
    gateway, emulators, emulator_control, django_db_blocker
):
    emulator_control("gigachat", **SLOW)
    started = time.time()

    async def cancel_after_three_chunks():
        async with connect(_ws_url(gateway.base_url), additional_headers=_auth(gateway.keys["alice"])) as ws:
            await ws.send(_request(text="[long]"))
            frames = [json.loads(await asyncio.wait_for(ws.recv(), 15)) for _ in range(3)]
            await ws.send('{"type":"cancel"}')
            await _until_end(ws, frames, timeout=5)
            await ws.send('{"type":"ping"}')  # the socket is still open and reading
            pong = json.loads(await asyncio.wait_for(ws.recv(), 5))
        return frames, pong

    frames, pong = asyncio.run(cancel_after_three_chunks())
    assert frames[-1]["type"] == "done" and frames[-1]["cancelled"] is True, frames[-1]
    assert pong == {"type": "pong"}
    record = wait_for_usage(django_db_blocker, _request_id(frames))
    assert record.status == "client_cancelled" and record.stream
    assert 0 < record.completion_tokens < 120
    assert _upstream_stopped(emulators, started), "the cancelled stream kept reading the upstream"


async def test_a_second_request_while_one_streams_is_refused_and_the_first_finishes(gateway, emulator_control):
    from apps.emulators.behaviour import LONG_ANSWER

    emulator_control("gigachat", **SLOW)
    async with connect(_ws_url(gateway.base_url), additional_headers=_auth(gateway.keys["alice"])) as ws:
        await ws.send(_request(text="[long]"))
        first = json.loads(await asyncio.wait_for(ws.recv(), 15))
        await ws.send(_request(text="[long]"))
        frames = await _until_end(ws, [first])
        refused = [f for f in frames if f.get("type") == "error"]
        assert refused and refused[0]["error"]["code"] == "request_in_flight", frames[-3:]
        assert frames[-1]["type"] == "error"
        frames = await _until_end(ws, frames)
    assert frames[-1]["type"] == "done"
    assert _text(frames) == LONG_ANSWER


def test_rules_on_stream_and_tags_route_websocket_requests(gateway, django_db_blocker):
    from apps.routing.models import RoutingRule
    from apps.routing.services import rule_save, rules_delete

    name = f"ws-e2e-{uuid.uuid4().hex[:6]}"
    with django_db_blocker.unblock():
        rule_save(RoutingRule(name=name, priority=1, match_model=name, match_stream=True, match_tags=["ws-e2e"],
                              targets=[{"model": "tbank/t-tech/T-lite-it-2.1"}]))
    try:
        async def ask(tags: str | None) -> list[dict]:
            headers = {**_auth(gateway.keys["alice"]), **({"x-xrouter-tags": tags} if tags else {})}
            return await _converse(gateway.base_url, gateway.keys["alice"], _request(name, "hello"), additional_headers=headers)

        deadline = time.monotonic() + 5  # the rule reaches the gateway through the bus or its config TTL
        while True:
            frames = asyncio.run(ask("ws-e2e,other"))
            if frames[-1]["type"] == "done" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert frames[-1]["type"] == "done", frames[-1]
        assert frames[0]["model"] == "tbank/t-tech/T-lite-it-2.1"
        record = wait_for_usage(django_db_blocker, _request_id(frames))
        assert record.route == name and record.stream
        # Without its tag the rule does not match, and the name is no model.
        untagged = asyncio.run(ask(None))
        assert untagged[-1]["type"] == "error" and untagged[-1]["error"]["code"] == "model_not_found"
    finally:
        with django_db_blocker.unblock():
            rules_delete(RoutingRule.objects.filter(name=name))


def test_a_failing_target_is_billed_as_an_error_over_the_websocket(gateway, emulator_control, django_db_blocker):
    emulator_control("gigachat", status=500, count=5)
    frames = asyncio.run(_converse(gateway.base_url, gateway.keys["alice"], _request(text="hello")))
    error = frames[-1]
    assert error["type"] == "error" and error["error"]["type"] == "upstream_error", error
    record = wait_for_usage(django_db_blocker, error["id"].removeprefix("chatcmpl-"))
    assert record.status == "error" and record.stream and record.provider == "gigachat"


def test_revoking_a_key_closes_its_open_sockets_within_a_second(gateway, django_db_blocker):
    need("Redis", bool(settings.REDIS_URL))  # the revocation reaches the server process through the bus
    from apps.accounts.models import User
    from apps.keys.services import key_create, key_revoke

    with django_db_blocker.unblock():
        key, plaintext = key_create(user=User.objects.get(username="alice"), name="ws-revoked")

    async def revoke_while_open():
        async with connect(_ws_url(gateway.base_url), additional_headers=_auth(plaintext)) as ws:
            await ws.send('{"type":"ping"}')
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "pong"}
            revoked = time.monotonic()
            await asyncio.to_thread(_revoke, key)
            code, reason = await _close_code(ws, timeout=3)
            return code, time.monotonic() - revoked

    def _revoke(key):  # in a thread: Django refuses the ORM inside an event loop
        from django.db import connections

        with django_db_blocker.unblock():
            try:
                key_revoke(key)
            finally:
                connections.close_all()  # a connection left open in a thread blocks dropping the test database

    code, after = asyncio.run(revoke_while_open())
    assert code == 4401
    assert after < 1.5, f"the socket stayed open {after:.2f}s after its key was revoked"


def test_a_socket_closes_when_its_key_expires(gateway, django_db_blocker):
    from datetime import timedelta

    from django.utils import timezone

    from apps.accounts.models import User
    from apps.keys.services import key_create

    with django_db_blocker.unblock():
        key, plaintext = key_create(user=User.objects.get(username="alice"), name="ws-expiring",
                                    expires_at=timezone.now() + timedelta(seconds=3))

    async def wait_for_expiry():
        async with connect(_ws_url(gateway.base_url), additional_headers=_auth(plaintext)) as ws:
            await ws.send('{"type":"ping"}')
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "pong"}
            code, reason = await _close_code(ws, timeout=6)
            return code, time.time()

    code, closed_at = asyncio.run(wait_for_expiry())
    assert code == 4401
    assert closed_at - key.expires_at.timestamp() < 1.5, "the socket outlived its key's expiry"


# --- a gateway of the test's own: its log, and its shutdown ---------------------------------------


@pytest.fixture
def own_gateway(gateway, tmp_path):
    """A gateway that logs at INFO into a file the test reads; stopped by the test or after it."""
    log_path = tmp_path / "server.log"
    env = {**gateway.env, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}", "LOG_LEVEL": "info",
           "XROUTER_SHUTDOWN_GRACE": "20"}
    with open(log_path, "wb") as log:
        process, base = start_gateway(env, log=log)
    yield process, base, log_path
    _stop_with_children(process)


def test_a_key_in_the_query_string_is_refused_and_never_reaches_the_log(own_gateway, gateway):
    process, base, log_path = own_gateway
    key = gateway.keys["alice"]

    async def try_the_query_string():
        async with connect(_ws_url(base, f"?api_key={key}&x=1")) as ws:
            code = await _close_code(ws)
        with pytest.raises(InvalidStatus):  # an unknown path is refused at the handshake, and logged too
            async with connect(base.replace("http://", "ws://") + f"/v1/realtime/nope?api_key={key}"):
                pass
        return code

    code, reason = asyncio.run(try_the_query_string())
    assert code == 4401 and "query string" in reason, reason
    httpx.get(base + f"/v1/models?api_key={key}", timeout=5)
    _stop_with_children(process)  # everything it logged is in the file now
    log = log_path.read_text(errors="replace")
    assert '"WebSocket /v1/realtime/chat" [accepted]' in log, log[-2000:]  # uvicorn's INFO line, without its query
    secret = key.split("-", 2)[2]
    assert key not in log and secret not in log and "api_key" not in log, log[-2000:]


def test_sigterm_lets_an_open_websocket_stream_finish_and_bills_it(own_gateway, gateway, emulator_control, django_db_blocker):
    from apps.emulators.behaviour import LONG_ANSWER

    process, base, _ = own_gateway
    emulator_control("gigachat", **SLOW)

    async def stream_through_a_shutdown():
        async with connect(_ws_url(base), additional_headers=_auth(gateway.keys["alice"])) as ws:
            await ws.send(_request(text="[long]"))
            frames = [json.loads(await asyncio.wait_for(ws.recv(), 15)) for _ in range(2)]
            process.send_signal(signal.SIGTERM)
            await _until_end(ws, frames, timeout=10)
            code, _ = await _close_code(ws, timeout=10)
        return frames, code

    frames, code = asyncio.run(stream_through_a_shutdown())
    assert frames[-1]["type"] == "done", frames[-1]
    assert _text(frames) == LONG_ANSWER
    assert code in (1001, 1012)  # going away / service restart: reconnect elsewhere
    record = wait_for_usage(django_db_blocker, _request_id(frames), timeout=20)
    assert record.status == "ok" and record.stream


async def test_a_frame_larger_than_a_request_body_may_be_closes_the_socket(gateway):
    """uvicorn's default would take 16 MiB frames, 32 of them queued: the cap is XROUTER_MAX_BODY_BYTES."""
    async with connect(_ws_url(gateway.base_url), additional_headers=_auth(gateway.keys["alice"]), max_size=None) as ws:
        await ws.send("x" * (settings.XROUTER["MAX_BODY_BYTES"] + 1))
        code, _ = await _close_code(ws)
    assert code == 1009  # message too big
