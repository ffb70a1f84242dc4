"""The token upper bound a request reserves before its call (settled to the usage billed after it).

Every character counts as a token (the 4-characters-per-token estimate undercounts Russian), plus
MESSAGE_OVERHEAD per message, plus the answer's cap: max_tokens, else the model's output cap.
"""

import orjson

MESSAGE_OVERHEAD = 8
DEFAULT_OUTPUT_CAP = 4096  # a model with no max_output_tokens configured


def _chars(value) -> int:
    if isinstance(value, str):
        return len(value)
    if value is None:
        return 0
    return len(orjson.dumps(value).decode())


def chat_reservation(body: dict, model) -> tuple[int, int]:
    """Tokens a chat request may use at most, as (prompt, answer): its messages, `tools` and
    `response_format` as characters, MESSAGE_OVERHEAD a message; `n` answers of max_tokens (else the
    model's cap)."""
    messages = body.get("messages") or ()
    total = MESSAGE_OVERHEAD * len(messages)
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
        for field in ("tool_calls", "function_call", "name"):
            if message.get(field):
                total += _chars(message[field])
    total += _chars(body.get("tools")) + _chars(body.get("functions")) + _chars(body.get("response_format"))
    cap = body.get("max_tokens") or body.get("max_completion_tokens") or (model and model.max_output_tokens) \
        or DEFAULT_OUTPUT_CAP
    return total, cap * max(1, body.get("n") or 1)


def embeddings_reservation(inputs: list) -> tuple[int, int]:
    """Embedding inputs: characters of text, or the length of a list of token ids (no answer tokens)."""
    return sum(len(i) for i in inputs), 0
