"""The /v1 request schemas (pydantic v2: validation in Rust, errors that name the field).

`parse_chat` / `parse_embeddings` turn raw bytes into the plain dict the adapters take, or
raise ApiError(400) naming the bad parameter. Unknown parameters are refused, not passed on
to fail upstream; the few with no effect on the answer are accepted and ignored (README).
"""

from typing import Annotated, Any, Literal

import orjson
from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from apps.common.errors import ApiError

MAX_TOKENS = 10_000_000  # far above any model's window; keeps numbers inside what JSON encoders take
MAX_STOP_CHARS = 256  # the stop cutter holds back up to this much of a stream
FunctionName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]


class StrictModel(BaseModel):
    """Every /v1 request model. Strict: "2" is not a number and "true" not a boolean, as in OpenAI's own
    API. The OpenAPI schema is generated from these models (openapi.py)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(StrictModel):
    type: Literal["text"]
    text: str


class ImageUrl(StrictModel):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(StrictModel):
    type: Literal["image_url"]
    image_url: ImageUrl


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class FunctionCall(StrictModel):
    name: FunctionName
    arguments: str


class ToolCall(StrictModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(StrictModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _check_role_fields(self):
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.role == "function" and not self.name:
            raise ValueError("a function message needs name")
        if self.role != "assistant" and (self.tool_calls or self.function_call):
            raise ValueError("only assistant messages carry tool_calls")
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role} message needs content")
        if self.role == "assistant" and self.content is None and not (self.tool_calls or self.function_call):
            raise ValueError("an assistant message needs content or tool_calls")
        return self


class FunctionDef(StrictModel):
    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(StrictModel):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(StrictModel):
    name: FunctionName


class NamedToolChoice(StrictModel):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(StrictModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(StrictModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _needs_schema(self):
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("json_schema is required when type is json_schema")
        return self


class StreamOptions(StrictModel):
    include_usage: bool = False


class ChatCompletionRequest(StrictModel):
    model: str = Field(min_length=1, max_length=300,
                       description="provider/model (gigachat/GigaChat-2-Max), an alias, or a routing rule name.")
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    n: int | None = Field(default=None, ge=1, le=16)
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: list[FunctionDef] | None = None
    function_call: Literal["none", "auto"] | NamedFunction | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    # XRouter's own switch for hybrid reasoning models (T-Pro, Qwen3, YandexGPT reasoning).
    thinking: bool | None = Field(default=None, description="XRouter: switch reasoning on or off for hybrid models.")
    # Decided per provider by the adapters (README, "Parameters per provider"): passed where the
    # provider has them; seed and logit_bias refused where it has not (they change the answer).
    user: str | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    logit_bias: dict[str, float] | None = None
    # Accepted and ignored: they do not change the answer (README, "Ignored parameters").
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value):
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        if any(len(s) > MAX_STOP_CHARS for s in stops):
            raise ValueError(f"a stop string may be at most {MAX_STOP_CHARS} characters long")
        return stops

    @model_validator(mode="after")
    def _consistent(self):
        if self.tools is not None and self.functions is not None:
            raise ValueError("use tools or the legacy functions, not both")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self


class EmbeddingsRequest(StrictModel):
    model: str = Field(min_length=1, max_length=300)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=65536)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _non_empty(cls, value):
        items = [value] if isinstance(value, str) else value
        if not items or len(items) > 2048 or any(not s for s in items):
            raise ValueError("input must be a non-empty string or a list of 1 to 2048 non-empty strings")
        return value


class TokenizeRequest(StrictModel):
    """POST /v1/xrouter/tokenize: the prompt part of a chat request."""

    model: str = Field(min_length=1, max_length=300)
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None


# `metadata` is read for routing tags by the handler, then dropped like these. `user`, `seed`,
# `logit_bias` and `parallel_tool_calls` go on to the adapters, which decide per provider.
IGNORED_CHAT_PARAMS = ("logprobs", "top_logprobs", "store", "service_tier")


def _loads(raw: bytes) -> dict:
    if not raw:
        raise ApiError(400, "Request body is empty; send a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"Request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object.")
    return data


def _param_path(loc, data, missing: bool) -> str:
    """The request's own path to the bad value: pydantic's loc also names union members and
    validators, so keep only the parts that exist in the body (plus a missing field's name)."""
    parts, node = [], data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            parts.append(part)
            node = node[part]
        elif isinstance(part, str) and isinstance(node, dict) and part in node:
            parts.append(part)
            node = node[part]
    if missing and loc and isinstance(loc[-1], str):
        parts.append(loc[-1])
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _validation_error(exc: ValidationError, data) -> ApiError:
    err = exc.errors(include_url=False)[0]
    missing = err["type"] == "missing"
    param = _param_path(err["loc"], data, missing)
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    elif missing:
        message = f"Missing required parameter: {param}"
    else:
        message = f"Invalid value for {param or 'request'}: {message}"
    return ApiError(400, message, param=param or None, code="missing_required_parameter" if missing else "invalid_value")


def parse_chat(raw: bytes) -> dict:
    """Validated chat request as a plain dict, legacy fields folded into the current ones."""
    try:
        # Straight from bytes: pydantic's own JSON parser skips building Python dicts first.
        req = ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as exc:
        data = _loads(raw)  # a body that is not a JSON object gets its own precise message here
        raise _validation_error(exc, data) from None
    _check_size(req.messages)
    body = req.model_dump(exclude_none=True, by_alias=True)
    if "max_completion_tokens" in body:
        body["max_tokens"] = body.pop("max_completion_tokens")
    if "functions" in body:
        body["tools"] = [{"type": "function", "function": f} for f in body.pop("functions")]
    if "function_call" in body:
        choice = body.pop("function_call")
        body["tool_choice"] = choice if isinstance(choice, str) else {"type": "function", "function": choice}
        body["legacy_functions"] = True
    elif body.get("tools") and req.functions is not None:
        body["legacy_functions"] = True
    for name in ("tools", "response_format"):
        if name in body:
            _check_encodable(body[name], name)
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name) == 0:
            del body[name]  # SDKs send 0 by default; it is the neutral value everywhere
    for name in IGNORED_CHAT_PARAMS:
        body.pop(name, None)
    if isinstance(body.get("tool_choice"), dict):
        wanted = body["tool_choice"]["function"]["name"]
        if wanted not in {t["function"]["name"] for t in body.get("tools") or ()}:
            raise ApiError(400, f"tool_choice names a function that is not in tools: {wanted}", param="tool_choice")
    return body


def _check_size(messages: list[Message]) -> None:
    """Caps on what translation walks and copies (XROUTER_MAX_MESSAGES, XROUTER_MAX_PROMPT_CHARS)."""
    limits = settings.XROUTER
    if len(messages) > limits["MAX_MESSAGES"]:
        raise ApiError(400, f"Too many messages: {len(messages)}; at most {limits['MAX_MESSAGES']} are accepted.",
                       param="messages", code="invalid_value")
    chars = 0
    for message in messages:
        content = message.content
        if isinstance(content, str):
            chars += len(content)
        elif content:
            chars += sum(len(part.text) for part in content if isinstance(part, TextPart))
        for call in message.tool_calls or ():
            chars += len(call.function.arguments)
        if message.function_call is not None:
            chars += len(message.function_call.arguments)
    if chars > limits["MAX_PROMPT_CHARS"]:
        raise ApiError(400, f"The messages hold {chars} characters of text; at most {limits['MAX_PROMPT_CHARS']} are accepted.",
                       param="messages", code="invalid_value")


def _check_encodable(value, param: str) -> None:
    """Free-form JSON (schemas) must survive re-encoding for the provider: no integers past 64 bits."""
    try:
        orjson.dumps(value)
    except TypeError:
        raise ApiError(400, f"Invalid value for {param}: a number is outside the 64-bit range.", param=param,
                       code="invalid_value") from None


def parse_tokenize(raw: bytes) -> dict:
    try:
        req = TokenizeRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise _validation_error(exc, _loads(raw)) from None
    _check_size(req.messages)
    return req.model_dump(exclude_none=True)


def parse_embeddings(raw: bytes) -> dict:
    data = _loads(raw)
    try:
        req = EmbeddingsRequest.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, data) from None
    body = req.model_dump(exclude_none=True)
    body.pop("user", None)
    return body
