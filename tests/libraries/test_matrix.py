"""The client-library matrix (issue 11): each library × each provider × four cells, through one served
gateway and the provider emulators (whose answers are deterministic: apps/emulators/behaviour.py).

Cells: a tool call, a tool round trip (the tool's result back, the model's answer to it), a streamed
answer, and structured output into a nested pydantic model (nested models, optional fields, lists).
Where the library has a JSON mode (response_format json_object), a fifth cell.
Columns: the openai SDK (Chat Completions and Responses), the openai Node.js SDK, LangChain
(langchain-openai), instructor, pydantic-ai (its chat and Responses models), the OpenAI Agents SDK
(OpenAIChatCompletionsModel and OpenAIResponsesModel) and LlamaIndex. instructor, LlamaIndex and the Agents
SDK run in venvs of their own, the Node SDK in node (SIDE_RUNS, README "Client libraries"): their cells run
once per session as a script (cells.py, cells.mjs), started with the session, beside the in-process ones.

A cell the gateway must refuse is in REFUSED with the reason, and asserts the refusal: the error the
library surfaces carries the gateway's status and OpenAI-format error.
"""

import json
import os
import shutil
import socket
import subprocess

import pytest

from apps.emulators.behaviour import LONG_ANSWER
from tests.conftest import ROOT

from . import cells
from .cells import CELLS, JSON_MODE, JSON_PROMPT, LIBRARIES, PROVIDERS, TELEMETRY_OFF, Address, Person, Street, cells_of, run_cell

# The columns that run outside this process, and where: a venv of their own (cells.py as a script) or Node.js
# (cells.mjs, with the openai Node SDK of tests/node).
SIDE_RUNS = {"instructor": ".venv-openai2", "llamaindex": ".venv-openai2",
              "agents-chat": ".venv-agents", "agents-responses": ".venv-agents", "openai-node": "node"}
COLUMNS = {library: cells_of(library) for library in LIBRARIES}
COLUMNS = {**dict(list(COLUMNS.items())[:2]), "openai-node": (*CELLS, JSON_MODE), **dict(list(COLUMNS.items())[2:])}
SIDE_TIMEOUT = 240  # under pytest's 300 s per test (pytest.ini)

EXPECTED_PERSON = Person(name="Moscow", age=3, nicknames=[], previous_homes=[], email="Moscow",
                         home=Address(city="Moscow", street=Street(name="Moscow", number=3), postcode="Moscow"),
                         ).model_dump(mode="json")
ROUND_TRIP_ANSWER = 'Tool result: {"forecast":"sunny"}'
TOOL_NAMES = {"instructor": "GetWeather"}  # instructor names the forced function after the response model

# (library, provider, cell): (status, the error's param, a fragment of its message, why). The README's "Client
# libraries" lists the same cells.
REFUSED: dict[tuple[str, str, str], tuple[int, str, str, str]] = {
    (library, "gigachat", "json_mode"): (
        400, "text.format" if library == "openai-responses" else "response_format", "json_object has no GigaChat equivalent",
        "GigaChat has no schema-less JSON mode (its response_format takes a json_schema only); a JSON mode "
        "emulated with an any-object schema would be a guess, so the gateway refuses it, as gpt2giga does")
    for library in ("openai-chat", "openai-responses", "openai-node", "langchain", "instructor")
}

MATRIX = [pytest.param(library, provider, cell, id=f"{library}-{provider}-{cell}")
          for library, columns_cells in COLUMNS.items() for provider in PROVIDERS for cell in columns_cells]


@pytest.fixture(scope="session")
def side_runs(gateway, tmp_path_factory):
    """The side venvs' cells, each venv's script started once (the two side by side, while the cells of
    .venv run in this process)."""
    folder = tmp_path_factory.mktemp("matrix")
    env = {**os.environ, **TELEMETRY_OFF, "XROUTER_MATRIX_KEY": gateway.keys["alice"]}
    running = []
    for venv in sorted(set(SIDE_RUNS.values())):
        out, log = folder / f"{venv}.json", (folder / f"{venv}.log").open("w+")
        if venv == "node":
            argv = _node_argv(gateway, folder / "node-spec.json", out)
        else:
            python = ROOT / venv / "bin" / "python"
            if not python.exists():
                pytest.fail(f"{venv} is missing: `make {venv}/.installed` builds it (make test does)")
            libraries = [arg for library, home in SIDE_RUNS.items() if home == venv for arg in ("--library", library)]
            argv = [python, ROOT / "tests" / "libraries" / "cells.py", "--base-url", gateway.v1, *libraries, "--out", out]
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        running.append((venv, process, out, log))
    yield running
    for _, process, _, log in running:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def _node_argv(gateway, spec, out) -> list:
    node = shutil.which("node")
    if node is None or not (ROOT / "tests" / "node" / "node_modules" / "openai" / "package.json").exists():
        pytest.fail("the openai Node SDK column needs node and tests/node/node_modules (make test runs npm ci)")
    spec.write_text(json.dumps({
        "base_url": gateway.v1, "providers": PROVIDERS, "question": cells.QUESTION, "long_prompt": cells.LONG_PROMPT,
        "describe": cells.DESCRIBE, "json_prompt": JSON_PROMPT, "tool_output": cells.TOOL_OUTPUT,
        "weather_parameters": cells.WEATHER_PARAMETERS, "person_schema": Person.model_json_schema()}))
    return [node, ROOT / "tests" / "libraries" / "cells.mjs", spec, out]


@pytest.fixture(autouse=True)
def _side_venvs_started(side_runs):
    pass


@pytest.fixture(scope="session")
def side_results(side_runs):
    """{"library/provider/cell": outcome}, the side venvs' non-loopback attempts, and their guard probes."""
    results, violations, guards = {}, [], {}
    for venv, process, out, log in side_runs:
        try:
            process.wait(timeout=SIDE_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.seek(0)
        if process.returncode != 0 or not out.exists():
            pytest.fail(f"{venv}'s cells exited with {process.returncode}:\n{log.read()[-4000:]}")
        data = json.loads(out.read_text())
        results.update(data["results"])
        guards[venv] = data["guard"]
        violations += data["violations"]
    return results, violations, guards


def outcome_of(library, provider, cell, gateway, request) -> dict:
    if library in SIDE_RUNS:
        results, violations, _ = request.getfixturevalue("side_results")
        assert not violations, f"a non-loopback connection was attempted in a side venv: {violations}"
        return results[f"{library}/{provider}/{cell}"]
    return run_cell(library, provider, cell, gateway.v1, gateway.keys["alice"])


def assert_refused(outcome: dict, status: int, param: str, fragment: str) -> None:
    assert "error" in outcome, f"the gateway should have refused this cell; the library got {outcome['ok']}"
    error = outcome["error"]
    assert error["status"] == status, error
    body = error["body"]
    assert isinstance(body, dict) and list(body) == ["error"], error
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["param"] == param and fragment in body["error"]["message"], body


@pytest.mark.parametrize(("library", "provider", "cell"), MATRIX)
def test_cell(gateway, request, library, provider, cell):
    outcome = outcome_of(library, provider, cell, gateway, request)
    refused = REFUSED.get((library, provider, cell))
    if refused:
        assert_refused(outcome, *refused[:3])
        return
    assert "ok" in outcome, f"{outcome['error']['type']} (HTTP {outcome['error']['status']}):\n{outcome['error']['traceback']}"
    seen = outcome["ok"]
    if cell == "tool_call":
        assert seen == {"name": TOOL_NAMES.get(library, "get_weather"), "arguments": {"city": "Moscow"}}
    elif cell == "tool_round_trip":
        assert seen == {"answer": ROUND_TRIP_ANSWER}
    elif cell == "stream" and library == "instructor":
        assert seen["partials"] >= 1 and (seen["type"], seen["value"]) == ("Person", EXPECTED_PERSON)
    elif cell == "stream":
        assert "".join(seen["deltas"]) == LONG_ANSWER
        assert len(seen["deltas"]) > 3, "a long answer arrives in several deltas"
    elif cell == "json_mode":
        assert (seen["type"], seen["value"]) == ("Answer", {"answer": f"Echo: {JSON_PROMPT}"})
    else:
        assert (seen["type"], seen["value"]) == ("Person", EXPECTED_PERSON)
        assert Person.model_validate(seen["value"]).model_dump(mode="json") == EXPECTED_PERSON


def test_the_socket_guard_refuses_what_leaves_loopback():
    from .cells import NonLoopbackConnection, probe_guard

    assert probe_guard() == {"refused": [True, True]}
    with pytest.raises(NonLoopbackConnection), socket.socket(socket.AF_INET6) as sock:
        sock.connect(("2001:db8::1", 443))
    from .cells import VIOLATIONS

    assert VIOLATIONS == ["connect 2001:db8::1:443"]
    VIOLATIONS.clear()  # recorded as it should be; the fixture would fail the test otherwise
    socket.getaddrinfo("127.0.0.1", 80)  # loopback is let through


def test_the_side_venvs_run_under_the_socket_guard(side_results):
    _, _, guards = side_results
    assert guards == dict.fromkeys(sorted(set(SIDE_RUNS.values())), {"refused": [True, True]})


@pytest.mark.parametrize("library", ["pydantic-ai-chat", "pydantic-ai-responses"])
def test_gigachat_refuses_pydantic_ais_tools_beside_a_structured_output(gateway, library):
    """Not a matrix cell, a known refusal: an agent with tools and a structured output_type sends
    tool_choice "required" over its tools and the output tool, and GigaChat can force one named function only
    (`function_call: {"name": ...}`); "auto" instead would let the model answer in prose, which pydantic-ai
    would then retry. The emulators' deterministic model cannot play this game on the other providers (it
    calls the first tool whenever a call is required), so only the refusal is tested."""
    from pydantic_ai.exceptions import ModelHTTPError

    from .cells import QUESTION, get_weather

    column = LIBRARIES[library](gateway.v1, gateway.keys["alice"], PROVIDERS["gigachat"])
    with pytest.raises(ModelHTTPError) as caught:
        column.agent(tools=[get_weather], output_type=Person).run_sync(QUESTION)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "tool_choice"
    assert "'required' has no GigaChat equivalent with several tools" in caught.value.body["message"]
