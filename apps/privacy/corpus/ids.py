"""Valid and invalid Russian identifiers for the corpora, written from the published rules and kept apart
from the detectors' code (apps/privacy/detect.py), so a shared mistake cannot pass the measurement."""

import random


def _digits(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(10) for _ in range(n)]


def _s(ds) -> str:
    return "".join(map(str, ds))


def inn10(rng: random.Random, valid: bool = True) -> str:
    ds = [rng.randrange(1, 10)] + _digits(rng, 8)
    c = sum(w * d for w, d in zip((2, 4, 10, 3, 5, 9, 4, 6, 8), ds, strict=True)) % 11 % 10
    return _s(ds + [c if valid else (c + rng.randrange(1, 10)) % 10])


def inn12(rng: random.Random, valid: bool = True) -> str:
    ds = [rng.randrange(1, 10)] + _digits(rng, 9)
    c1 = sum(w * d for w, d in zip((7, 2, 4, 10, 3, 5, 9, 4, 6, 8), ds, strict=True)) % 11 % 10
    ds.append(c1)
    c2 = sum(w * d for w, d in zip((3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8), ds, strict=True)) % 11 % 10
    return _s(ds + [c2 if valid else (c2 + rng.randrange(1, 10)) % 10])


def snils(rng: random.Random, valid: bool = True) -> str:
    while True:
        ds = _digits(rng, 9)
        if int(_s(ds)) > 1001998:  # the check number exists only above 001-001-998
            break
    total = sum((9 - i) * d for i, d in enumerate(ds))
    c = total % 101 % 100 if total > 99 else total
    if not valid:
        c = (c + rng.randrange(1, 100)) % 100
    return _s(ds) + f"{c:02d}"


def luhn_digit(body: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # the digit next to the check digit is doubled
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return (10 - total % 10) % 10


CARD_PREFIXES = ("2200", "2202", "2204", "4276", "4279", "4377", "5469", "5536", "5228", "4100", "6762", "3714")


def card(rng: random.Random, valid: bool = True, length: int = 16) -> str:
    prefix = rng.choice(CARD_PREFIXES)
    if prefix.startswith("37"):
        length = 15  # American Express
    body = prefix + _s(_digits(rng, length - 1 - len(prefix)))
    c = luhn_digit(body)
    return body + str(c if valid else (c + rng.randrange(1, 10)) % 10)


def enp_digit(body: str) -> int:
    # The single policy number (ЕНП): from the right, the odd-position digits form a number that is doubled;
    # the even-position digits are written before it; the check digit tops the digit sum up to a multiple of 10.
    odd = body[::-1][0::2]
    even = body[::-1][1::2]
    total = sum(int(ch) for ch in even + str(int(odd) * 2))
    return (10 - total % 10) % 10


def enp_facet(birth_year: int, month: int, day: int, male: bool) -> str:
    """Digits 3–10 of the ЕНП: birth date and sex, each digit stored as 9 − digit (FFOMS order No. 79 of
    2011; the rule as implemented in resilencelyn/rt.srz, EnpChecker.GetFacet): month (+20 for births up to
    1950, +40 up to 2000), the year's digits in reverse order, the day (+50 for men)."""
    m = month + (20 if birth_year <= 1950 else 40 if birth_year <= 2000 else 0)
    d = day + (50 if male else 0)
    inv = lambda s: "".join(str(9 - int(ch)) for ch in s)  # noqa: E731
    return inv(f"{m:02d}") + inv(f"{birth_year:04d}"[::-1]) + inv(f"{d:02d}")


def oms(rng: random.Random, valid: bool = True) -> str:
    facet = enp_facet(rng.randrange(1930, 2025), rng.randrange(1, 13), rng.randrange(1, 29), rng.random() < 0.5)
    body = f"{rng.randrange(1, 99):02d}" + facet + _s(_digits(rng, 5))
    c = enp_digit(body)
    return body + str(c if valid else (c + rng.randrange(1, 10)) % 10)


def passport(rng: random.Random) -> str:
    region = rng.choice((1, 3, 4, 5, 7, 8, 11, 14, 17, 20, 22, 24, 25, 29, 32, 36, 40, 45, 46, 50, 52, 53,
                         56, 57, 60, 63, 65, 66, 71, 75, 79, 80, 83, 92, 96, 97, 98))
    year = rng.choice((97, 98, 99, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                       20, 21, 22, 23, 24, 25))
    return f"{region:02d}{year:02d}{rng.randrange(100000, 1000000)}"


def phone(rng: random.Random) -> str:
    code = rng.choice(("9", "9", "9", "4", "3", "8")) + _s(_digits(rng, 2))
    if code.startswith("8"):
        code = rng.choice(("800", "812", "843", "861", "863"))
    return code + _s(_digits(rng, 7))


PLATE_LETTERS = "АВЕКМНОРСТУХ"
REGIONS = ("77", "97", "99", "177", "197", "199", "777", "797", "799", "50", "90", "150", "190", "750",
           "78", "98", "178", "198", "16", "116", "716", "02", "102", "702", "66", "96", "196", "54", "154",
           "23", "93", "123", "193", "61", "161", "761", "74", "174", "52", "152", "63", "163", "763", "01")


def plate(rng: random.Random) -> tuple[str, str, str, str]:
    """(first letter, three digits, two letters, region)."""
    return (rng.choice(PLATE_LETTERS), f"{rng.randrange(1, 1000):03d}",
            rng.choice(PLATE_LETTERS) + rng.choice(PLATE_LETTERS), rng.choice(REGIONS))
