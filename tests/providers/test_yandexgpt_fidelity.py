"""YandexGPT as it really is (issue 11): filtered streams, tool results out of order, the IAM
token's owner and x-folder-id, fine-tuned model ids, parallel_tool_calls."""

import json

import pytest
import yaml

from apps.emulators.behaviour import REFUSAL
from apps.providers.adapters.base import CredentialConfig, ProviderError
from apps.providers.adapters.yandexgpt import build_request

from .conftest import YANDEX_FOLDER, collect, joined, ledger, user

MODEL = "yandexgpt-lite"
COMPLETION = "/foundationModels/v1/completion"


# --- (9) a content-filtered stream -----------------------------------------------------------
async def test_a_stream_the_filter_stops_ends_with_content_filter(make_adapter):
    chunks = await collect(make_adapter("yandexgpt").stream_chat({"messages": [user("tell me [blocked] things now please")], "stream": True}, MODEL))
    text = joined(chunks)
    assert text and "Echo: tell me".startswith(text[:13]) and REFUSAL not in text  # the prefix that went out stays
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["content_filter"]
    assert [c.usage for c in chunks if c.usage]


async def test_a_filtered_answer_is_the_refusal_when_nothing_went_out(make_adapter):
    result = await make_adapter("yandexgpt").chat({"messages": [user("[blocked]")]}, MODEL)
    assert result.choices[0]["message"]["content"] == REFUSAL and result.choices[0]["finish_reason"] == "content_filter"


# --- (10) tool results matched by the call's position ------------------------------------------
def weather_calls(*cities):
    return [{"id": f"call_{k}_get_weather", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": c})}}
            for k, c in enumerate(cities)]


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def history_answered_out_of_order():
    return [
        user("Weather in Moscow and Paris?"),
        {"role": "assistant", "content": None, "tool_calls": weather_calls("Moscow", "Paris")},
        {"role": "tool", "tool_call_id": "call_1_get_weather", "content": "paris: rain"},
        {"role": "tool", "tool_call_id": "call_0_get_weather", "content": "moscow: snow"},
    ]


def test_results_go_back_in_the_order_of_their_calls():
    results = build_request({"messages": history_answered_out_of_order()}, MODEL, YANDEX_FOLDER)["messages"][-1]["toolResultList"]["toolResults"]
    assert [r["functionResult"]["content"] for r in results] == ["moscow: snow", "paris: rain"]


async def test_results_out_of_order_reach_the_right_calls(make_adapter):
    result = await make_adapter("yandexgpt").chat({"messages": history_answered_out_of_order(), "tools": [WEATHER]}, MODEL)
    assert result.choices[0]["message"]["content"] == "Tool result: moscow: snow; paris: rain"


# --- (11) whose IAM token, and x-folder-id ------------------------------------------------------
async def service_account_token(controls, emulators, folder: str) -> str:
    """An IAM token of a service account whose own folder is `folder`, granted the role in the demo folder."""
    import aiohttp

    from apps.providers.adapters.yandexgpt import service_account_jwt

    from .test_yandexgpt import service_account

    key, public_pem = service_account()
    controls["yandexgpt"].configure(service_accounts={key["id"]: {
        "service_account_id": key["service_account_id"], "public_key": public_pem, "folder_id": folder, "folders": [YANDEX_FOLDER]}})
    async with aiohttp.ClientSession() as session:
        async with session.post(emulators["yandexgpt"].auth_url, json={"jwt": service_account_jwt(key)}) as resp:
            return (await resp.json())["iamToken"]


async def test_a_service_accounts_iam_token_is_sent_without_x_folder_id(make_adapter, controls, emulators):
    token = await service_account_token(controls, emulators, "b1gserviceacctfolder")
    config = {"credentials": (CredentialConfig("default", {"iam_token": token, "folder_id": YANDEX_FOLDER}, token_owner="service_account"),)}
    result = await make_adapter("yandexgpt", **config).chat({"messages": [user("hi")]}, MODEL)
    assert result.choices[0]["message"]["content"] == "Echo: hi"


async def test_the_emulator_refuses_x_folder_id_that_is_not_the_service_accounts(make_adapter, controls, emulators):
    token = await service_account_token(controls, emulators, "b1gserviceacctfolder")
    config = {"credentials": (CredentialConfig("default", {"iam_token": token, "folder_id": YANDEX_FOLDER}, token_owner="user"),)}
    with pytest.raises(ProviderError) as caught:  # stated wrongly: the header goes, and Yandex refuses it
        await make_adapter("yandexgpt", **config).chat({"messages": [user("hi")]}, MODEL)
    assert caught.value.status == 400 and "does not match with service account folder ID" in caught.value.message


async def test_a_user_accounts_iam_token_names_the_folder(make_adapter, controls, emulators):
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(emulators["yandexgpt"].auth_url, json={"yandexPassportOauthToken": "y0_demo-oauth-token"}) as resp:
            token = (await resp.json())["iamToken"]
    config = {"credentials": (CredentialConfig("default", {"iam_token": token, "folder_id": YANDEX_FOLDER}, token_owner="user"),)}
    await make_adapter("yandexgpt", **config).chat({"messages": [user("hi")]}, MODEL)
    (entry,) = ledger(controls, "yandexgpt", COMPLETION)
    assert entry["status"] == 200


@pytest.mark.parametrize(
    "kind, secrets, owner, ok",
    [
        ("yandexgpt", {"iam_token": "t1.x"}, "", False),
        ("yandexgpt", {"iam_token": "t1.x"}, "user", True),
        ("yandexgpt", {"iam_token": "t1.x"}, "service_account", True),
        ("yandexgpt", {"api_key": "k"}, "user", False),
        ("gigachat", {"access_token": "x"}, "", True),
    ],
)
def test_an_iam_token_credential_must_say_whose_it_is(kind, secrets, owner, ok):
    from apps.providers.models import token_owner_problem

    assert (token_owner_problem(kind, secrets, owner) is None) is ok


def test_import_config_requires_the_owner_of_an_iam_token():
    from apps.routing.config_schema import ConfigError, parse_config

    base = "providers:\n  y:\n    kind: yandexgpt\n    base_url: https://llm.api.cloud.yandex.net\n    credentials: {iam_token: t1.x, folder_id: b1g}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_load(base))
    assert "token_owner" in str(caught.value)
    assert parse_config(yaml.safe_load(base + "    token_owner: service_account\n")).providers["y"].credential_list()[0].token_owner == "service_account"


# --- (12) fine-tuned model ids ----------------------------------------------------------------
@pytest.mark.parametrize(
    "model, uri",
    [
        ("yandexgpt-lite", f"gpt://{YANDEX_FOLDER}/yandexgpt-lite/latest"),
        ("yandexgpt-lite@tamr3kq7ns3l8hfp", f"gpt://{YANDEX_FOLDER}/yandexgpt-lite/latest@tamr3kq7ns3l8hfp"),
        ("yandexgpt-lite/rc@tamr3kq7ns3l8hfp", f"gpt://{YANDEX_FOLDER}/yandexgpt-lite/rc@tamr3kq7ns3l8hfp"),
        ("gpt://b1gother/yandexgpt/latest", "gpt://b1gother/yandexgpt/latest"),
    ],
)
def test_model_ids_become_uris(model, uri):
    from apps.providers.adapters.yandexgpt import model_uri

    assert model_uri(model, YANDEX_FOLDER) == uri


async def test_a_fine_tuned_model_without_its_branch_answers(make_adapter):
    result = await make_adapter("yandexgpt").chat({"messages": [user("hi")]}, "yandexgpt-lite@tamr3kq7ns3l8hfp")
    assert result.choices[0]["message"]["content"] == "Echo: hi"


# --- (16) parameters decided per provider --------------------------------------------------------
def test_yandex_gets_parallel_tool_calls_and_refuses_seed_and_logit_bias():
    from apps.providers.adapters.base import ProviderError

    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    payload = build_request({"messages": [user("x")], "tools": tools, "parallel_tool_calls": False, "user": "u-77"}, MODEL, YANDEX_FOLDER)
    assert payload["parallelToolCalls"] is False and "u-77" not in json.dumps(payload)
    for name, value in (("seed", 1), ("logit_bias", {"1": 1})):
        with pytest.raises(ProviderError) as caught:
            build_request({"messages": [user("x")], name: value}, MODEL, YANDEX_FOLDER)
        assert caught.value.param == name and caught.value.status == 400
