"""What the relay does when something other than a provider error breaks an answer (issue 8,
items 15 and 16), through the real gateway: never a normal end and an `ok` row for a broken
stream, never a 500 without a usage row for a name that does not fit in a header."""

import asyncio
import json
import time
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import wait_for_usage

from .support import LONG_PROMPT, chat_body

BAD_USAGE = {"prompt_tokens": "n/a"}  # parsed after the first byte was relayed


def _auth(gateway) -> dict:
    return {"Authorization": f"Bearer {gateway.keys['alice']}"}


@pytest.mark.parametrize(("provider", "model"), [("gigachat", "gigachat/GigaChat-2-Max"), ("mts", "mts/mws-gpt-alpha")])
def test_an_unexpected_failure_mid_stream_ends_with_an_error_event_and_an_error_row(
    gateway, emulator_control, django_db_blocker, provider, model
):
    emulator_control(provider, usage=BAD_USAGE)
    body = chat_body(model, LONG_PROMPT, stream=True, stream_options={"include_usage": True})
    with httpx.stream("POST", gateway.v1 + "/chat/completions", json=body, headers=_auth(gateway), timeout=30) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert list(error) == ["error"], events[-3:]
    assert error["error"]["message"] and "n/a" not in error["error"]["message"]
    assert len(events) > 3, "what came before the failure was relayed"

    record = wait_for_usage(django_db_blocker, response.headers["x-request-id"])
    assert record.status == "error" and record.stream and record.http_status >= 500
    assert record.completion_tokens > 0, "what was produced before the failure is still billed"


def test_an_unexpected_failure_mid_stream_ends_a_websocket_stream_with_an_error(gateway, emulator_control, django_db_blocker):
    emulator_control("gigachat", usage=BAD_USAGE)

    async def converse():
        url = gateway.base_url.replace("http://", "ws://") + "/v1/realtime/chat"
        async with connect(url, additional_headers=_auth(gateway)) as ws:
            await ws.send(json.dumps({"type": "request", **chat_body("gigachat/GigaChat-2-Max", LONG_PROMPT)}))
            frames = []
            while not frames or frames[-1].get("type") not in ("done", "error"):
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 15)))
            return frames

    frames = asyncio.run(converse())
    assert frames[-1]["type"] == "error", frames[-1]
    record = wait_for_usage(django_db_blocker, frames[0]["id"].removeprefix("chatcmpl-"))
    assert record.status == "error" and record.completion_tokens > 0


@pytest.fixture
def cyrillic_alias(gateway, django_db_blocker):
    """An alias saved before names were validated (an ORM write skips validation, as old rows did)."""
    from apps.providers.services import config_announce
    from apps.routing.models import Alias

    name = f"гигачат-{uuid.uuid4().hex[:4]}"
    with django_db_blocker.unblock():
        alias = Alias.objects.create(name=name, target="gigachat/GigaChat-2-Max")
        config_announce()
    yield name
    with django_db_blocker.unblock():
        alias.delete()
        config_announce()


def _post_until_known(gateway, body) -> httpx.Response:
    """The alias reaches the gateway through the bus (or its config TTL): ask until it is known."""
    deadline = time.monotonic() + 5
    while True:
        response = httpx.post(gateway.v1 + "/chat/completions", json=body, headers=_auth(gateway), timeout=30)
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_non_latin1_alias_is_served_with_an_encoded_route_header_and_billed(gateway, cyrillic_alias, django_db_blocker, stream):
    response = _post_until_known(gateway, chat_body(cyrillic_alias, "hello", stream=stream))
    assert response.status_code == 200, response.text[:300]
    route = response.headers["x-xrouter-route"]
    assert route.isascii() and route.startswith("alias:%D0%B3%D0%B8"), route
    if stream:
        assert response.text.rstrip().endswith("data: [DONE]")
    record = wait_for_usage(django_db_blocker, response.headers["x-request-id"])
    assert record.status == "ok" and record.route == f"alias:{cyrillic_alias}"


@pytest.mark.django_db
def test_the_admin_and_import_config_refuse_an_alias_that_cannot_be_a_header():
    from django.core.exceptions import ValidationError

    from apps.routing.config_schema import ConfigError, parse_config
    from apps.routing.models import Alias

    for bad in ("гигачат", "two words", "semi;colon", ""):
        with pytest.raises(ValidationError):
            Alias(name=bad, target="gigachat/GigaChat-2-Max").full_clean()
        with pytest.raises(ConfigError, match="aliases"):
            parse_config({"aliases": {bad: "gigachat/GigaChat-2-Max"}})
    Alias(name="gpt-4o:latest", target="gigachat/GigaChat-2-Max").full_clean()
    parse_config({"aliases": {"xrouter/smart-1.5": "gigachat/GigaChat-2-Max"}})
    # Rule names were already slugs, in the admin and in files alike.
    from apps.routing.models import RoutingRule

    with pytest.raises(ValidationError):
        RoutingRule(name="гигачат", targets=[{"model": "gigachat/GigaChat-2-Max"}]).full_clean()
    with pytest.raises(ConfigError, match="rules"):
        parse_config({"rules": [{"name": "гигачат", "targets": [{"model": "gigachat/GigaChat-2-Max"}]}]})
