"""Helpers that read stream bodies exactly as they are framed on the wire."""

import json


def sse_payloads(body: str) -> list[str]:
    """The data payloads of an SSE body, asserting the framing: every event is a single
    ``data: ...`` line followed by a blank line, with no other fields."""
    assert body.endswith("\n\n"), repr(body[-20:])
    events = body[:-2].split("\n\n")
    payloads = []
    for event in events:
        assert event.startswith("data: ") and "\n" not in event, repr(event)
        payloads.append(event[len("data: ") :])
    return payloads


def sse_json(body: str) -> list[dict]:
    payloads = sse_payloads(body)
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def ndjson(body: str) -> list[dict]:
    assert body.endswith("\n")
    return [json.loads(line) for line in body[:-1].split("\n")]
