"""Money rules (apps/billing/money.py): no database, no server."""

import datetime
from decimal import Decimal as D

from apps.billing import money

RATES = [(datetime.date(2026, 1, 1), D("22")), (datetime.date(2019, 1, 1), D("20"))]


def test_kopecks_round_half_up():
    assert money.kopecks(D("0.005")) == D("0.01")
    assert money.kopecks(D("0.004999")) == D("0.00")
    assert money.kopecks(D("1.2345")) == D("1.23")  # only the third decimal decides: 0.0045 < 0.005
    assert money.kopecks(D("99.995")) == D("100.00")
    assert money.kopecks(D("2.675")) == D("2.68")  # a float would make this 2.67


def test_line_with_vat_included_extracts_vat():
    line = money.line(D("100.00"), D("22"))
    assert line == money.Line(amount=D("81.97"), vat=D("18.03"), total=D("100.00"))  # 100 × 22/122 = 18.0328
    line = money.line(D("120.00"), D("20"))
    assert line == money.Line(amount=D("100.00"), vat=D("20.00"), total=D("120.00"))


def test_line_without_vat_adds_it():
    line = money.line(D("100.004"), D("22"), includes_vat=False)
    assert line == money.Line(amount=D("100.00"), vat=D("22.00"), total=D("122.00"))
    line = money.line(D("0.125"), D("20"), includes_vat=False)  # 0.13 + 0.026 → 0.03
    assert line == money.Line(amount=D("0.13"), vat=D("0.03"), total=D("0.16"))


def test_total_is_the_sum_of_rounded_lines_not_the_rounded_sum():
    lines = [money.line(D("0.004"), D("22")) for _ in range(3)]
    assert money.sum_lines(lines).total == D("0.00")  # not round(0.012) = 0.01
    lines = [money.line(D("0.005"), D("22")) for _ in range(3)]
    assert money.sum_lines(lines).total == D("0.03")  # not round(0.015) = 0.02


def test_vat_rate_by_date():
    assert money.rate_on(RATES, datetime.date(2025, 12, 31)) == D("20")
    assert money.rate_on(RATES, datetime.date(2026, 1, 1)) == D("22")
    assert money.rate_on(RATES, datetime.date(2018, 6, 1)) == D("0")


def test_price_without_vat_gets_the_rate_added_to_the_micro_rouble():
    assert money.with_vat(D("1.000000"), D("22")) == D("1.220000")
    assert money.with_vat(D("0.166667"), D("20")) == D("0.200000")  # 0.2000004
    assert money.with_vat(D("0.000005"), D("22")) == D("0.000006")  # 0.0000061
