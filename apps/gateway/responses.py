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

import orjson

from apps.common.errors import ApiError

from .auth import authenticate
from .handlers import serve_chat
from .http import ClientGone, start_sse
from .responses_schema import FunctionChoice, ResponsesRequest, parse_responses, responses_message, responses_param
from .streaming import SseSink

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
        if self.gone():
            raise ClientGone()
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
    # prompt_cache_key is the Responses API's name for what X-Session-ID says to GigaChat: keep this
    # conversation on the provider's prompt cache.
    session = request.prompt_cache_key or ""
    try:
        if body["stream"]:
            await serve_chat(req, send, key, body, sink=ResponsesSink(req, send, answer), session=session)
        else:
            await serve_chat(req, send, key, body, shape=answer.shape, session=session)
    except ApiError as exc:  # e.g. GigaChat's refusal of json_object names text.format, the field the client sent
        exc.param, exc.message = responses_param(exc.param), responses_message(exc.message)
        raise
