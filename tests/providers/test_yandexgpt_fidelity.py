"""YandexGPT as it really is (issue 11): filtered streams, tool results out of order, the IAM
token's owner and x-folder-id, fine-tuned model ids, parallel_tool_calls."""

import json

from apps.emulators.behaviour import REFUSAL
from apps.providers.adapters.yandexgpt import build_request

from .conftest import YANDEX_FOLDER, collect, joined, user

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
