"""Detectors for Russian personal data: one entry point, `find(text)`.

Interface (stable; the policy pipeline relies on it): `find(text, names=False)` returns the entities in
`text` as `Entity(kind, start, end)` sorted by `start`, not overlapping (of two overlapping ones the
longer wins; an identifier wins over a name the tagger found around it). `kind` is one
of KINDS. `names=True` adds persons, places (addresses) and organisations from the NLP tagger, which loads
lazily on first use (apps/privacy/names.py).

How the numbers are found: digit runs joined by short separators (spaces, dashes, brackets, a line break,
"№") form chains; each stretch of a chain is read by its shape (how the digits are grouped), its check
digits and the words just before it. Every pattern is linear: character classes with bounded repeats, no
nested quantifiers, and every scan starts only where a run starts (a lookbehind on its own class), so a
long adversarial input costs time in proportion to its length. Measured in bench/privacy.py.
"""

import bisect
import datetime
import re
from dataclasses import dataclass

KINDS = (
    "phone", "email", "passport", "snils", "inn", "card", "oms", "plate",  # patterns and checksums
    "person", "address", "organisation",  # the NLP tagger (names=True)
)


@dataclass(frozen=True, slots=True)
class Entity:
    kind: str
    start: int
    end: int


# --- check digits -----------------------------------------------------------------------------------

def _weighted(digits: str, weights: tuple[int, ...]) -> int:
    return sum(w * int(d) for w, d in zip(weights, digits, strict=False)) % 11 % 10


def inn_valid(digits: str) -> bool:
    """INN of an organisation (10 digits) or a person (12): weighted sums mod 11 (FNS order MMV-7-6/435)."""
    if len(digits) == 10:
        return _weighted(digits, (2, 4, 10, 3, 5, 9, 4, 6, 8)) == int(digits[9])
    if len(digits) == 12:
        return (_weighted(digits, (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)) == int(digits[10])
                and _weighted(digits, (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)) == int(digits[11]))
    return False


def snils_valid(digits: str) -> bool:
    """SNILS: sum of digit × (9 − position) over the first nine, mod 101 (100 → 00); defined above 001-001-998."""
    if len(digits) != 11 or int(digits[:9]) <= 1001998:
        return False
    total = sum((9 - i) * int(d) for i, d in enumerate(digits[:9]))
    return total % 101 % 100 == int(digits[9:])


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def oms_valid(digits: str) -> bool:
    """The single OMS policy number (ЕНП, 16 digits). Counting the first 15 from the right, the digits in
    odd places, read right to left, make a number that is doubled; the digits in even places (read the same
    way) are written before it; the last digit makes the digit sum a multiple of 10. Source: the FFOMS
    registry's check as implemented in resilencelyn/rt.srz (rt.srz.model/algorithms/EnpChecker.cs)."""
    if len(digits) != 16:
        return False
    body = digits[14::-1]
    total = sum(map(int, body[1::2] + str(int(body[0::2]) * 2)))
    return (10 - total % 10) % 10 == int(digits[15])


def oms_facet_ok(digits: str) -> bool:
    """Digits 3–10 of the ЕНП hold the birth date and sex, each digit stored as 9 − digit (same source):
    month (+20 for births up to 1950, +40 up to 2000), the year's digits reversed, the day (+50 for men).
    The check digit alone cannot tell a policy from a card: doubling a number and summing its digits is
    Luhn's sum, so every ЕНП passes Luhn. Without a word naming it, a policy must carry a plausible date."""
    inv = "".join(str(9 - int(ch)) for ch in digits[2:10])
    month, year, day = int(inv[0:2]), int(inv[2:6][::-1]), int(inv[6:8])
    month -= 20 if year <= 1950 else 40 if year <= 2000 else 0
    day -= 50 if day > 50 else 0
    return 1880 < year <= datetime.date.today().year and 1 <= month <= 12 and 1 <= day <= 31


# The passport series' last two digits are the year the blank was printed (forms of 1997 on).
_PASSPORT_YEARS = {97, 98, 99, *range(0, datetime.date.today().year % 100 + 2)}


def _passport_series_ok(digits: str) -> bool:
    return int(digits[2:4]) in _PASSPORT_YEARS and digits[:2] != "00"


# --- context ----------------------------------------------------------------------------------------

_CONTEXT_CHARS = 40
_AFTER_CHARS = 30
# Latin look-alikes written into Russian words ("ИHH" with Latin H) still name the document.
_LOOKALIKE = str.maketrans("aceopxykmhtbACEOPXYKMHTB", "асеорхукмнтвАСЕОРХУКМНТВ")
_POSITIVE = {
    "passport": re.compile(r"паспорт|серия|серии"),
    "snils": re.compile(r"снилс|страхов"),
    "inn": re.compile(r"инн"),
    "card": re.compile(r"карт"),
    "oms": re.compile(r"полис|омс|енп"),
    "phone": re.compile(r"\bтел\b|\bтел\.|телефон|мобильн|\bмоб\.|звон|whatsapp|ватсап|вотсап|телеграм|viber"),
}
# Words after a number that say what it was ("… — полис ребёнка"), for the readings that need one.
_AFTER = {
    "oms": re.compile(r"^[\s,.)–—-]{0,4}(?:это\s{1,2})?(?:мой\s{1,2}|моя\s{1,2})?(?:полис|омс|енп)"),
    "card": re.compile(r"^[\s,.)–—-]{0,4}(?:это\s{1,2})?(?:мой\s{1,2}|моя\s{1,2})?(?:карт|зарплатн)"),
    "passport": re.compile(r"^[\s,.)–—-]{0,4}(?:код\s{1,2}подразделени|выдан)"),
}
# A number named as something else right before it ("заказ № …", "номер накладной …") is not personal.
_NEGATIVE = re.compile(
    r"(?:заказ|сч[её]т|накладн|трек|артикул|заявк|обращени|договор|транзакц|операци|штрих|товар|лицев|"
    r"квитанц|тикет|ч[её]к|рейс|табельн|серийн|постановлени|удостоверени|каско|осаго|поручени|"
    r"огрн|кпп|бик|окпо|кадастр)[а-яё-]{0,12}[\s:№#.-]{0,4}(?:номер[\s:№#.-]{0,4})?$")


_DIGIT = re.compile(r"[0-9]")
_AFTER_STOP = re.compile(r"[0-9]|[.!?;]\s")
_LEADS_IN = re.compile(r"[^\W\d_]{0,12}[\s:№#]{0,3}")  # the rest of the word, then only a space or "№"
# A sentence ends at . ! ? after a word of 5+ letters or a number (not after "тел.", "г.", "ул.", "д.").
_SENTENCE_END = re.compile(r"(?:[^\W\d_]{5}|[0-9])[.!?]+\s")


def _before(text: str, start: int) -> tuple[set[str], bool]:
    """The kind the words before a number name, and whether they name something else instead.

    Only words between this number and the one before it, in the same sentence, count, and of several the
    nearest wins: "ЕНП 1234…, карта 4276…" names each number once."""
    before = text[max(0, start - _CONTEXT_CHARS):start]
    before = before[max(before.rfind(d) for d in "0123456789") + 1:]
    ends = [m.end() for m in _SENTENCE_END.finditer(before)]
    if ends:
        before = before[ends[-1]:]
    if not before.strip():
        return set(), False
    before = before.lower().translate(_LOOKALIKE)
    nearest, kinds = -1, set()
    for kind, rx in _POSITIVE.items():
        for m in rx.finditer(before):
            if m.end() > nearest:
                nearest, kinds = m.end(), {kind}
    return kinds, not kinds and bool(_NEGATIVE.search(before))


def _after(text: str, end: int) -> set[str]:
    """The kinds the words after a number name, up to the next number or the end of the sentence; a word
    that leads straight into the next number ("… карту 4276 …") names that one instead."""
    after = text[end:end + _AFTER_CHARS]
    stop = _AFTER_STOP.search(after)
    next_number = bool(stop) and stop.group()[0].isdigit()
    after = (after[:stop.start()] if stop else after).lower().translate(_LOOKALIKE)
    kinds = set()
    for kind, rx in _AFTER.items():
        m = rx.search(after)
        # "код подразделения 770-001" leads into the passport's own department code, not another identifier.
        if m and (kind == "passport" or not (next_number and _LEADS_IN.fullmatch(after, m.end()))):
            kinds.add(kind)
    return kinds


# --- digit chains -----------------------------------------------------------------------------------

_RUN = re.compile(r"[0-9]+")
_GAP_CHARS = frozenset(" \t\u00a0\u202f\n-–()№")
_MAX_GROUPS = 6
_MIN_DIGITS, _MAX_DIGITS = 10, 19


def _gap_ok(gap: str) -> bool:
    return 0 < len(gap) <= 3 and gap.count("\n") <= 1 and all(c in _GAP_CHARS for c in gap)


def _chains(text: str):
    """Digit runs that touch no letter, joined into chains across short separators."""
    chain: list[tuple[int, int]] = []
    for m in _RUN.finditer(text):
        s, e = m.start(), m.end()
        if (s and text[s - 1].isalpha()) or (e < len(text) and text[e].isalpha()):
            if chain:
                yield chain
            chain = []
            continue
        if chain and not _gap_ok(text[chain[-1][1]:s]):
            yield chain
            chain = []
        chain.append((s, e))
    if chain:
        yield chain


def _amount_shaped(lens: list[int]) -> bool:
    # 1 234 567 890: thousands grouping, an amount rather than an identifier.
    return len(lens) >= 3 and lens[0] <= 3 and all(n == 3 for n in lens[1:])


class _Reader:
    """Reads the stretches of one text's chains; the words around a number are looked at once per position."""

    def __init__(self, text: str):
        self.text = text
        self.befores: dict[int, tuple[set[str], bool]] = {}
        self.afters: dict[int, set[str]] = {}

    def context(self, start: int, end: int) -> tuple[set[str], bool]:
        if start not in self.befores:
            self.befores[start] = _before(self.text, start)
        if end not in self.afters:
            self.afters[end] = _after(self.text, end)
        kinds, negative = self.befores[start]
        return kinds or self.afters[end], negative  # the word before names it; words after only if none

    def read(self, chain: list[tuple[int, int]], i: int, j: int, digits: str, lens: list[int]) -> Entity | None:
        """The kind of stretch i:j of a chain (its `digits`, the groups' `lens`), or None."""
        text = self.text
        start, end = chain[i][0], chain[j - 1][1]
        plus = text[max(0, start - 2):start].rstrip(" \n").endswith("+")
        paren = start > 0 and text[start - 1] == "("
        if not _possible(digits, plus, paren):
            return None  # the cheap tests first: the words around are read only for a likely number
        ctx, negative = self.context(start - (1 if plus or paren else 0), end)
        if negative:
            return None  # a number named as something else ("заказ № …") is not read as personal
        gaps = [text[a[1]:b[0]] for a, b in zip(chain[i:j], chain[i + 1:j], strict=False)]
        return _kind(text, digits, lens, gaps, start, end, plus, paren, _isolated(text, chain, i, j), ctx)


def _possible(digits: str, plus: bool, paren: bool) -> bool:
    """Some reading of `_kind` could accept these digits, whatever the words around them."""
    n = len(digits)
    if n == 11:
        return digits[0] in "78" or plus or snils_valid(digits)
    if n == 10:
        return paren or digits[0] == "9" or _passport_series_ok(digits) or inn_valid(digits)
    if n == 12:
        return inn_valid(digits)
    return 13 <= n <= 19 and luhn_valid(digits)


def _kind(text, digits, lens, gaps, start, end, plus, paren, whole, ctx) -> Entity | None:
    """The reading of a stretch by its shape, check digits and the kinds `ctx` its words name."""
    n = len(digits)

    # A phone is told by its prefix: +7, a lone 7 or 8 before the code, or the code in brackets.
    if (plus and n == 11 and digits[0] == "7") or (n == 11 and lens[0] == 1 and digits[0] in "78"):
        if digits[1] in "3489":
            lead = text.rfind("+", max(0, start - 2), start) if plus else start
            return Entity("phone", lead, end)
        return None
    if paren and n == 10 and lens[0] == 3 and digits[0] in "3489" and gaps[0].startswith(")"):
        return Entity("phone", start - 1, end)
    if n == 11 and lens in ([11], [3, 3, 3, 2], [9, 2]) and snils_valid(digits):
        return Entity("snils", start, end)
    if n == 10:
        # A passport has no check digit: its shape counts only when nothing else surrounds it.
        passport_shaped = (whole or "passport" in ctx) and (lens in ([4, 6], [2, 2, 6]) or any("№" in g for g in gaps))
        if passport_shaped and _passport_series_ok(digits) and not ("inn" in ctx and inn_valid(digits)):
            return Entity("passport", start, end)
        if lens == [10] or (whole and not _amount_shaped(lens)):
            if inn_valid(digits) and "passport" not in ctx:
                return Entity("inn", start, end)
            if "passport" in ctx and _passport_series_ok(digits):
                return Entity("passport", start, end)
            if "phone" in ctx and digits[0] == "9" and lens == [10]:
                return Entity("phone", start, end)
        return None
    if n == 12 and (lens == [12] or whole) and not _amount_shaped(lens) and inn_valid(digits):
        return Entity("inn", start, end)
    card_shaped = (len(lens) == 1 or lens == [4, 6, 5]
                   or (len(lens) >= 4 and all(x == 4 for x in lens[:-1]) and 1 <= lens[-1] <= 4))
    if n == 16 and (len(lens) == 1 or lens == [4, 4, 4, 4]):
        if not oms_valid(digits):  # = Luhn (see oms_facet_ok)
            return None
        if "oms" in ctx and "card" not in ctx:
            return Entity("oms", start, end)
        if "card" not in ctx and (oms_facet_ok(digits) or digits[0] not in "23456"):
            return Entity("oms", start, end)
        return Entity("card", start, end)
    if 13 <= n <= 19 and card_shaped and digits[0] in "23456" and luhn_valid(digits):
        return Entity("card", start, end)
    if n == 11 and lens == [11] and digits[0] in "78" and digits[1] in "3489" and ctx <= {"phone"}:
        return Entity("phone", start, end)
    return None


def _isolated(text: str, chain: list[tuple[int, int]], i: int, j: int) -> bool:
    """Stretch i:j stands apart from the rest of its chain (a line break or a wider gap between them)."""
    def apart(a: tuple[int, int], b: tuple[int, int]) -> bool:
        gap = text[a[1]:b[0]]
        return "\n" in gap or len(gap) > 2

    return (i == 0 or apart(chain[i - 1], chain[i])) and (j == len(chain) or apart(chain[j - 1], chain[j]))


def _numbers(text: str) -> list[Entity]:
    found = []
    reader = _Reader(text)
    for chain in _chains(text):
        # The chain's digits, the count before each group and the line breaks before each gap: a
        # stretch's digits are one slice, and a number wrapped over more than one line break is no number.
        lens = [e - s for s, e in chain]
        digits = "".join(text[s:e] for s, e in chain)
        before, breaks = [0], [0, 0]
        for n in lens:
            before.append(before[-1] + n)
        for a, b in zip(chain, chain[1:], strict=False):
            breaks.append(breaks[-1] + ("\n" in text[a[1]:b[0]]))
        i = 0
        while i < len(chain):
            # The longest readable stretch from here wins; stretches are short (≤ 6 groups, ≤ 19 digits).
            hit = None
            for j in range(min(len(chain), i + _MAX_GROUPS), i, -1):
                if not _MIN_DIGITS <= before[j] - before[i] <= _MAX_DIGITS or breaks[j] - breaks[i + 1] > 1:
                    continue
                hit = reader.read(chain, i, j, digits[before[i]:before[j]], lens[i:j])
                if hit:
                    found.append(hit)
                    i = j
                    break
            if not hit:
                i += 1
    return found


# "серия 4512 номер 345678": the word between series and number breaks the chain.
_PASSPORT_WORDED = re.compile(
    r"(?<![0-9])([0-9]{2}[ \u00a0]?[0-9]{2})[ \t\u00a0]{1,3}(?:номер|ном\.|н\.)[ \t\u00a0]{0,3}([0-9]{6})(?![0-9])",
    re.IGNORECASE)

# --- e-mail and plates ------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+%-])[\w.+%-]{1,64}@[\w.-]{1,253}")
_PLATE_LETTER = "АВЕКМНОРСТУХавекмнорстухABEKMHOPCTYXabekmhopctyx"
_SP = r"[ \t\u00a0]?"
_PLATE = re.compile(
    rf"(?<![\w])[{_PLATE_LETTER}]{_SP}([0-9]{{3}}){_SP}[{_PLATE_LETTER}]{{2}}{_SP}([0-9]{{2,3}})"
    rf"(?:{_SP}(?:rus|RUS|Rus))?(?![\w])")


def _emails(text: str) -> list[Entity]:
    found = []
    for m in _EMAIL.finditer(text):
        local, _, domain = m.group().partition("@")
        domain = domain.rstrip(".-")
        tld = domain.rpartition(".")[2]
        tld_ok = tld.isalpha() or (tld.startswith("xn--") and tld[4:].isalnum())  # .рф is xn--p1ai
        if local.strip(".") and "." in domain and len(tld) >= 2 and tld_ok and ".." not in domain:
            found.append(Entity("email", m.start(), m.start() + len(local) + 1 + len(domain)))
    return found


def _plates(text: str) -> list[Entity]:
    found = []
    for m in _PLATE.finditer(text):
        number, region = m.group(1), m.group(2)
        if number != "000" and region not in ("00", "000") and not (len(region) == 3 and region[0] == "0"):
            found.append(Entity("plate", m.start(), m.end()))
    return found


def _passports_worded(text: str) -> list[Entity]:
    return [Entity("passport", m.start(), m.end()) for m in _PASSPORT_WORDED.finditer(text)
            if _passport_series_ok(m.group(1).replace(" ", "").replace("\u00a0", ""))]


# --- the entry point --------------------------------------------------------------------------------

def resolve(candidates: list[Entity]) -> list[Entity]:
    """Non-overlapping entities sorted by start; of two overlapping ones the longer wins (then the earlier)."""
    kept: list[Entity] = []
    for ent in sorted(candidates, key=lambda e: (e.start, e.start - e.end)):
        if kept and ent.start < kept[-1].end:
            if ent.end - ent.start > kept[-1].end - kept[-1].start:
                kept[-1] = ent  # it starts after the one before the last ended, so no new overlap
            continue
        kept.append(ent)
    return kept


def find(text: str, names: bool = False) -> list[Entity]:
    found = resolve(_emails(text) + _numbers(text) + _passports_worded(text) + _plates(text))
    if names:
        from apps.privacy.names import find_names  # the tagger loads on first use only

        # A number the tagger swept into a name ("ОМС 1234… Курьер" as one organisation) keeps its own kind.
        found = resolve(found + [e for e in find_names(text) if not _overlaps(e, found)])
    return found


def _overlaps(ent: Entity, sorted_entities: list[Entity]) -> bool:
    i = bisect.bisect_left(sorted_entities, ent.start, key=lambda e: e.end)
    return i < len(sorted_entities) and sorted_entities[i].start < ent.end
