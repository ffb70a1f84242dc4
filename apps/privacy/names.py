"""Persons, places and organisations in Russian text: Natasha 1.6.0's news NER model (slovnet on navec
embeddings, both shipped inside the natasha wheel; offline).

Loaded on the first call only, once per process (about 1.7 s and 105 MiB; bench/privacy.py measures it), so
a process that serves no policy needing names never pays for it. The model is run through slovnet directly
rather than `import natasha`: natasha's package import also loads pymorphy2 and yargy (morphology, not needed
for tagging; pymorphy2 0.9 calls inspect.getargspec, gone in Python 3.11, when an analyser is built).
"""

import importlib.util
import os
import re
import threading

from apps.privacy.detect import Entity

_KINDS = {"PER": "person", "LOC": "address", "ORG": "organisation"}
_EMBEDDING = "data/emb/navec_news_v1_1B_250K_300d_100q.tar"
_MODEL = "data/model/slovnet_ner_news_v1.tar"

_tagger = None
_lock = threading.Lock()


def _load():
    global _tagger
    with _lock:
        if _tagger is None:
            from navec import Navec
            from slovnet import NER

            # find_spec locates the wheel without running natasha/__init__ (see the module docstring).
            base = importlib.util.find_spec("natasha").submodule_search_locations[0]
            tagger = NER.load(os.path.join(base, _MODEL))
            tagger.navec(Navec.load(os.path.join(base, _EMBEDDING)))
            _tagger = tagger
    return _tagger


def loaded() -> bool:
    return _tagger is not None


# Street words and house/flat numbers: the tagger finds the names of places ("Ленина", "Москва"); an
# address also holds the street's kind and the numbers after it, which say the most about a person.
_STREET = (r"(?:ул\.|улица|улице|улицы|пр-т|пр-кт|просп\.|проспект[аеу]?|пер\.|переул[оке]к?|б-р|бульвар[аеу]?|"
           r"ш\.|шоссе|наб\.|набережн[аяойуюе]{1,2}|пл\.|площад[ьи]|мкр\.?|микрорайон[аеу]?|г\.|город[аеу]?|"
           r"обл\.|област[ьи]|пос\.|пгт\.?|с\.|д\.)")
_STREET_AT = re.compile(_STREET + r"[ \t\u00a0]{0,2}$", re.IGNORECASE)
_HOUSE = re.compile(r"[ \t\u00a0]{0,2},?[ \t\u00a0]{0,2}(?:(?:д\.|дом|корп\.|корпус|к\.|стр\.|строение|кв\.|квартира|"
                    r"оф\.|офис)[ \t\u00a0]{0,2})?[0-9]{1,4}[а-яА-Я]?(?:/[0-9]{1,3})?(?![0-9])")
_MAX_HOUSE_PARTS = 5


def _extend_address(text: str, start: int, end: int) -> tuple[int, int]:
    m = _STREET_AT.search(text, max(0, start - 16), start)
    if m:
        start = m.start()
    for _ in range(_MAX_HOUSE_PARTS):
        m = _HOUSE.match(text, end)
        if not m:
            break
        end = m.end()
    return start, end


def find_names(text: str) -> list[Entity]:
    """Persons, addresses and organisations in `text` (spans may overlap; detect.find resolves them)."""
    if not text.strip():
        return []
    found = []
    for span in _load()(text).spans:
        kind = _KINDS.get(span.type)
        if kind == "address":
            found.append(Entity(kind, *_extend_address(text, span.start, span.stop)))
        elif kind:
            found.append(Entity(kind, span.start, span.stop))
    return _merge_addresses(text, found)


def _merge_addresses(text: str, found: list[Entity]) -> list[Entity]:
    # "г. Москва, ул. Ленина, д. 5": the tagger's places joined by commas are one address.
    out: list[Entity] = []
    for ent in sorted(found, key=lambda e: e.start):
        prev = out[-1] if out else None
        if (prev and prev.kind == ent.kind == "address" and ent.start >= prev.end
                and _JOIN.fullmatch(text, prev.end, ent.start)):
            out[-1] = Entity("address", prev.start, max(prev.end, ent.end))
        else:
            out.append(ent)
    return out


_JOIN = re.compile(r"[ \t\u00a0]{0,2},?[ \t\u00a0]{0,2}" + _STREET + r"?[ \t\u00a0]{0,2}", re.IGNORECASE)
