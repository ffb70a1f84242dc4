"""Detectors for Russian personal data: one entry point, `find(text)`.

Interface (stable; the policy pipeline relies on it): `find(text, names=False)` returns the entities in
`text` as `Entity(kind, start, end)` sorted by `start`, not overlapping (the longer one wins). `kind` is one
of KINDS. `names=True` adds persons, places (addresses) and organisations from the NLP tagger, which loads
lazily on first use (apps/privacy/names.py).
"""

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


# A first cut; privacy-detect replaces it with the full, measured detectors.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?:\+7|\b8)[\s(-]*\d{3}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}\b")


def find(text: str, names: bool = False) -> list[Entity]:
    found = [Entity("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    found += [Entity("phone", m.start(), m.end()) for m in _PHONE.finditer(text)]
    return sorted(found, key=lambda e: e.start)
