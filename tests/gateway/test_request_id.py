"""One request id on every log line written while a request is served: /v1 (HTTP and WebSocket answers
name it in x-request-id, the providers receive `<id>.<attempt>`) and the Django side (X-Request-ID)."""

import contextvars
import json
import logging
import time

import httpx
import pytest

from apps.common.request_id import REQUEST_ID
from tests.conftest import start_gateway, stop_gateway
from xrouter_project.log_filters import RequestIdFilter

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def record(**extra) -> logging.LogRecord:
    entry = logging.LogRecord("x", logging.WARNING, __file__, 1, "something happened", None, None)
    entry.__dict__.update(extra)
    return entry


def test_the_filter_adds_the_current_requests_id_and_keeps_one_given_explicitly():
    token = REQUEST_ID.set("abc123")
    try:
        assert RequestIdFilter().filter(line := record()) and line.request_id == "abc123"
        assert RequestIdFilter().filter(line := record(request_id="mine")) and line.request_id == "mine"
    finally:
        REQUEST_ID.reset(token)
    outside = contextvars.Context()  # outside any request
    assert outside.run(RequestIdFilter().filter, line := record()) and not hasattr(line, "request_id")


@pytest.mark.django_db
def test_a_django_request_answers_its_id_and_its_log_lines_carry_it(client):
    lines = []

    class Keep(logging.Handler):
        def emit(self, entry):
            lines.append(entry)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        response = client.get("/api/v1/no-such-thing/")
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 404 and len(response["X-Request-ID"]) == 24
    assert [entry.request_id for entry in lines] == [response["X-Request-ID"]]  # Django's "Not Found" warning
    assert client.get("/api/v1/no-such-thing/")["X-Request-ID"] != response["X-Request-ID"]


def test_a_v1_log_line_names_the_request_it_was_written_for(gateway, tmp_path):
    """A GigaChat stream whose tool call cannot be parsed after text went out is ended with `stop`, and the
    adapter logs a warning: that line, in the served gateway's JSON log, names the request's x-request-id."""
    log_path = tmp_path / "gateway.log"
    with open(log_path, "wb") as log:
        process, base = start_gateway({**gateway.env, "LOG_LEVEL": "WARNING", "XROUTER_LOG_JSON": "true"}, log=log)
    try:
        body = {"model": "gigachat/GigaChat-2", "stream": True, "tools": [WEATHER],
                "messages": [{"role": "user", "content": "weather [bad_call]"}]}
        with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {gateway.keys['alice']}"}) as response:
            assert response.status_code == 200
            request_id = response.headers["x-request-id"]
            response.read()
        deadline = time.monotonic() + 10
        while True:
            found = [json.loads(line) for line in log_path.read_text().splitlines()
                     if line.startswith("{") and "finish_reason error" in line]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert [entry.get("request_id") for entry in found] == [request_id], log_path.read_text()[-3000:]
    finally:
        stop_gateway(process)
