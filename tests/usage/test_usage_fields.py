"""Issue 8 item 12: every usage field is brought within its column where the record is made, so
no value a provider or a client controls can make the database refuse a billing batch."""

import math
import time
import uuid
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from apps.usage import buffer
from apps.usage.models import UsageRecord
from apps.usage.services import usage_record_many

COLUMNS = {f.name: f for f in UsageRecord._meta.concrete_fields if f.name not in ("id", "cost", "created_at")}

POISON = {
    "provider_request_id": "r" * 200,  # the reproduction: an upstream x-request-id of 200 characters
    "model": "m" * 300, "requested_model": "x\x00y", "route": "bad \ud800 surrogate", "status": "s" * 100,
    "error_type": "e" * 100, "endpoint": "chat" * 20, "key_prefix": "k" * 40, "provider": "p" * 100,
    "prompt_tokens": -1, "completion_tokens": 2**40, "cached_tokens": "12", "reasoning_tokens": 3.7,
    "latency_ms": math.nan, "ttft_ms": math.inf, "http_status": 99999, "stream": "yes", "estimated": 1,
    "cache_hit": 0, "api_key_id": 2**70, "user_id": "7", "organisation_id": None,
    "input_price": "NaN", "output_price": "1e30", "cached_input_price": None, "ts": 1e20,
}


def recorded(entry: dict, monkeypatch) -> dict:
    """What buffer.record queues for `entry`, after the JSON round trip the Redis stream gives it."""
    monkeypatch.setattr(buffer, "_pending", [])
    buffer.record(entry)
    return orjson.loads(orjson.dumps(buffer._pending, default=str))[0]


def assert_fits(record: dict) -> None:
    for name, field in COLUMNS.items():
        value = record.get(name)
        if value is None:
            continue
        if field.get_internal_type() == "CharField":
            assert isinstance(value, str) and len(value) <= field.max_length and "\x00" not in value, name
        elif field.get_internal_type() == "PositiveIntegerField":
            assert type(value) is int and 0 <= value <= 2**31 - 1, name
        elif field.get_internal_type() == "PositiveSmallIntegerField":
            assert type(value) is int and 0 <= value <= 2**15 - 1, name
        elif field.get_internal_type() == "BigIntegerField":
            assert type(value) is int and -(2**63) <= value < 2**63, name
        elif field.get_internal_type() == "FloatField":
            assert isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, name
        elif field.get_internal_type() == "BooleanField":
            assert type(value) is bool, name


def test_out_of_range_values_are_cut_and_clamped_to_the_columns(monkeypatch):
    record = recorded({"request_id": "fields-unit", **POISON}, monkeypatch)
    assert_fits(record)
    assert record["provider_request_id"] == "r" * 128
    assert (record["prompt_tokens"], record["completion_tokens"]) == (0, 2**31 - 1)
    assert (record["cached_tokens"], record["reasoning_tokens"]) == (12, 3)
    assert (record["latency_ms"], record["ttft_ms"], record["http_status"]) == (0, None, 2**15 - 1)
    assert (record["stream"], record["estimated"], record["cache_hit"]) == (True, True, False)
    assert (record["input_price"], record["output_price"]) == ("0", "0")
    assert abs(record["ts"] - time.time()) < 60


@pytest.mark.django_db
def test_a_record_of_out_of_range_values_is_stored(monkeypatch):
    request_id = f"fields-{uuid.uuid4().hex[:8]}"
    usage_record_many([recorded({"request_id": request_id, **POISON}, monkeypatch)])
    row = UsageRecord.objects.get(request_id=request_id)
    assert row.provider_request_id == "r" * 128 and row.model == "m" * 200 and row.requested_model == "xy"
    assert (row.prompt_tokens, row.completion_tokens, row.http_status) == (0, 2**31 - 1, 2**15 - 1)
    assert row.cost == Decimal("0")


def test_a_well_formed_record_is_left_as_it_is(monkeypatch):
    entry = {"request_id": "ok-1", "provider_request_id": "abc", "model": "GigaChat-2-Max", "requested_model": "гигачат",
             "prompt_tokens": 10, "completion_tokens": 5, "latency_ms": 12.5, "ttft_ms": None, "stream": False,
             "input_price": "1.95", "output_price": "1.95", "cached_input_price": "0", "http_status": 200, "ts": time.time()}
    assert recorded(dict(entry), monkeypatch) == entry


_values = st.one_of(
    st.none(), st.text(max_size=300), st.integers(-(2**70), 2**70), st.floats(), st.booleans(),
    st.lists(st.integers(), max_size=2), st.decimals(allow_nan=True).map(str),
)


@pytest.mark.django_db
@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.fixed_dictionaries({}, optional={name: _values for name in [*COLUMNS, "ts"] if name != "request_id"}))
def test_any_values_give_a_record_the_database_stores(values, monkeypatch):
    request_id = f"gen-{uuid.uuid4().hex}"
    record = recorded({**values, "request_id": request_id}, monkeypatch)
    assert_fits(record)
    usage_record_many([record])
    assert UsageRecord.objects.filter(request_id=request_id).exists()
