"""The client-library matrix's cells: each library drives a served gateway through its own API.

A cell returns what the library gave back (plain JSON: a tool call's name and arguments, an
answer, streamed text, a parsed model's dump) or, when the library raised, the error with the
gateway's HTTP status and body; tests/libraries/test_matrix.py holds the expectations. The same
code runs in pytest's process (the libraries of .venv) and as a script in the matrix's own venvs
(`python cells.py --library instructor ...`, for the libraries whose pins cannot share .venv):
nothing here imports the project, and a library is imported only by its own cells.

Offline by construction: the socket guard refuses (and records) any connection or name lookup
that is not loopback, and the libraries' tracing and telemetry are switched off (TELEMETRY_OFF).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import socket
import sys
import traceback
from pathlib import Path

from pydantic import BaseModel

TELEMETRY_OFF = {
    "OPENAI_AGENTS_DISABLE_TRACING": "1",  # the Agents SDK's trace export to api.openai.com
    "LANGCHAIN_TRACING_V2": "false",  # LangSmith, both spellings
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING": "false",
    "LOGFIRE_SEND_TO_LOGFIRE": "false",  # pydantic-ai reports to logfire only if logfire is installed (it is not)
    "LOGFIRE_IGNORE_NO_CONFIG": "1",
    "DO_NOT_TRACK": "1",  # the cross-tool convention, for whatever else honours it
}

PROVIDERS = {
    "gigachat": "gigachat/GigaChat-2-Max",
    "yandexgpt": "yandexgpt/yandexgpt-lite",
    "mts": "mts/mws-gpt-alpha",
    "tbank": "tbank/t-tech/T-lite-it-2.1",
}
CELLS = ("tool_call", "tool_round_trip", "stream", "structured")
# JSON mode (`response_format` json_object): a cell of the columns whose library offers it.
JSON_MODE = "json_mode"

QUESTION = "What is the weather in Moscow?"
LONG_PROMPT = "Tell me a long story [long]"  # the emulators answer with 120 words (apps/emulators/behaviour.py)
DESCRIBE = "Describe a person who lives in Moscow."
JSON_PROMPT = "Answer in JSON, please."
TOOL_OUTPUT = '{"forecast":"sunny"}'  # JSON: GigaChat takes function results as JSON only

WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER_CHAT_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                                      "parameters": WEATHER_PARAMETERS}}
WEATHER_RESPONSES_TOOL = {"type": "function", "name": "get_weather", "description": "The weather in a city",
                          "parameters": WEATHER_PARAMETERS}


# --- The structured output: nested models, optional fields, lists ---

class Street(BaseModel):
    name: str
    number: int


class Address(BaseModel):
    city: str
    street: Street
    postcode: str | None = None


class Person(BaseModel):
    name: str
    age: int
    home: Address
    nicknames: list[str]
    previous_homes: list[Address] = []
    email: str | None = None


class Answer(BaseModel):
    """What the emulators answer in JSON mode: {"answer": <the answer's text>}."""

    answer: str


class GetWeather(BaseModel):
    """The weather in a city."""

    city: str


def get_weather(city: str) -> str:
    """The weather in a city."""
    return TOOL_OUTPUT


def _dump(value) -> dict:
    return {"type": type(value).__name__, "value": value.model_dump(mode="json")}


# --- Socket guard ---

class NonLoopbackConnection(ConnectionRefusedError):
    pass


VIOLATIONS: list[str] = []


def _is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).split("%", 1)[0]
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def install_socket_guard():
    """Refuse every non-loopback connection and name lookup, and record it (VIOLATIONS): a library
    that swallows the error still fails its test. Returns the function that removes the guard."""
    real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def refuse(what: str):
        VIOLATIONS.append(what)
        raise NonLoopbackConnection(f"socket guard: a non-loopback connection was attempted: {what}")

    def check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            refuse(f"connect {address[0]}:{address[1]}")

    def connect(self, address):
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_loopback(host):
            refuse(f"getaddrinfo {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo

    def uninstall():
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = real_connect, real_connect_ex, real_getaddrinfo

    return uninstall


def probe_guard() -> dict:
    """Proof that the guard is on: a connection to TEST-NET-1 (RFC 5737, never routed) and a lookup of a
    public name are refused before any packet leaves; the probe's own records are then dropped."""
    refused, before = [], len(VIOLATIONS)
    for attempt in (lambda sock: sock.connect(("192.0.2.1", 443)),
                    lambda sock: socket.getaddrinfo("api.openai.com", 443)):
        try:
            with socket.socket() as sock:
                attempt(sock)
        except NonLoopbackConnection:
            refused.append(True)
        else:
            refused.append(False)
    del VIOLATIONS[before:]
    return {"refused": refused}


# --- The libraries: one class per column, one method per cell ---

class Column:
    def __init__(self, base_url: str, key: str, model: str):
        self.base_url, self.key, self.model = base_url, key, model


class OpenAIChat(Column):
    """The openai SDK, Chat Completions."""

    def client(self):
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=self.key, max_retries=0, timeout=30)

    def _first(self, client):
        return client.chat.completions.create(model=self.model, messages=[{"role": "user", "content": QUESTION}],
                                              tools=[WEATHER_CHAT_TOOL])

    def tool_call(self):
        call = self._first(self.client()).choices[0].message.tool_calls[0]
        return {"name": call.function.name, "arguments": json.loads(call.function.arguments)}

    def tool_round_trip(self):
        client = self.client()
        message = self._first(client).choices[0].message
        messages = [{"role": "user", "content": QUESTION}, message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": TOOL_OUTPUT}]
        second = client.chat.completions.create(model=self.model, messages=messages, tools=[WEATHER_CHAT_TOOL])
        return {"answer": second.choices[0].message.content}

    def stream(self):
        chunks = self.client().chat.completions.create(model=self.model, stream=True,
                                                       messages=[{"role": "user", "content": LONG_PROMPT}])
        return {"deltas": [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]}

    def structured(self):
        completion = self.client().chat.completions.parse(model=self.model, response_format=Person,
                                                          messages=[{"role": "user", "content": DESCRIBE}])
        return _dump(completion.choices[0].message.parsed)

    def json_mode(self):
        completion = self.client().chat.completions.create(model=self.model, response_format={"type": "json_object"},
                                                           messages=[{"role": "user", "content": JSON_PROMPT}])
        return _dump(Answer.model_validate_json(completion.choices[0].message.content))


class OpenAIResponses(Column):
    """The openai SDK, the Responses API."""

    client = OpenAIChat.client

    def _first(self, client):
        response = client.responses.create(model=self.model, input=QUESTION, tools=[WEATHER_RESPONSES_TOOL])
        return response, next(item for item in response.output if item.type == "function_call")

    def tool_call(self):
        _, call = self._first(self.client())
        return {"name": call.name, "arguments": json.loads(call.arguments)}

    def tool_round_trip(self):
        client = self.client()
        first, call = self._first(client)
        follow_up = [{"role": "user", "content": QUESTION}, *first.output,
                     {"type": "function_call_output", "call_id": call.call_id, "output": TOOL_OUTPUT}]
        return {"answer": client.responses.create(model=self.model, input=follow_up, tools=[WEATHER_RESPONSES_TOOL]).output_text}

    def stream(self):
        with self.client().responses.stream(model=self.model, input=LONG_PROMPT) as events:
            return {"deltas": [e.delta for e in events if e.type == "response.output_text.delta"]}

    def structured(self):
        return _dump(self.client().responses.parse(model=self.model, input=DESCRIBE, text_format=Person).output_parsed)

    def json_mode(self):
        response = self.client().responses.create(model=self.model, input=JSON_PROMPT,
                                                  text={"format": {"type": "json_object"}})
        return _dump(Answer.model_validate_json(response.output_text))


class LangChain(Column):
    """langchain-openai's ChatOpenAI."""

    def llm(self):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=self.model, base_url=self.base_url, api_key=self.key, max_retries=0, timeout=30)

    def _first(self, llm):
        from langchain_core.tools import tool

        bound = llm.bind_tools([tool(get_weather)])
        return bound, bound.invoke(QUESTION)

    def tool_call(self):
        _, message = self._first(self.llm())
        call = message.tool_calls[0]
        return {"name": call["name"], "arguments": call["args"]}

    def tool_round_trip(self):
        from langchain_core.messages import HumanMessage, ToolMessage

        bound, message = self._first(self.llm())
        history = [HumanMessage(QUESTION), message, ToolMessage(TOOL_OUTPUT, tool_call_id=message.tool_calls[0]["id"])]
        return {"answer": bound.invoke(history).content}

    def stream(self):
        return {"deltas": [chunk.content for chunk in self.llm().stream(LONG_PROMPT) if chunk.content]}

    def structured(self):
        return _dump(self.llm().with_structured_output(Person).invoke(DESCRIBE))

    def json_mode(self):
        return _dump(self.llm().with_structured_output(Answer, method="json_mode").invoke(JSON_PROMPT))


class Instructor(Column):
    """instructor over the openai SDK, in its default mode (TOOLS: the model is a forced tool call)."""

    def client(self):
        import instructor
        from openai import OpenAI

        return instructor.from_openai(OpenAI(base_url=self.base_url, api_key=self.key, max_retries=0, timeout=30))

    def tool_call(self):
        query = self.client().chat.completions.create(response_model=GetWeather, model=self.model, max_retries=0,
                                                      messages=[{"role": "user", "content": QUESTION}])
        return {"name": type(query).__name__, "arguments": query.model_dump()}

    def tool_round_trip(self):
        # response_model=None: instructor hands the completion back as it came (its pass-through).
        client = self.client()
        messages = [{"role": "user", "content": QUESTION}]
        first = client.chat.completions.create(response_model=None, model=self.model, messages=messages,
                                               tools=[WEATHER_CHAT_TOOL]).choices[0].message
        # instructor reads every message's content: the assistant's tool-call turn keeps its (null) content.
        messages += [{**first.model_dump(exclude_none=True), "content": first.content},
                     {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": TOOL_OUTPUT}]
        second = client.chat.completions.create(response_model=None, model=self.model, messages=messages,
                                                tools=[WEATHER_CHAT_TOOL])
        return {"answer": second.choices[0].message.content}

    def stream(self):
        # instructor streams partial models as the tool call's arguments arrive.
        partials = list(self.client().chat.completions.create_partial(
            response_model=Person, model=self.model, max_retries=0, messages=[{"role": "user", "content": DESCRIBE}]))
        return {"partials": len(partials), **_dump(Person.model_validate(partials[-1].model_dump()))}

    def structured(self):
        return _dump(self.client().chat.completions.create(response_model=Person, model=self.model, max_retries=0,
                                                           messages=[{"role": "user", "content": DESCRIBE}]))

    def json_mode(self):
        import instructor
        from openai import OpenAI

        client = instructor.from_openai(OpenAI(base_url=self.base_url, api_key=self.key, max_retries=0, timeout=30),
                                        mode=instructor.Mode.JSON)
        return _dump(client.chat.completions.create(response_model=Answer, model=self.model, max_retries=0,
                                                    messages=[{"role": "user", "content": JSON_PROMPT}]))


class PydanticAI(Column):
    """pydantic-ai's Agent over OpenAIChatModel (OpenAIResponsesModel: `responses = True`)."""

    responses = False

    def agent(self, **kwargs):
        from openai import AsyncOpenAI
        from pydantic_ai import Agent
        from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
        from pydantic_ai.providers.openai import OpenAIProvider

        client = AsyncOpenAI(base_url=self.base_url, api_key=self.key, max_retries=0, timeout=30)
        kind = OpenAIResponsesModel if self.responses else OpenAIChatModel
        return Agent(kind(self.model, provider=OpenAIProvider(openai_client=client)), **kwargs)

    def tool_call(self):
        from pydantic_ai.messages import ToolCallPart

        result = self.agent(tools=[get_weather]).run_sync(QUESTION)
        call = next(p for m in result.all_messages() for p in m.parts if isinstance(p, ToolCallPart))
        return {"name": call.tool_name, "arguments": call.args_as_dict()}

    def tool_round_trip(self):
        return {"answer": self.agent(tools=[get_weather]).run_sync(QUESTION).output}

    def stream(self):
        async def run():
            async with self.agent().run_stream(LONG_PROMPT) as result:
                return [delta async for delta in result.stream_text(delta=True, debounce_by=None) if delta]

        return {"deltas": asyncio.run(run())}

    def structured(self):
        return _dump(self.agent(output_type=Person).run_sync(DESCRIBE).output)


class PydanticAIResponses(PydanticAI):
    responses = True


class Agents(Column):
    """The OpenAI Agents SDK over OpenAIChatCompletionsModel (OpenAIResponsesModel: `responses = True`)."""

    responses = False

    def agent(self, **kwargs):
        from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, function_tool, set_tracing_disabled
        from openai import AsyncOpenAI

        set_tracing_disabled(True)
        client = AsyncOpenAI(base_url=self.base_url, api_key=self.key, max_retries=0, timeout=30)
        kind = OpenAIResponsesModel if self.responses else OpenAIChatCompletionsModel
        tools = [function_tool(get_weather)] if kwargs.pop("tools", False) else []
        return Agent(name="matrix", instructions="Be brief.", model=kind(model=self.model, openai_client=client),
                     tools=tools, **kwargs)

    def _run(self, agent, prompt):
        from agents import Runner

        return asyncio.run(Runner.run(agent, prompt))

    def tool_call(self):
        result = self._run(self.agent(tools=True), QUESTION)
        call = next(item.raw_item for item in result.new_items if item.type == "tool_call_item")
        return {"name": call.name, "arguments": json.loads(call.arguments)}

    def tool_round_trip(self):
        return {"answer": self._run(self.agent(tools=True), QUESTION).final_output}

    def stream(self):
        from agents import Runner

        async def run():
            result = Runner.run_streamed(self.agent(), LONG_PROMPT)
            return [event.data.delta async for event in result.stream_events()
                    if event.type == "raw_response_event" and event.data.type == "response.output_text.delta"]

        return {"deltas": asyncio.run(run())}

    def structured(self):
        return _dump(self._run(self.agent(output_type=Person), DESCRIBE).final_output)


class AgentsResponses(Agents):
    responses = True


class LlamaIndex(Column):
    """LlamaIndex's OpenAILike LLM (its OpenAI class takes OpenAI's model names only)."""

    def llm(self):
        from llama_index.llms.openai_like import OpenAILike

        return OpenAILike(model=self.model, api_base=self.base_url, api_key=self.key, is_chat_model=True,
                          is_function_calling_model=True, context_window=32768, max_retries=0, timeout=30)

    def _first(self, llm):
        from llama_index.core.tools import FunctionTool

        tool = FunctionTool.from_defaults(fn=get_weather)
        response = llm.chat_with_tools([tool], user_msg=QUESTION)
        return tool, response, llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)[0]

    def tool_call(self):
        _, _, call = self._first(self.llm())
        return {"name": call.tool_name, "arguments": call.tool_kwargs}

    def tool_round_trip(self):
        from llama_index.core.llms import ChatMessage

        llm = self.llm()
        tool, response, call = self._first(llm)
        history = [ChatMessage(role="user", content=QUESTION), response.message,
                   ChatMessage(role="tool", content=TOOL_OUTPUT, additional_kwargs={"tool_call_id": call.tool_id})]
        return {"answer": llm.chat_with_tools([tool], chat_history=history).message.content}

    def stream(self):
        from llama_index.core.llms import ChatMessage

        stream = self.llm().stream_chat([ChatMessage(role="user", content=LONG_PROMPT)])
        return {"deltas": [r.delta for r in stream if r.delta]}

    def structured(self):
        from llama_index.core.prompts import PromptTemplate

        return _dump(self.llm().structured_predict(Person, PromptTemplate("Describe a person who lives in {city}."),
                                                   city="Moscow"))


LIBRARIES: dict[str, type[Column]] = {
    "openai-chat": OpenAIChat,
    "openai-responses": OpenAIResponses,
    "langchain": LangChain,
    "instructor": Instructor,
    "pydantic-ai-chat": PydanticAI,
    "pydantic-ai-responses": PydanticAIResponses,
    "agents-chat": Agents,
    "agents-responses": AgentsResponses,
    "llamaindex": LlamaIndex,
}


def _http_error(exc: BaseException) -> dict:
    """The HTTP status and body of the gateway's answer behind a library's exception (the libraries
    wrap the openai SDK's APIStatusError, or raise their own with status_code and body)."""
    seen, todo = set(), [exc]
    while todo:
        error = todo.pop(0)
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        status = getattr(error, "status_code", None)
        response = getattr(error, "response", None)
        if isinstance(status, int):
            body = getattr(error, "body", None)
            text = getattr(response, "text", None)
            if isinstance(text, str):
                try:
                    body = json.loads(text)
                except ValueError:
                    body = text
            return {"status": status, "body": body}
        todo += [error.__cause__, error.__context__, *(e for e in getattr(error, "args", ()) if isinstance(e, BaseException))]
        todo += list(getattr(error, "exceptions", ()) or ())  # ExceptionGroup
        last = getattr(error, "last_attempt", None)  # tenacity's RetryError (instructor)
        if last is not None and hasattr(last, "exception"):
            todo.append(last.exception())
    return {"status": None, "body": None}


def cells_of(library: str) -> tuple[str, ...]:
    return CELLS + ((JSON_MODE,) if hasattr(LIBRARIES[library], JSON_MODE) else ())


def run_cell(library: str, provider: str, cell: str, base_url: str, key: str) -> dict:
    """{"ok": observation} or {"error": {type, status, body, traceback}}."""
    column = LIBRARIES[library](base_url, key, PROVIDERS[provider])
    try:
        return {"ok": getattr(column, cell)()}
    except Exception as exc:  # the matrix reports every failure as data; the test decides
        return {"error": {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", **_http_error(exc),
                          "traceback": traceback.format_exc(limit=12)[-6000:]}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--library", action="append", required=True, choices=sorted(LIBRARIES))
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    key = os.environ["XROUTER_MATRIX_KEY"]  # from the environment: a key never goes on a command line
    guard, results = probe_guard(), {}
    for library in args.library:
        for provider in PROVIDERS:
            for cell in cells_of(library):
                results[f"{library}/{provider}/{cell}"] = run_cell(library, provider, cell, args.base_url, key)
    args.out.write_text(json.dumps({"guard": guard, "results": results, "violations": VIOLATIONS}))
    return 0


if __name__ == "__main__":
    for name, value in TELEMETRY_OFF.items():
        os.environ[name] = value
    install_socket_guard()
    sys.exit(main())
