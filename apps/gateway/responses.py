"""`POST /v1/responses`: OpenAI's Responses API, translated into a chat request and answered by the
same path as /v1/chat/completions (handlers.chat: router, limits, fallback, cache, usage rows and
metrics), then translated back: a Response object, or the Responses event stream.

Stateless, like the rest of the gateway: `store: true`, `previous_response_id`, `conversation` and
`background` are refused (the client sends the whole conversation in `input`), and so are item types
other than messages, function calls and their outputs, and built-in tools (web_search, file_search,
…: they run on OpenAI's servers). Shapes follow the official `openai` SDK's types
(openai/types/responses/: response.py, response_stream_event.py) and its stream accumulator
(openai/lib/streaming/responses/_responses.py), which checks the event order.
"""

import time
from typing import Annotated, Any, Literal

import orjson
from pydantic import Discriminator, Field, Tag, ValidationError

from apps.common.errors import ApiError

from .auth import authenticate
from .handlers import serve_chat
from .http import start_sse
from .schemas import MAX_TOKENS, FunctionName, StrictModel, _loads, _validation_error, parse_chat
from .streaming import SseSink

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


class StreamOptions(StrictModel):
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
    stream_options: StreamOptions | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = Field(default=None, description="Only false: XRouter stores no responses.")
    # Accepted and ignored: they do not change the answer (README, "The Responses API").
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
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
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise _refuse(f"Tool type {kind!r} is not supported: only function tools are (built-in tools run on "
                          "OpenAI's own servers).", f"tools[{i}].type")
    choice = data.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") != "function":
        raise _refuse(f"tool_choice of type {choice.get('type')!r} is not supported: only function tools are.",
                      "tool_choice.type")
    items = data.get("input")
    for i, item in enumerate(items if isinstance(items, list) else ()):
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


# --- the answer ---

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _usage(usage: dict) -> dict:
    """Chat usage (Usage.to_openai()) as the Responses API counts it."""
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)},
        "total_tokens": prompt + completion,
    }


class Answer:
    """What every Response object of one request shares: its ids and the request's settings, echoed
    as OpenAI echoes them."""

    def __init__(self, req: ResponsesRequest, request_id: str):
        self.req = req
        self.request_id = request_id
        self.id = "resp_" + request_id
        self.created = int(time.time())

    def message_id(self) -> str:
        return "msg_" + self.request_id

    def call_id(self, index: int) -> str:
        return f"fc_{self.request_id}_{index}"

    def response(self, model: str, status: str, output: list, usage: dict | None = None, finish: str | None = None,
                 error: dict | None = None) -> dict:
        req = self.req
        reason = INCOMPLETE.get(finish)
        if status == "completed" and reason:
            status = "incomplete"
        fmt = req.text.format.model_dump(exclude_none=True, by_alias=True) if req.text and req.text.format else {"type": "text"}
        choice = req.tool_choice
        return {
            "id": self.id, "object": "response", "created_at": self.created, "status": status, "model": model,
            "output": output, "usage": usage, "error": error,
            "incomplete_details": {"reason": reason} if status == "incomplete" else None,
            "instructions": req.instructions, "max_output_tokens": req.max_output_tokens,
            "parallel_tool_calls": req.parallel_tool_calls is not False, "previous_response_id": None,
            "reasoning": {"effort": req.reasoning.effort, "summary": None} if req.reasoning else None,
            "store": False, "temperature": req.temperature, "top_p": req.top_p, "text": {"format": fmt},
            "tool_choice": choice.model_dump() if isinstance(choice, FunctionChoice) else (choice or "auto"),
            "tools": [t.model_dump(exclude_none=True) for t in req.tools or ()], "truncation": "disabled",
            "user": req.user, "metadata": req.metadata or {},
        }

    def message_item(self, text: str, status: str = "completed") -> dict:
        return {"type": "message", "id": self.message_id(), "status": status, "role": "assistant",
                "content": [_text_part(text)]}

    def shape(self, payload: dict) -> dict:
        """A chat.completion (handlers.chat's answer) as a Response object."""
        choice = payload["choices"][0]
        message = choice["message"]
        output = []
        calls = message.get("tool_calls") or ()
        if message.get("content") or not calls:
            status = "incomplete" if choice["finish_reason"] in INCOMPLETE else "completed"
            output.append(self.message_item(message.get("content") or "", status))
        for i, call in enumerate(calls):
            output.append({"type": "function_call", "id": self.call_id(i), "call_id": call["id"],
                           "name": call["function"]["name"], "arguments": call["function"]["arguments"],
                           "status": "completed"})
        return self.response(payload["model"], "completed", output, _usage(payload["usage"]), choice["finish_reason"])


def _text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class ResponsesSink(SseSink):
    """The chat relay's chunks (streaming.py) as the Responses event stream: response.created and
    .in_progress when the answer starts, an output item per message or function call (added, its
    deltas, done), then response.completed, .incomplete (length, content filter) or .failed.
    Every event has a sequence_number; item events their output_index and item_id. Items stay open
    until the end, and are closed in output order, as the SDK's accumulator requires before
    response.completed."""

    def __init__(self, req, send, answer: Answer):
        super().__init__(req, send)
        self.answer = answer
        self.model = answer.req.model
        self.seq = 0
        self.items: list[dict] = []  # output items in output_index order, filled in as deltas come
        self.message: dict | None = None
        self.text: list[str] = []
        self.calls: dict[int, dict] = {}  # the chat stream's tool-call index -> its output item
        self.finish: str | None = None

    def _emit(self, kind: str, **fields):
        payload = orjson.dumps({"type": kind, "sequence_number": self.seq, **fields})
        self.seq += 1
        return self.send({"type": "http.response.body", "body": b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n",
                          "more_body": True})

    async def start(self, headers: dict) -> None:
        await start_sse(self.send, headers)
        response = self.answer.response(self.model, "in_progress", [])
        await self._emit("response.created", response=response)
        await self._emit("response.in_progress", response=response)

    async def event(self, payload: bytes) -> None:
        chunk = orjson.loads(payload)
        self.model = chunk.get("model", self.model)
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # the Responses API has no `n`; the chat request never asks for more
            delta = choice.get("delta") or {}
            if delta.get("content"):
                await self._text(delta["content"])
            for call in delta.get("tool_calls") or ():
                await self._call(call)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]

    def text_writer(self, prefix: bytes):
        return self._text

    async def _text(self, content: str) -> None:
        if self.message is None:
            self.message = {"type": "message", "id": self.answer.message_id(), "status": "in_progress", "role": "assistant",
                            "content": [], "output_index": len(self.items)}
            self.items.append(self.message)
            await self._emit("response.output_item.added", output_index=self.message["output_index"],
                             item={k: v for k, v in self.message.items() if k != "output_index"})
            await self._emit("response.content_part.added", item_id=self.message["id"], output_index=self.message["output_index"],
                             content_index=0, part={"type": "output_text", "text": "", "annotations": []})
        self.text.append(content)
        await self._emit("response.output_text.delta", item_id=self.message["id"], output_index=self.message["output_index"],
                         content_index=0, delta=content, logprobs=[])

    async def _call(self, call: dict) -> None:
        index = call.get("index", 0)
        function = call.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            item = {"type": "function_call", "id": self.answer.call_id(index), "call_id": call.get("id") or "",
                    "name": function.get("name") or "", "arguments": "", "status": "in_progress",
                    "output_index": len(self.items)}
            self.calls[index] = item
            self.items.append(item)
            await self._emit("response.output_item.added", output_index=item["output_index"],
                             item={k: v for k, v in item.items() if k != "output_index"})
        arguments = function.get("arguments")
        if arguments:
            item["arguments"] += arguments
            await self._emit("response.function_call_arguments.delta", item_id=item["id"], output_index=item["output_index"],
                             delta=arguments)

    async def _close_items(self, status: str) -> list[dict]:
        done = []
        for item in self.items:
            index = item.pop("output_index")
            item["status"] = status
            if item["type"] == "message":
                part = _text_part("".join(self.text))
                await self._emit("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                                 text=part["text"], logprobs=[])
                await self._emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                                 part=part)
                item["content"] = [part]
            else:
                await self._emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                 name=item["name"], arguments=item["arguments"])
            await self._emit("response.output_item.done", output_index=index, item=item)
            done.append(item)
        return done

    async def end(self, prefix: bytes, usage, include_usage: bool, error=None, cancelled=False) -> None:
        answer = self.answer
        if error is not None:
            output = await self._close_items("incomplete")
            failure = {"code": error.code or "server_error", "message": error.message}
            await self._emit("response.failed", response=answer.response(self.model, "failed", output,
                                                                          _usage(usage.to_openai()), error=failure))
        else:
            incomplete = self.finish in INCOMPLETE
            output = await self._close_items("incomplete" if incomplete else "completed")
            response = answer.response(self.model, "completed", output, _usage(usage.to_openai()), self.finish)
            await self._emit("response.incomplete" if incomplete else "response.completed", response=response)
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})


async def create_response(req, send) -> None:
    key = await authenticate(req, "chat")
    request, body = parse_responses(await req.body())
    answer = Answer(request, req.request_id)
    if body["stream"]:
        await serve_chat(req, send, key, body, sink=ResponsesSink(req, send, answer))
    else:
        await serve_chat(req, send, key, body, shape=answer.shape)
