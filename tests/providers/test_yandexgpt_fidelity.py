"""YandexGPT as it really is (issue 11): filtered streams, tool results out of order, the IAM
token's owner and x-folder-id, fine-tuned model ids, parallel_tool_calls."""



from apps.emulators.behaviour import REFUSAL

from .conftest import collect, joined, user

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
