"""``POST /v1/chat/completions`` for the OpenAI-compatible flavours (MTS, T-Bank/vLLM)."""

from __future__ import annotations

import json
import secrets
import time
import uuid

from aiohttp import web

from . import behaviour
from .openai_like import FLAVOUR_KEY, ApiError, ModelSpec, context_length, find_model, request_body
from .responses import send_json, send_stream, sse, with_fault_usage
from .state import FAULT, STATE_KEY, set_usage

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = request_body(request)
    model = find_model(request, body)
    if model.embedding_dim:
        raise ApiError(400, f"The model `{model.id}` does not support chat completions.", "model")  # Guess: wording
    if model.owned_by == "openai":
        _check_openai_fields(body, model)
    conv, prompt_texts = _conversation(body, model)
    prompt_tokens = behaviour.message_tokens(prompt_texts)
    _check_context(request, model, prompt_tokens, conv.max_tokens)
    n = body.get("n") or 1
    if not isinstance(n, int) or n < 1:
        raise ApiError(400, "n must be a positive integer", "n")
    reply = behaviour.decide_reply(conv)
    reasoning_complete = reply.reasoning == behaviour.reasoning_text(conv.last_user_text)
    field = request.app[STATE_KEY].config["reasoning_field"] or model.reasoning
    usage = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + reply.completion_tokens * n,
        "completion_tokens": reply.completion_tokens * n,
    }
    set_usage(request, prompt_tokens, reply.completion_tokens * n)
    usage = with_fault_usage(request, usage)
    if request.get(FAULT) is not None and request[FAULT].no_usage:
        usage = None
    flavour = request.app[FLAVOUR_KEY]
    envelope = {"id": "chatcmpl-" + uuid.uuid4().hex, "created": int(time.time()), "model": model.id}
    call_ids = [flavour.tool_call_prefix + (uuid.uuid4().hex if flavour.vllm else secrets.token_hex(12)) for _ in range(n)]
    if body.get("stream") is True:
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True
        fault = request.get(FAULT)
        events = _stream_events(flavour, envelope, reply, field, reasoning_complete, call_ids, usage if include_usage else None,
                                fault.chunk_chars if fault else None)
        return await send_stream(
            request,
            events,
            content_type="text/event-stream; charset=utf-8",
            malformed=b'data: {"id":"chatcmpl-x","choices":[{"delta":{"cont\n\n',
        )
    choices = []
    for index in range(n):
        message = {"role": "assistant", "content": reply.text}
        if reply.reasoning:
            if field in ("inline", "prompt_opened"):
                message["content"] = _inline(reply.reasoning, reasoning_complete, field == "prompt_opened") + reply.text
            else:
                message[field] = reply.reasoning
        if reply.is_tool_call:
            message["content"] = message["content"] or None
            message["tool_calls"] = [_tool_call(call_ids[index], reply)]
        elif flavour.vllm:
            message["tool_calls"] = []
        choice = {"index": index, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        if flavour.vllm:
            choice["stop_reason"] = None
        choices.append(choice)
    payload = {**envelope, "object": "chat.completion", "choices": choices}
    if usage is not None:
        payload["usage"] = usage
    return await send_json(request, payload)


def _check_openai_fields(body: dict, model: ModelSpec) -> None:
    """A proxied OpenAI model answers with OpenAI's own refusals (wording as OpenAI's API sends it)."""
    if "chat_template_kwargs" in body:
        raise ApiError(400, "Unrecognized request argument supplied: chat_template_kwargs")
    if "parallel_tool_calls" in body and not body.get("tools"):
        raise ApiError(400, "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when "
                            "'tools' are specified.", "parallel_tool_calls")
    if model.openai_reasoning and body.get("max_tokens") is not None:
        # o-series and GPT-5 take max_completion_tokens only (OpenAI API reference, chat/create).
        raise ApiError(400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                            "Use 'max_completion_tokens' instead.", "max_tokens")


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only the text counts here
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _conversation(body: dict, model: ModelSpec) -> tuple[behaviour.Conversation, list[str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty array", "messages")
    if model.owned_by != "openai":  # the open models, not the proxied GPT
        # Open models' chat templates (Qwen, Hermes) render tool_calls and role "tool" only: a
        # legacy role "function" result and an assistant "function_call" are silently left out
        # of the prompt (issue 11, from the Qwen2.5/Hermes templates vLLM ships). The request still
        # validates (vLLM accepts the OpenAI schema), so the model answers as if they were not there.
        messages = [m for m in messages if not isinstance(m, dict) or m.get("role") != "function"]
        messages = [{k: v for k, v in m.items() if k != "function_call"} if isinstance(m, dict) else m for m in messages]
    texts = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            raise ApiError(400, f"Invalid role in messages: '{role}'", "messages")
        calls = message.get("tool_calls") or []
        texts.append(
            _text_of(message.get("content"))
            + "".join(" " + str(c.get("function", {}).get("arguments", "")) for c in calls if isinstance(c, dict))
        )
    trailing = []
    for message in reversed(messages):
        if message["role"] not in ("tool", "function"):
            break
        trailing.insert(0, _text_of(message.get("content")))
    users = [_text_of(m.get("content")) for m in messages if m["role"] == "user"]
    functions, mode, forced = _tools(body)
    return behaviour.Conversation(
        last_user_text=users[-1] if users else "",
        last_is_user=messages[-1]["role"] == "user",
        tool_results=trailing or None,
        functions=functions,
        tool_choice=mode,
        forced_function=forced,
        max_tokens=_max_tokens(body),
        stop=_stops(body.get("stop")),
        response_format=_response_format(body.get("response_format")),
        think=_thinks(body, model),
    ), texts


def _thinks(body: dict, model: ModelSpec) -> bool:
    if not model.reasoning:
        return False
    if model.switchable:
        return (body.get("chat_template_kwargs") or {}).get("enable_thinking", True) is not False
    return True


def _tools(body: dict) -> tuple[list[dict], str, str | None]:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise ApiError(400, "tools must be an array", "tools")
    functions = [t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in {f.get("name") for f in functions}:
            raise ApiError(400, f"Tool choice '{name}' is not among the provided tools", "tool_choice")
        return functions, "required", name
    if choice not in ("auto", "none", "required"):
        raise ApiError(400, "tool_choice must be 'auto', 'none', 'required' or a named function", "tool_choice")
    if choice == "required" and not functions:
        raise ApiError(400, "tool_choice 'required' needs tools", "tool_choice")
    return functions, choice, None


def _max_tokens(body: dict) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ApiError(400, "max_tokens must be at least 1", "max_tokens")
    return value


def _stops(stop) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)]


def _response_format(value) -> dict | None:
    if not isinstance(value, dict) or value.get("type") in (None, "text"):
        return None
    if value.get("type") == "json_schema":
        return {"type": "json_schema", "schema": (value.get("json_schema") or {}).get("schema")}
    return {"type": "json_object"}


def _check_context(request, model: ModelSpec, prompt_tokens: int, max_tokens: int | None) -> None:
    limit = context_length(request, model)
    requested = prompt_tokens + (max_tokens or 0)
    if requested > limit:
        # vLLM's wording (older releases); used by both flavours. Guess for MTS.
        raise ApiError(
            400,
            f"This model's maximum context length is {limit} tokens. However, you requested {requested} tokens "
            f"({prompt_tokens} in the messages, {max_tokens or 0} in the completion). "
            "Please reduce the length of the messages or completion.",
            "messages",
        )


def _inline(reasoning: str, complete: bool, prompt_opened: bool = False) -> str:
    # The closing tag only appears if the budget let the model finish thinking. "prompt_opened":
    # the chat template already put "<think>\n" into the prompt (DeepSeek-R1 distills, QwQ; vLLM
    # issues #12999, #17144), so the output holds only the closing tag.
    return ("" if prompt_opened else "<think>\n") + reasoning + ("\n</think>\n\n" if complete else "")


def _tool_call(call_id: str, reply: behaviour.Reply) -> dict:
    arguments = json.dumps(reply.tool_args, ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": reply.tool_name, "arguments": arguments}}


def _cut(text: str, chars: int | None) -> list[str]:
    """Answer text as stream pieces: every 3 words, or every `chars` characters (the chunk_chars fault)."""
    if not chars:
        return behaviour.chunk_text(text)
    return [text[i:i + chars] for i in range(0, len(text), chars)]


def _deltas(reply: behaviour.Reply, field: str | None, complete: bool, chars: int | None = None) -> list[dict]:
    """The deltas of one choice after its opening role delta."""
    deltas: list[dict] = []
    if reply.reasoning and field in ("inline", "prompt_opened"):
        parts = ([] if field == "prompt_opened" else ["<think>\n"]) + behaviour.chunk_text(reply.reasoning)
        # Split the closing tag across two chunks on purpose: adapters must buffer for it.
        parts += ["\n</th", "ink>\n\n"] if complete else []
        deltas += [{"content": p} for p in parts]
    elif reply.reasoning:
        deltas += [{field: p} for p in behaviour.chunk_text(reply.reasoning)]
    deltas += [{"content": p} for p in _cut(reply.text, chars)]
    return deltas


def _stream_events(flavour, envelope, reply, field, complete, call_ids, usage, chars=None) -> list[bytes]:
    base = {**envelope, "object": "chat.completion.chunk"}
    n = len(call_ids)

    def chunk(index: int, delta: dict, finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice]})

    events = []
    steps = [{"role": "assistant", "content": ""}] + _deltas(reply, field, complete, chars)
    for step in steps:
        events += [chunk(i, step) for i in range(n)]
    if reply.is_tool_call:
        arguments = json.dumps(reply.tool_args, ensure_ascii=False)
        half = len(arguments) // 2
        for i in range(n):
            head = {"index": 0, "id": call_ids[i], "type": "function", "function": {"name": reply.tool_name, "arguments": ""}}
            events.append(chunk(i, {"tool_calls": [head]}))
            pieces = _cut(arguments, chars) if chars else (arguments[:half], arguments[half:])
            for piece in pieces:  # arguments arrive in fragments
                events.append(chunk(i, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    final_delta = {"content": ""} if flavour.vllm else {}
    events += [chunk(i, final_delta, reply.finish_reason) for i in range(n)]
    if usage is not None:
        events.append(sse({**base, "choices": [], "usage": usage}))
    events.append(sse("[DONE]"))
    return events
