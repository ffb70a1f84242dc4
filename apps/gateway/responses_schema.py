"""The Responses API's request (`POST /v1/responses`): its pydantic models (the OpenAPI schema is
generated from them, openapi.py), the refusals of what a stateless gateway cannot do, and the chat
request it becomes (responses.py answers it). Field names and item shapes follow the official `openai`
SDK's types (openai/types/responses/response_create_params.py, response_input_item_param.py)."""

import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import Discriminator, Field, Tag, ValidationError

from apps.common.errors import ApiError

from .schemas import MAX_TOKENS, FunctionName, StrictModel, _loads, _validation_error, parse_chat

ItemStatus = Literal["in_progress", "completed", "incomplete"]


class InputText(StrictModel):
    type: Literal["input_text"]
    text: str


class OutputText(StrictModel):
    """An earlier answer's text, as the SDK sends it back (`input += response.output`)."""

    type: Literal["output_text"]
    text: str
    annotations: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None


class InputImage(StrictModel):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high"] | None = None


class RefusalPart(StrictModel):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[InputText | OutputText | InputImage | RefusalPart, Field(discriminator="type")]


class MessageItem(StrictModel):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: ItemStatus | None = None
    phase: Literal["commentary", "final_answer"] | None = None


class FunctionCallItem(StrictModel):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=200)
    name: FunctionName
    arguments: str
    id: str | None = None
    status: ItemStatus | None = None


class FunctionCallOutputItem(StrictModel):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=200)
    output: str | list[InputText]
    id: str | None = None
    status: ItemStatus | None = None


ITEM_TYPES = ("message", "function_call", "function_call_output")


def _item_type(value) -> str | None:
    if isinstance(value, dict):
        return value.get("type", "message")  # an "easy" message item has no type
    return getattr(value, "type", None)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")] | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_type),
]


class FunctionTool(StrictModel):
    type: Literal["function"]
    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionChoice(StrictModel):
    type: Literal["function"]
    name: FunctionName


class TextFormatText(StrictModel):
    type: Literal["text"]


class TextFormatJsonObject(StrictModel):
    type: Literal["json_object"]


class TextFormatJsonSchema(StrictModel):
    type: Literal["json_schema"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(StrictModel):
    format: Annotated[TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")] | None = None


class ReasoningConfig(StrictModel):
    effort: Literal["minimal", "low", "medium", "high"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None  # ignored: no reasoning items are returned
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesStreamOptions(StrictModel):
    include_obfuscation: bool | None = None  # ignored: the gateway pads nothing


class ResponsesRequest(StrictModel):
    model: str = Field(min_length=1, max_length=300,
                       description="provider/model (gigachat/GigaChat-2-Max), an alias, or a routing rule name.")
    input: str | list[InputItem] = Field(min_length=1)
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    reasoning: ReasoningConfig | None = None
    stream: bool | None = False
    stream_options: ResponsesStreamOptions | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = Field(default=None, description="Only false: XRouter stores no responses.")
    # Only null (or false): a stateless gateway refuses them with a message of their own (_check_supported).
    previous_response_id: str | None = Field(default=None, description="Only null: XRouter stores no responses.")
    conversation: str | dict[str, Any] | None = Field(default=None, description="Only null.")
    background: bool | None = Field(default=None, description="Only false or null.")
    prompt: dict[str, Any] | None = Field(default=None, description="Only null: no stored prompts.")
    max_tool_calls: int | None = Field(default=None, description="Only null.")
    # Accepted and ignored: they do not change the answer (README, "The Responses API").
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = Field(default=None, pattern=r"^[\x20-\x7e]{1,128}$",
                                         description="Sent as X-Session-ID: GigaChat's prompt cache.")
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


STATEFUL = {
    "previous_response_id": "previous_response_id",
    "conversation": "conversation",
    "background": "background mode",
    "prompt": "stored prompts",
}


def _refuse(message: str, param: str) -> ApiError:
    return ApiError(400, message, param=param, code="unsupported_parameter")


def _check_supported(data: dict) -> None:
    """What the Responses API has and this gateway does not, refused by name before validation (a
    schema error would only say "Input tag ... does not match")."""
    if data.get("store") is True:
        raise _refuse("XRouter's Responses API is stateless: store must be false or absent (nothing is kept; "
                      "send the whole conversation in input).", "store")
    for name, what in STATEFUL.items():
        if data.get(name) not in (None, False):
            raise _refuse(f"XRouter's Responses API is stateless: {what} is not supported; send the whole "
                          "conversation in input.", name)
    if data.get("max_tool_calls") is not None:
        raise _refuse("max_tool_calls is not supported.", "max_tool_calls")
    tools = data.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        kind = tool.get("type") if isinstance(tool, dict) else "function"  # not an object: the schema says so
        if kind != "function":
            raise _refuse(f"Tool type {kind!r} is not supported: only function tools are (built-in tools run on "
                          "OpenAI's own servers).", f"tools[{i}].type")
    choice = data.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") != "function":
        raise _refuse(f"tool_choice of type {choice.get('type')!r} is not supported: only function tools are.",
                      "tool_choice.type")
    items = data.get("input")
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict):
            continue  # the schema names it
        kind = _item_type(item)
        if kind not in ITEM_TYPES:
            raise _refuse(f"Input items of type {kind!r} are not supported: only {', '.join(ITEM_TYPES)} are "
                          "(the gateway is stateless and runs no built-in tools).", f"input[{i}].type")
        if kind == "message" and isinstance(item.get("content"), list):
            for j, part in enumerate(item["content"]):
                if isinstance(part, dict) and part.get("type") == "input_image" and not part.get("image_url"):
                    raise _refuse("An input_image needs image_url: there is no files API to take file_id from.",
                                  f"input[{i}].content[{j}].image_url")
    text = data.get("text")
    if isinstance(text, dict) and text.get("verbosity") is not None:
        raise _refuse("text.verbosity is not supported: no provider behind the gateway has it.", "text.verbosity")


def parse_responses(raw: bytes) -> tuple[ResponsesRequest, dict]:
    """The validated Responses request and the chat request it becomes (validated as chat too, so
    the chat path's caps on messages and prompt size hold here unchanged)."""
    data = _loads(raw)
    _check_supported(data)
    try:
        req = ResponsesRequest.model_validate(data)
    except ValidationError as exc:
        raise _input_error(data) or _validation_error(exc, data) from None
    return req, parse_chat(orjson.dumps(to_chat(req)))


class _Items(StrictModel):
    input: list[InputItem]


def _input_error(data: dict) -> ApiError | None:
    """The error inside a list `input`, named by its path: pydantic reports `input` first as "not a
    string" (the union's other member), which says nothing about the bad item."""
    if not isinstance(data.get("input"), list):
        return None
    try:
        _Items.model_validate({"input": data["input"]})
    except ValidationError as exc:
        return _validation_error(exc, data)
    return None


def _text_of(parts) -> str:
    return "".join(p.text if p.type in ("input_text", "output_text") else p.refusal for p in parts)


def _message(item: MessageItem) -> dict:
    content = item.content
    if isinstance(content, list):
        if item.role == "user":
            content = [{"type": "image_url", "image_url": {"url": p.image_url, **({"detail": p.detail} if p.detail else {})}}
                       if p.type == "input_image" else {"type": "text", "text": _text_of([p])} for p in content]
        elif any(p.type == "input_image" for p in content):
            raise _refuse(f"Only user messages may carry images, not {item.role} ones.", "input")
        else:
            content = _text_of(content)
    return {"role": item.role, "content": content}


def to_chat(req: ResponsesRequest) -> dict:
    """The chat request a Responses request means. Function calls following an assistant message (or
    each other) join that assistant turn, as one chat message carries text and tool calls."""
    messages = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    items = [MessageItem(role="user", content=req.input)] if isinstance(req.input, str) else req.input
    for item in items:
        if item.type == "message":
            messages.append(_message(item))
        elif item.type == "function_call":
            call = {"id": item.call_id, "type": "function", "function": {"name": item.name, "arguments": item.arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            output = item.output if isinstance(item.output, str) else _text_of(item.output)
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": output})
    body = {"model": req.model, "messages": messages, "stream": bool(req.stream)}
    for name in ("temperature", "top_p", "parallel_tool_calls", "user", "metadata"):
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.max_output_tokens is not None:
        body["max_tokens"] = req.max_output_tokens
    if req.reasoning is not None and req.reasoning.effort is not None:
        body["reasoning_effort"] = req.reasoning.effort
    if req.tools:
        body["tools"] = [{"type": "function", "function": t.model_dump(exclude_none=True, exclude={"type"})} for t in req.tools]
    if req.tool_choice is not None:
        choice = req.tool_choice
        body["tool_choice"] = choice if isinstance(choice, str) else {"type": "function", "function": {"name": choice.name}}
    fmt = req.text.format if req.text is not None else None
    if fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": fmt.model_dump(exclude_none=True, exclude={"type"}, by_alias=True)}
    return body


# A refusal further down (the router, an adapter) names the field of the chat request this module built;
# a Responses client sent another. Messages are renumbered (instructions come first), so they become `input`.
CHAT_PARAMS = (("response_format.json_schema", "text.format"), ("response_format", "text.format"),
               ("max_tokens", "max_output_tokens"), ("reasoning_effort", "reasoning.effort"),
               ("tool_choice.function", "tool_choice"))
CHAT_TOOL = re.compile(r"^tools\[(\d+)\]\.function(?=$|[.\[])")


def responses_param(param: str | None) -> str | None:
    """The Responses request's name for `param`, a field of the chat request it was translated into."""
    if not param:
        return param
    if param == "messages" or param.startswith(("messages.", "messages[")):
        return "input"
    param = CHAT_TOOL.sub(r"tools[\1]", param)
    for chat, responses in CHAT_PARAMS:
        if param == chat or param.startswith((chat + ".", chat + "[")):
            return responses + param[len(chat):]
    return param


QUOTED = re.compile(r"'([A-Za-z_][\w.\[\]]*)'")


def responses_message(message: str) -> str:
    """An error message's quoted chat-request fields, renamed as responses_param renames `param`."""
    return QUOTED.sub(lambda m: f"'{responses_param(m.group(1))}'", message)
