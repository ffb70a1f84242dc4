"""Personal-data policies through the real gateway, against the provider emulators over loopback.

The emulators answer "Echo: " + the last user message, so the answer shows what the provider read; and
they count prompt tokens as whitespace-separated words, so a phone number the provider never saw
(three words) against its placeholder (one word) shows in the usage as well.
"""

import json
import uuid

import httpx
import pytest
from openai import OpenAI

from tests.routing.conftest import Faults, Rules

PHONE = "+7 912 345-67-89"
PROMPT = f"Мой телефон {PHONE}, перезвоните."
MODEL = "mts/mws-gpt-alpha"  # an OpenAI dialect: the chunk_chars fault cuts its streams anywhere


@pytest.fixture
def faults(emulators):
    injector = Faults(emulators)
    injector.clear()
    yield injector
    injector.clear()


@pytest.fixture
def rules(django_db_blocker):
    made = Rules(django_db_blocker)
    yield made
    made.delete_all()


@pytest.fixture
def policy_key(gateway, django_db_blocker):
    """A key of alice's with the given personal-data fields (committed: the gateway process reads it)."""
    from apps.accounts.models import User
    from apps.keys.models import ApiKey
    from apps.keys.services import key_create

    def make(**fields) -> OpenAI:
        with django_db_blocker.unblock():
            key, plaintext = key_create(user=User.objects.get(username="alice"), name=f"pd-{uuid.uuid4().hex[:6]}")
            ApiKey.objects.filter(id=key.id).update(**fields)
        return OpenAI(base_url=gateway.v1, api_key=plaintext, max_retries=0, timeout=30)

    return make


def streamed(client: OpenAI, pieces: list | None = None, **request) -> tuple[str, str, object]:
    """(content, tool-call arguments, usage) of a streamed answer, joined from its deltas (`pieces` gets them)."""
    content, arguments, usage = [] if pieces is None else pieces, [], None
    for chunk in client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **request):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                content.append(choice.delta.content)
            for call in choice.delta.tool_calls or ():
                if call.function and call.function.arguments:
                    arguments.append(call.function.arguments)
    return "".join(content), "".join(arguments), usage


def test_pseudonymized_answers_are_restored_whole_and_streamed_split_at_every_character(policy_key, faults, gateway):
    plain = OpenAI(base_url=gateway.v1, api_key=gateway.keys["alice"], max_retries=0, timeout=30)
    client = policy_key(pd_policy="pseudonymize")
    messages = [{"role": "user", "content": PROMPT}]

    whole = client.chat.completions.create(model=MODEL, messages=messages)
    assert whole.choices[0].message.content == "Echo: " + PROMPT
    seen_plain = plain.chat.completions.create(model=MODEL, messages=messages).usage.prompt_tokens
    assert whole.usage.prompt_tokens == seen_plain - 2  # the provider read "[PHONE_1]", not three words

    for chars in (1, 2, 3, 5, 7, 11):  # 1: a chunk boundary at every character of the answer
        faults("mts", chunk_chars=chars)
        pieces = []
        content, _, usage = streamed(client, pieces, model=MODEL, messages=messages)
        assert content == "Echo: " + PROMPT, chars
        assert len(pieces) >= len("Echo: [PHONE_1]") // chars  # it was cut that finely (held tails join pieces)
        assert usage.prompt_tokens == seen_plain - 2


def test_a_websocket_answer_is_restored_like_an_sse_one(policy_key, faults, gateway):
    import asyncio

    from websockets.asyncio.client import connect

    client = policy_key(pd_policy="pseudonymize")
    faults("mts", chunk_chars=1)

    async def converse():
        url = gateway.base_url.replace("http://", "ws://") + "/v1/realtime/chat"
        async with connect(url, open_timeout=10, additional_headers={"Authorization": f"Bearer {client.api_key}"}) as ws:
            await ws.send(json.dumps({"type": "request", "model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}))
            frames = []
            while not frames or frames[-1].get("type") not in ("done", "error"):
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 15)))
            return frames

    frames = asyncio.run(converse())
    assert frames[-1]["type"] == "done", frames[-1]
    text = "".join(c["delta"].get("content") or "" for f in frames for c in f.get("choices", ()))
    assert text == "Echo: " + PROMPT


def test_streamed_tool_call_arguments_are_restored(policy_key, faults):
    client = policy_key(pd_policy="pseudonymize")
    # The model copies the first enum value into its arguments: here, the placeholder the gateway issues.
    tools = [{"type": "function", "function": {"name": "call_back", "parameters": {
        "type": "object", "properties": {"phone": {"type": "string", "enum": ["[PHONE_1]"]}}, "required": ["phone"]}}}]
    for chars in (None, 1, 4):
        if chars:
            faults("mts", chunk_chars=chars)
        _, arguments, _ = streamed(client, model=MODEL, messages=[{"role": "user", "content": PROMPT}], tools=tools)
        assert json.loads(arguments) == {"phone": PHONE}, chars
    whole = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}], tools=tools)
    assert json.loads(whole.choices[0].message.tool_calls[0].function.arguments) == {"phone": PHONE}


def test_redact_keeps_personal_data_from_the_provider_and_the_answer(policy_key):
    client = policy_key(pd_policy="redact")
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}])
    assert answer.choices[0].message.content == "Echo: Мой телефон [PHONE_1], перезвоните."


def test_a_rule_anonymizes_only_the_attempt_that_leaves_its_jurisdiction(gateway, rules, faults):
    client = OpenAI(base_url=gateway.v1, api_key=gateway.keys["alice"], max_retries=0, timeout=30)
    name = f"pd-border-{uuid.uuid4().hex[:6]}"
    rules.create(name=name, match_model=name, targets=[{"model": MODEL}, {"model": "mts/gpt-4o"}],  # RU, then US
                 pd_policy="redact", pd_jurisdiction="RU")
    rules.settle()
    messages = [{"role": "user", "content": PROMPT}]

    home = client.chat.completions.with_raw_response.create(model=name, messages=messages)
    assert home.headers["x-xrouter-route"] == f"{name};{MODEL}"
    assert home.parse().choices[0].message.content == "Echo: " + PROMPT  # the RU primary read it as written

    faults("mts", status=500, model="mws-gpt-alpha")
    abroad = client.chat.completions.with_raw_response.create(model=name, messages=messages)
    assert abroad.headers["x-xrouter-route"] == f"{name};mts/gpt-4o"
    assert abroad.parse().choices[0].message.content == "Echo: Мой телефон [PHONE_1], перезвоните."

    faults("mts", status=500, model="mws-gpt-alpha")
    content, _, _ = streamed(client, model=name, messages=messages)
    assert content == "Echo: Мой телефон [PHONE_1], перезвоните."


def test_a_blocked_term_is_refused_before_the_call(policy_key, gateway):
    client = policy_key(blocked_terms=["Инсайд"])
    ok = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    assert ok.choices[0].message.content == "Echo: hello"
    r = httpx.post(f"{gateway.v1}/chat/completions", headers={"authorization": f"Bearer {client.api_key}"}, timeout=30,
                   json={"model": MODEL, "messages": [{"role": "user", "content": "Есть ИНСАЙД по акциям"}]})
    assert r.status_code == 400
    assert r.json()["error"] == {"message": "The request contains a term this API key's policy does not allow.",
                                 "type": "invalid_request_error", "param": "messages", "code": "content_policy_violation"}


def test_a_gateway_with_the_prompt_log_on_keeps_masked_prompts_of_mask_policies_only(gateway, policy_key,
                                                                                     django_db_blocker):
    import time

    from apps.privacy.models import PromptLog
    from tests.conftest import start_gateway, stop_gateway

    env = {**gateway.env, "XROUTER_LOG_PROMPTS": "1"}
    process, base = start_gateway(env)
    try:
        masked, plain = policy_key(pd_policy="mask"), policy_key()
        ids = []
        for client in (masked, plain):
            client = client.with_options(base_url=base + "/v1")
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}])
            assert raw.parse().choices[0].message.content == "Echo: " + PROMPT  # mask: the provider read it as sent
            ids.append(raw.headers["x-request-id"])
        deadline = time.monotonic() + 15
        with django_db_blocker.unblock():
            while time.monotonic() < deadline and not PromptLog.objects.filter(request_id=ids[0]).exists():
                time.sleep(0.2)
            row = PromptLog.objects.get(request_id=ids[0])
            assert (row.prompt, row.answer) == ("Мой телефон [PHONE_1], перезвоните.", "Echo: Мой телефон [PHONE_1], перезвоните.")
            assert not PromptLog.objects.filter(request_id=ids[1]).exists()  # policy off: never logged
    finally:
        stop_gateway(process)


def test_embedding_inputs_are_anonymized_too(policy_key, gateway):
    """The emulators' vectors are seeded by the text: equal vectors mean the provider read the same text."""
    plain = OpenAI(base_url=gateway.v1, api_key=gateway.keys["alice"], max_retries=0, timeout=30)
    redacting = policy_key(pd_policy="redact")
    sent = redacting.embeddings.create(model="mts/bge-m3", input=[PROMPT, "no personal data"]).data
    expected = plain.embeddings.create(model="mts/bge-m3", input=["Мой телефон [PHONE_1], перезвоните.",
                                                                  "no personal data"]).data
    assert [d.embedding for d in sent] == [d.embedding for d in expected]
    assert sent[0].embedding != plain.embeddings.create(model="mts/bge-m3", input=PROMPT).data[0].embedding
