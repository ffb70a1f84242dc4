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
