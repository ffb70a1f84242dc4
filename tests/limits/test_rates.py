"""Rate strings ("60/min") and the Limits a row carries, parsed once: pure functions, no server."""

from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from apps.common.rates import Limits, Rate, parse_rate, per_minute, validate_rate


@pytest.mark.parametrize("text, expected", [
    ("60/min", Rate(60, 60)), ("60/m", Rate(60, 60)), ("10/s", Rate(10, 1)), ("1000/hour", Rate(1000, 3600)),
    ("5000/day", Rate(5000, 86400)), ("100/10s", Rate(100, 10)), (" 7 / 5min ", Rate(7, 300)), ("0/min", Rate(0, 60)),
    ("60/MIN", Rate(60, 60)),
])
def test_it_parses_drf_style_rates(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "60", "60/", "/min", "-1/min", "60/fortnight", "1.5/min", "60/0min", "1/2day", None])
def test_it_refuses_what_is_not_a_rate(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_the_field_validator_names_the_expected_form():
    validate_rate("")  # empty: unlimited
    with pytest.raises(ValidationError, match="60/min"):
        validate_rate("sixty a minute")


def test_rates_print_as_written():
    assert [str(parse_rate(t)) for t in ("60/min", "10/s", "5/h", "9/day", "3/10s")] == ["60/min", "10/s", "5/h", "9/day",
                                                                                       "3/10s"]
    assert per_minute(50) == "50/min" and per_minute(None) == ""


def _row(**fields):
    base = {"requests_rate": "", "tokens_rate": "", "max_concurrent": None, "tokens_per_day": None, "tokens_per_month": None}
    return SimpleNamespace(**(base | fields))


def test_a_row_without_limits_has_none():
    assert Limits.of(_row()) is None


def test_a_row_with_limits_carries_them_parsed():
    limits = Limits.of(_row(requests_rate="50/min", max_concurrent=5, tokens_per_day=1000))
    assert limits == Limits(requests=Rate(50, 60), concurrent=5, tokens_per_day=1000)
    assert limits.limits_tokens
    assert not Limits.of(_row(requests_rate="50/min")).limits_tokens
