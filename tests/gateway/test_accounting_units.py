"""accounting.py's bookkeeping of attempts, without a server: numbering, the upstream id, the
journal's open count, and the end record of an attempt a cancellation left unfinished."""

import time
from decimal import Decimal

import pytest
from django.conf import settings

from apps.gateway import accounting
from apps.providers.adapters.base import UPSTREAM_REQUEST_ID, Usage
from apps.usage import buffer, journal


class _Model:
    provider, name, public_id = "mts", "mws-gpt-alpha", "mts/mws-gpt-alpha"
    input_price, output_price, cached_input_price = Decimal("0.5"), Decimal("1"), Decimal("0")


class _Target:
    model, label = _Model(), "mts/mws-gpt-alpha"


class _Plan:
    requested, rule = "chat-default", "default"

    def __init__(self):
        self.attempts, self.failed = [], []


class _Key:
    kind, id, prefix, user_id, organisation_id = "key", 7, "abcd1234", 3, 5


class _Req:
    request_id, admission, span = "0123456789abcdef01234567", None, None

    def __init__(self):
        self.started, self.attempts = time.monotonic(), []


@pytest.fixture
def pending(tmp_path, monkeypatch):
    monkeypatch.setitem(settings.XROUTER, "SPOOL_DIR", str(tmp_path))
    monkeypatch.setattr(buffer, "_pending", [])
    journal.remove(journal.rotate())
    yield buffer._pending
    for gen in journal._closed:
        gen.open = 0
    journal.remove(journal.rotate())


def test_each_attempt_is_numbered_journaled_and_named_upstream_and_ends_once(pending):
    req, plan, target = _Req(), _Plan(), _Target()
    plan.attempts.append("gigachat/GigaChat-2-Max")  # attempt 0 was made (say it failed)
    accounting.attempt_start(req, _Key(), plan, _Target(), 12)
    plan.attempts.append(target.label)
    accounting.attempt_start(req, _Key(), plan, target, 12)
    assert UPSTREAM_REQUEST_ID.get() == req.request_id + ".1"
    gen = req.attempts[1].gen
    assert gen.open == 2 and req.attempts[1].chain == "gigachat/GigaChat-2-Max"

    accounting.record_usage(req, _Key(), endpoint="chat", requested=plan.requested, model=target.model,
                            usage=Usage(prompt_tokens=12, completion_tokens=3), attempt=1)
    [row] = pending
    assert (row["request_id"], row["attempt"], row["fallback_chain"]) == (req.request_id, 1, "gigachat/GigaChat-2-Max")
    assert row["ts"] == req.attempts[1].ts  # created_at is the attempt's start, as in its start line
    assert gen.open == 1

    accounting.end_unfinished(req, _Key(), plan)  # attempt 0 never ended: a cancellation
    assert [(r["attempt"], r["status"], r["prompt_tokens"], r["estimated"]) for r in pending] == [
        (1, "ok", 12, False), (0, "cancelled", 12, True)]
    assert gen.open == 0
    accounting.end_unfinished(req, _Key(), plan)
    assert len(pending) == 2  # every attempt ends exactly once
