"""Money rules, no Django: roubles as Decimal, kopeck rounding on statement lines only, VAT per line.

A usage row's cost keeps 6 decimal places (a 10-token call costs a fraction of a kopeck). Rounding to the
kopeck (half up) happens once, on a statement line; a total is the sum of its rounded lines, never the
rounding of a sum.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

KOPECK = Decimal("0.01")
MICRO = Decimal("0.000001")
HUNDRED = Decimal(100)
ZERO = Decimal(0)


def kopecks(amount) -> Decimal:
    """Roubles rounded to the kopeck, half up (0.005 → 0.01)."""
    return Decimal(amount).quantize(KOPECK, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Line:
    """One statement line: `amount` without VAT, `vat`, `total` with it, each to the kopeck."""

    amount: Decimal
    vat: Decimal
    total: Decimal


def line(cost, rate, includes_vat: bool = True) -> Line:
    """A statement line from an exact cost (Decimal roubles) and a VAT rate in percent.

    A price that includes VAT: the total is the cost rounded, VAT = total × rate / (100 + rate), rounded;
    the amount is the rest. A price without VAT: the amount is the cost rounded, VAT = amount × rate / 100,
    rounded, added on top."""
    rate = Decimal(rate)
    if includes_vat:
        total = kopecks(cost)
        vat = kopecks(total * rate / (HUNDRED + rate))
        return Line(amount=total - vat, vat=vat, total=total)
    amount = kopecks(cost)
    vat = kopecks(amount * rate / HUNDRED)
    return Line(amount=amount, vat=vat, total=amount + vat)


def sum_lines(lines) -> Line:
    lines = list(lines)
    return Line(amount=sum((x.amount for x in lines), ZERO), vat=sum((x.vat for x in lines), ZERO),
                total=sum((x.total for x in lines), ZERO))


def with_vat(price, rate) -> Decimal:
    """A price without VAT as the price with it, to the micro-rouble (what the gateway charges)."""
    return (Decimal(price) * (HUNDRED + Decimal(rate)) / HUNDRED).quantize(MICRO, rounding=ROUND_HALF_UP)


def rate_on(rates: list[tuple], day) -> Decimal:
    """The VAT rate in effect on `day` from (effective_from, rate) pairs, newest first; 0 before the first."""
    for effective_from, rate in rates:
        if effective_from <= day:
            return Decimal(rate)
    return ZERO
