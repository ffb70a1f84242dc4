"""MTS and T-Bank (vLLM) as they really are (issue 11): reasoning after a prompt-opened <think>,
legacy functions history, per-model options, parameters decided per provider."""

import pytest

from apps.providers.adapters.thinking import ThinkSplitter, split_think

from .conftest import collect, joined, user


# --- (13) a lone </think> ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, started, expected",
    [
        ("Let me see.\n</think>\n\nFour.", False, ("Let me see.", "Four.")),  # a lone closing tag
        ("<think>\nhm\n</think>\n\nFour.", False, ("hm", "Four.")),
        ("Four.", False, (None, "Four.")),
        ("Still thinking about it", True, ("Still thinking about it", "")),  # cut by max_tokens
        ("<think>\nhm</think>Four.", True, ("hm", "Four.")),  # a repeated opening tag is tolerated
        ("Use <think> and </think> tags.", False, (None, "Use <think> and </think> tags.")),
    ],
)
def test_reasoning_is_split_off_on_a_lone_closing_tag(text, started, expected):
    assert split_think(text, started) == expected


def test_a_stream_that_began_inside_the_reasoning_is_split():
    splitter = ThinkSplitter(started=True)
    pieces = []
    for chunk in ["Let ", "me see.", "\n</th", "ink>\n\n", "Four", "."]:
        pieces += splitter.feed(chunk)
    pieces += splitter.flush()
    reasoning = "".join(t for k, t in pieces if k == "reasoning")
    answer = "".join(t for k, t in pieces if k == "content")
    assert (reasoning, answer) == ("Let me see.", "Four.")


@pytest.mark.parametrize("model", ["deepseek-r1-distill-qwen-32b", "QwQ-32B"])
async def test_reasoning_models_keep_their_reasoning_out_of_the_answer(make_adapter, model):
    adapter = make_adapter("mts")
    result = await adapter.chat({"messages": [user("why")]}, model)
    assert result.choices[0]["message"]["content"] == "Echo: why"
    assert result.choices[0]["message"]["reasoning_content"] == "Thinking about: why"
    chunks = await collect(adapter.stream_chat({"messages": [user("why")], "stream": True}, model))
    assert (joined(chunks), joined(chunks, "reasoning_content")) == ("Echo: why", "Thinking about: why")


# --- (14) legacy functions history --------------------------------------------------------------
LEGACY_HISTORY = [
    user("Weather in Moscow?"),
    {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": '{"city": "Moscow"}'}},
    {"role": "function", "name": "get_weather", "content": "sunny"},
]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def test_legacy_history_becomes_tool_calls_and_tool_results():
    from apps.providers.adapters.openai_compat import legacy_history_as_tools

    converted = legacy_history_as_tools([*LEGACY_HISTORY, LEGACY_HISTORY[1], {"role": "function", "name": "get_weather", "content": "rain"}])
    calls = [m["tool_calls"][0]["id"] for m in converted if m.get("tool_calls")]
    results = [m["tool_call_id"] for m in converted if m["role"] == "tool"]
    assert calls == results == ["call_legacy_1", "call_legacy_3"]
    assert not any(m["role"] == "function" or "function_call" in m for m in converted)


@pytest.mark.parametrize("kind, model", [("tbank", "t-tech/T-lite-it-2.1"), ("mts", "mws-gpt-alpha")])
async def test_the_model_sees_a_legacy_function_result(make_adapter, kind, model):
    result = await make_adapter(kind).chat({"messages": LEGACY_HISTORY, "tools": [WEATHER]}, model)
    assert result.choices[0]["message"]["content"] == "Tool result: sunny"


# --- (15) per-model options ---------------------------------------------------------------------------
GPT5 = "gpt-5-mini"  # a proxied OpenAI reasoning model on MTS
GPT5_OPTIONS = {GPT5: {"output_limit_field": "max_completion_tokens", "chat_template_kwargs": False}}


async def test_a_model_that_refuses_max_tokens_gets_max_completion_tokens(make_adapter, controls):
    from apps.providers.adapters.base import ProviderError

    body = {"messages": [user("hi")], "max_tokens": 20, "thinking": True}
    result = await make_adapter("mts", model_options=GPT5_OPTIONS).chat(body, GPT5)
    assert result.choices[0]["message"]["content"] == "Echo: hi"
    chunks = await collect(make_adapter("mts", model_options=GPT5_OPTIONS).stream_chat({**body, "stream": True}, GPT5))
    assert joined(chunks) == "Echo: hi"
    with pytest.raises(ProviderError) as caught:  # without the options: OpenAI's own refusal
        await make_adapter("mts").chat(body, GPT5)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "kind, options, ok",
    [
        ("mts", {"output_limit_field": "max_completion_tokens"}, True),
        ("tbank", {"chat_template_kwargs": False, "think_start": True}, True),
        ("mts", {"output_limit_field": "max_output_tokens"}, False),
        ("mts", {"chat_template_kwargs": "no"}, False),
        ("mts", {"temperature": 1}, False),
        ("gigachat", {"output_limit_field": "max_tokens"}, False),
        ("mts", [], True),
    ],
)
def test_model_options_are_validated(kind, options, ok):
    from apps.providers.models import model_options_problem

    assert (model_options_problem(kind, options) is None) is ok


def test_import_config_validates_model_options():
    import yaml

    from apps.routing.config_schema import ConfigError, parse_config

    text = "providers:\n  m:\n    kind: mts\n    base_url: https://api.gpt.mws.ru/v1\n    models:\n      gpt-5: {options: %s}\n"
    assert parse_config(yaml.safe_load(text % '{output_limit_field: max_completion_tokens}')).providers["m"].models["gpt-5"].options
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_load(text % "{output_limit_field: max_tokenz}"))
    assert "output_limit_field" in str(caught.value)


# --- (16) parameters decided per provider --------------------------------------------------------------
def test_vllm_gets_seed_logit_bias_user_and_parallel_tool_calls(make_adapter):
    adapter = make_adapter("tbank")
    body = {"messages": [user("x")], "seed": 7, "logit_bias": {"5": -100}, "user": "u-1", "parallel_tool_calls": False, "tools": [WEATHER]}
    payload = adapter.build_request(body, "t-tech/T-lite-it-2.1", stream=False)
    assert (payload["seed"], payload["logit_bias"], payload["user"], payload["parallel_tool_calls"]) == (7, {"5": -100}, "u-1", False)
    assert "parallel_tool_calls" not in adapter.build_request({"messages": [user("x")], "parallel_tool_calls": True}, "m", stream=False)


async def test_parallel_tool_calls_without_tools_is_not_sent_to_a_proxied_openai_model(make_adapter):
    result = await make_adapter("mts").chat({"messages": [user("hi")], "parallel_tool_calls": True}, "gpt-4o")
    assert result.choices[0]["message"]["content"] == "Echo: hi"
