"""GigaChat request translation: an OpenAI chat request as a GigaChat /chat/completions body.
The decisions and their sources are listed in gigachat.py's docstring."""

from __future__ import annotations

import uuid

import orjson

from .base import ProviderError
from .gigachat_schema import gigachat_schema
from .shaping import check_no_penalties, history_tool_names, parse_arguments, text_of
from .transport import unsupported

NAME = "GigaChat"
# The API takes temperature > 0 only; values in (0, 0.001] switch to greedy decoding, which
# is what temperature 0 means to an OpenAI client. # Guess: the exact threshold is [Med] in the docs.
GREEDY_TEMPERATURE = 0.001
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}  # Guess: minimal → low
# A client's own function named like a GigaChat built-in collides with it (gigachat.md §12.5):
# it travels under another name and is renamed back in the answer, as gpt2giga does
# (common/tools.py `_RESERVED_GIGACHAT_TOOL_NAME_MAP`: web_search → an internal name).
RESERVED_NAMES = {"web_search": "__xrouter_user_web_search"}
USER_NAMES = {v: k for k, v in RESERVED_NAMES.items()}
OPTION_FIELDS = ("repetition_penalty", "update_interval", "profanity_check")


# --- request translation -----------------------------------------------------------------------
def build_request(body: dict, model: str, options: dict | None = None, files: dict | None = None) -> dict:
    """An OpenAI chat request as a GigaChat /chat/completions body. files: {message index: uploaded file id}
    for the messages whose image was uploaded (gigachat_files.py)."""
    options = options or {}
    check_no_penalties(body, NAME)
    for name in ("seed", "logit_bias"):  # gigachat.md §12.10: neither exists; both change the answer
        if body.get(name) is not None:
            raise unsupported(NAME, name)
    payload: dict = {"model": model, "messages": build_messages(body["messages"], files)}
    if body.get("temperature") is not None:
        payload["temperature"] = body["temperature"] if body["temperature"] > 0 else GREEDY_TEMPERATURE
    for name in ("top_p", "max_tokens"):
        if body.get(name) is not None:
            payload[name] = body[name]
    if body.get("stream"):
        payload["stream"] = True
    for name in OPTION_FIELDS:
        if options.get(name) is not None:
            payload[name] = options[name]
    tools = body.get("tools") or []
    if tools:
        if any(t["function"]["name"] in RESERVED_NAMES.values() for t in tools):
            raise unsupported(NAME, "tools", "the name __xrouter_user_web_search is reserved by the gateway")
        payload["functions"] = [_function_spec(t["function"], i) for i, t in enumerate(tools)]
        payload["function_call"] = _function_call(body.get("tool_choice"), payload["functions"])
    elif body.get("tool_choice") not in (None, "none", "auto"):
        raise unsupported(NAME, "tool_choice", "no tools were given")
    fmt = _response_format(body.get("response_format"))
    if fmt:
        payload["response_format"] = fmt
    effort = _reasoning_effort(body)
    if effort:
        payload["reasoning_effort"] = effort
    return payload


def build_messages(messages: list[dict], files: dict | None = None) -> list[dict]:
    """Roles, content and tool traffic in GigaChat's shape (gigachat.md §12, items 3-5); a message whose
    image was uploaded carries its id in `attachments` (files: {message index: file id})."""
    out: list[dict] = []
    names = history_tool_names(messages)
    deferred: dict[str, dict] = {}  # parallel calls GigaChat cannot take in one turn
    for i, message in enumerate(messages):
        role, where = message["role"], f"messages[{i}]"
        if role in ("tool", "function"):
            call_id = message.get("tool_call_id")
            if call_id in deferred:
                # GigaChat has one call per assistant turn: replay the next parallel call just
                # before its result, so the history reads call, result, call, result.
                out.append(_assistant_call(deferred.pop(call_id)))
            name = message.get("name") if role == "function" else names.get(call_id) or message.get("name")
            if not name:
                raise ProviderError(
                    f"{NAME}: {where}.tool_call_id {call_id!r} matches no tool call of an earlier assistant message",
                    status=400,
                    kind="bad_request",
                )
            out.append({"role": "function", "name": to_gigachat_name(name), "content": _json_object(text_of(message["content"], NAME, where))})
            continue
        if files and i in files:  # its image went up as a file: the text parts, and the file's id
            texts = [p for p in message["content"] if p.get("type") != "image_url"]
            out.append({"role": "user", "content": text_of(texts, NAME, where), "attachments": [files[i]]})
            continue
        text = text_of(message.get("content"), NAME, where)
        if role == "assistant":
            calls = list(message.get("tool_calls") or ())
            if not calls and message.get("function_call"):
                calls = [{"id": "", "type": "function", "function": message["function_call"]}]
            if calls:
                msg = _assistant_call(calls[0])
                msg["content"] = text
                out.append(msg)
                deferred.update((c["id"], c) for c in calls[1:])
                continue
            _append(out, "assistant", text)
        elif role in ("system", "developer"):
            # GigaChat takes one system message, first (422 otherwise, gigachat.md §5). As gpt2giga
            # does (protocol/request/transformer.py + common/message_utils.py ensure_system_first):
            # the first system message goes to the front wherever it stands, a later one becomes a
            # user turn. Leading system messages are merged into that one.
            if not out or out[-1]["role"] == "system":
                _append(out, "system", text)
            elif out[0]["role"] != "system":
                out.insert(0, {"role": "system", "content": text})
            else:
                _append(out, "user", text)
        else:
            _append(out, "user", text)
    for msg in out:
        if isinstance(msg["content"], list):
            # Guess: merged turns are joined with a blank line, as gpt2giga does.
            msg["content"] = "\n\n".join(msg["content"])
    return out


def _append(out: list[dict], role: str, text: str) -> None:
    """Merge a text message into the previous one of the same role (GigaChat dislikes repeats).

    A merged turn collects its parts in a list, joined once at the end: joining as we go
    copies the growing text once per message (quadratic in a long same-role history).
    """
    last = out[-1] if out else None
    if (last is not None and last["role"] == role and role != "function" and "function_call" not in last
            and "attachments" not in last):  # an image's message stays its own (one image per message)
        if not text:
            return
        if isinstance(last["content"], list):
            last["content"].append(text)
        elif last["content"]:
            last["content"] = [last["content"], text]
        else:
            last["content"] = text
    else:
        out.append({"role": role, "content": text})


def _assistant_call(call: dict) -> dict:
    fn = call["function"]
    msg = {"role": "assistant", "content": "", "function_call": {"name": to_gigachat_name(fn["name"]), "arguments": parse_arguments(fn.get("arguments"), NAME)}}
    # We hand GigaChat's functions_state_id out as the tool call id, so it comes back here.
    if _is_state_id(call.get("id")):
        msg["functions_state_id"] = call["id"]
    return msg


def _is_state_id(value) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


def _json_object(content: str) -> str:
    """A function result must be a JSON object serialised into a string.

    orjson, not json: nesting past its limit is a decode error (the text is wrapped as a
    string), where json would raise RecursionError.
    """
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        value = content
    if isinstance(value, dict):
        return content
    try:
        return '{"result": ' + orjson.dumps(value).decode() + "}"
    except orjson.JSONEncodeError:  # parsed, but nested too deeply to write back: send it as text
        return '{"result": ' + orjson.dumps(content).decode() + "}"


def to_gigachat_name(name: str) -> str:
    return RESERVED_NAMES.get(name, name)


def from_gigachat_name(name: str) -> str:
    return USER_NAMES.get(name, name)


def _function_spec(fn: dict, index: int) -> dict:
    spec = {"name": to_gigachat_name(fn["name"])}
    if fn.get("description"):
        spec["description"] = fn["description"]
    # A function without arguments still gets an (empty) object schema, as gpt2giga's
    # normalize_tool_parameters_schema gives it.
    spec["parameters"] = gigachat_schema(fn.get("parameters"), f"tools[{index}].function.parameters")
    return spec


def _function_call(choice, functions: list[dict]):
    if choice is None or choice in ("auto", "none"):
        return choice or "auto"  # Guess: GigaChat's default with functions is not documented; OpenAI's is auto
    if choice == "required":
        if len(functions) == 1:
            return {"name": functions[0]["name"]}  # "call some tool" with one tool = "call this one"
        raise unsupported(NAME, "tool_choice", "'required' has no GigaChat equivalent with several tools")
    return {"name": to_gigachat_name(choice["function"]["name"])}


def _response_format(fmt: dict | None) -> dict | None:
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema") or {}
        out = {"type": "json_schema", "schema": gigachat_schema(spec.get("schema"), "response_format.json_schema.schema")}
        if spec.get("strict") is not None:
            out["strict"] = spec["strict"]
        return out
    # GigaChat has no schema-less JSON mode, and gpt2giga refuses json_object for that reason
    # (docs: client-parameter-compatibility.md, "Structured output ... json_object ... is refused
    # because upstream GigaChat has no separate JSON mode"). A schema admitting any object would
    # be a guess at what the service does with it; the client can send a json_schema instead.
    raise unsupported(NAME, "response_format", "json_object has no GigaChat equivalent; send a json_schema")


def _reasoning_effort(body: dict) -> str | None:
    if body.get("thinking") is False:
        return None
    if body.get("reasoning_effort"):
        return EFFORTS[body["reasoning_effort"]]
    return "medium" if body.get("thinking") else None  # Guess: "think" with no effort given → medium
