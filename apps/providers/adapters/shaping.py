"""Small translation helpers shared by the non-OpenAI providers (GigaChat, YandexGPT)."""

from __future__ import annotations

import uuid

import orjson

from .base import ProviderError
from .transport import bad_answer, unsupported


def text_of(content, provider: str, where: str) -> str:
    """A message's content as one string: text parts joined, anything else refused.

    Images would have to be uploaded through a provider's own file API first; silently
    dropping them would change the answer, so they are refused by name.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.get("type") == "text":
            texts.append(part.get("text") or "")
        else:
            raise unsupported(provider, f"{where}.content", f"{part.get('type')} parts cannot be sent, only text")
    # Guess: parts are joined with a newline; the providers only take one string per message.
    return "\n".join(texts)


def parse_arguments(raw, provider: str) -> dict:
    """OpenAI tool-call arguments (a JSON string) as the object GigaChat and Yandex want.

    orjson, not json: it refuses nesting past 1024 levels with a decode error where json
    raises RecursionError; and what it parsed must encode again for the provider (orjson
    writes 254 levels at most).
    """
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
        orjson.dumps(value)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        raise ProviderError(
            f"{provider}: tool call arguments in the history are not valid JSON (or nested too deeply)", status=400, kind="bad_request"
        ) from None
    # Guess: a non-object (a list, a bare string) is wrapped; both providers take objects only.
    return value if isinstance(value, dict) else {"value": value}


def dump_arguments(args, provider: str) -> str:
    """Provider arguments (an object) as the JSON string OpenAI clients expect."""
    if isinstance(args, str):
        return args
    try:
        return orjson.dumps(args if args is not None else {}).decode()
    except orjson.JSONEncodeError:
        raise bad_answer(provider, "tool call arguments nested too deeply") from None


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def check_no_penalties(body: dict, provider: str) -> None:
    """presence/frequency penalties change sampling; providers without them must refuse, not ignore."""
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name):
            raise unsupported(provider, name)


def history_tool_names(messages: list[dict]) -> dict[str, str]:
    """tool_call_id → function name over every assistant message of the history."""
    names = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            names[call["id"]] = call["function"]["name"]
    return names
