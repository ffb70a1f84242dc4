"""The WebSocket endpoint `ws://host/v1/realtime/chat?api_key=...` (apps/gateway/consumers.py) on the
real server process: a chat streamed as chunk messages, then `done`; a bad key is refused."""

import asyncio
import json

import aiohttp
import pytest

from tests.conftest import wait_for_usage


def _ws_url(gateway, key: str) -> str:
    return gateway.base_url.replace("http://", "ws://") + f"/v1/realtime/chat?api_key={key}"


async def _converse(gateway, key: str, request: dict) -> list[dict]:
    messages = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(_ws_url(gateway, key), timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            await ws.send_str(json.dumps(request))
            while True:
                msg = await ws.receive(timeout=15)
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                data = json.loads(msg.data)
                messages.append(data)
                if data.get("type") in ("done", "error"):
                    return messages


@pytest.mark.parametrize("model", ["gigachat/GigaChat-2-Max", "yandexgpt/yandexgpt-lite"])
def test_it_streams_a_chat_over_a_websocket_then_says_done(gateway, django_db_blocker, model):
    from apps.emulators.behaviour import LONG_ANSWER

    # Synchronous, so the usage lookup below runs in this thread and its database connection is
    # closed with the session's (one left open in a worker thread blocks dropping the test database).
    messages = asyncio.run(_converse(gateway, gateway.keys["alice"],
                                     {"model": model, "messages": [{"role": "user", "content": "over ws [long]"}]}))
    done = messages[-1]
    assert done["type"] == "done"
    assert done["usage"]["prompt_tokens"] > 0 and done["usage"]["completion_tokens"] > 0
    chunks = messages[:-1]
    assert len(chunks) > 3
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == model for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == LONG_ANSWER
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    request_id = chunks[0]["id"].removeprefix("chatcmpl-")
    record = wait_for_usage(django_db_blocker, request_id)
    assert record.stream and record.status == "ok"
    assert record.completion_tokens == done["usage"]["completion_tokens"]


async def test_it_answers_a_bad_websocket_request_with_an_error_message(gateway):
    messages = await _converse(gateway, gateway.keys["alice"], {"model": "gigachat/GigaChat-2-Max", "messages": []})
    assert messages[-1]["type"] == "error"
    assert messages[-1]["error"]["param"] == "messages"


async def test_it_refuses_charlie_a_model_outside_his_key_over_the_websocket(gateway):
    messages = await _converse(gateway, gateway.keys["charlie"],
                               {"model": "gigachat/GigaChat-2-Max", "messages": [{"role": "user", "content": "x"}]})
    assert messages[-1]["type"] == "error"
    assert messages[-1]["error"]["code"] == "model_not_allowed"


@pytest.mark.parametrize("key", ["xr-not-a-real-key", ""])
async def test_it_refuses_a_websocket_with_a_bad_key(gateway, key):
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(_ws_url(gateway, key))
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status in (401, 403), exc
            return
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        assert ws.close_code == 4401
        await ws.close()


@pytest.mark.parametrize("model", ["gigachat/GigaChat-2-Max", "yandexgpt/yandexgpt-lite"])
async def test_a_stop_sequence_cuts_the_websocket_stream_for_providers_without_stop(gateway, model):
    from apps.emulators.behaviour import LONG_ANSWER

    stop = LONG_ANSWER.split()[10]
    messages = await _converse(gateway, gateway.keys["alice"],
                               {"model": model, "messages": [{"role": "user", "content": "[long]"}], "stop": [stop]})
    assert messages[-1]["type"] == "done"
    text = "".join(m["choices"][0]["delta"].get("content") or "" for m in messages[:-1])
    assert text == LONG_ANSWER[: LONG_ANSWER.index(stop)]
    assert messages[-2]["choices"][0]["finish_reason"] == "stop"
    assert messages[-1]["usage"]["completion_tokens"] > 0


def test_a_websocket_client_that_leaves_mid_stream_stops_the_upstream_and_is_billed(
    gateway, emulators, emulator_control, django_db_blocker
):
    import time

    import httpx

    emulator_control("gigachat", chunk_delay_ms=200)  # 40 chunks: 8 s if nobody stops it
    started = time.time()

    async def leave_after_three_chunks() -> str:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(_ws_url(gateway, gateway.keys["alice"])) as ws:
                await ws.send_str(json.dumps({"model": "gigachat/GigaChat-2-Max",
                                              "messages": [{"role": "user", "content": "[long]"}]}))
                chunks = [json.loads((await ws.receive(timeout=15)).data) for _ in range(3)]
        return chunks[0]["id"].removeprefix("chatcmpl-")

    request_id = asyncio.run(leave_after_three_chunks())
    record = wait_for_usage(django_db_blocker, request_id)
    assert record.status == "client_disconnected" and record.stream
    assert record.estimated and 0 < record.completion_tokens < 120

    deadline, cancelled = time.monotonic() + 4, []
    while time.monotonic() < deadline and not cancelled:
        ledger = httpx.get(emulators["gigachat"].control_url + "/ledger", timeout=5).json()["entries"]
        cancelled = [e for e in ledger if e["ts"] >= started and e.get("stream") and e["note"] == "client_disconnected"]
        time.sleep(0.1)
    assert cancelled, "the gateway read the upstream stream to its end for nobody"
    assert time.time() - started < 6
