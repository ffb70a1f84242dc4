"""Persons, places and organisations in Russian text: Natasha 1.6.0's news NER model (slovnet on navec
embeddings, both shipped inside the natasha wheel; offline), checked with pymorphy2's dictionary.

Loaded on the first call only, once per process (about 2 s and 140 MiB; bench/privacy.py measures it), so
a process that serves no policy needing names never pays for it. The model is run through slovnet directly
rather than `import natasha`: natasha's package import also loads yargy and its own wrappers, none needed.

pymorphy2 0.9.1 (natasha's own dependency) calls `inspect.getargspec`, which Python 3.11 removed, when an
analyser is built; `_morph()` supplies that one function (from `getfullargspec`, the same four fields) if
it is missing, before building the analyser. The dictionary tells a tagged "person" that is only a
capitalised verb or noun ("Прикрепите", "Курьер", "Прописка") from a name or a place, and finds persons in
text typed without capitals, where the tagger finds none. Two shapes need no model: a street address
("ул. Ленина, д. 5, кв. 12") and a legal form with a quoted name ("ООО «Ромашка»").
"""

import importlib.util
import inspect
import os
import re
import threading

from apps.privacy.detect import Entity

_KINDS = {"PER": "person", "LOC": "address", "ORG": "organisation"}
_EMBEDDING = "data/emb/navec_news_v1_1B_250K_300d_100q.tar"
_MODEL = "data/model/slovnet_ner_news_v1.tar"

_tagger = None
_analyser = None
_lock = threading.Lock()


def _load():
    global _tagger, _analyser
    with _lock:
        if _tagger is None:
            # One BLAS thread: the tagger multiplies small matrices, where OpenBLAS's thread pool spins for
            # more CPU than it saves (measured: 225 → 13 ms of CPU per 1,000 characters). It only takes
            # effect if numpy is not yet imported; a process importing numpy earlier sets it in its environment.
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.setdefault(var, "1")
            from navec import Navec
            from slovnet import NER

            # find_spec locates the wheel without running natasha/__init__ (see the module docstring).
            base = importlib.util.find_spec("natasha").submodule_search_locations[0]
            tagger = NER.load(os.path.join(base, _MODEL))
            tagger.navec(Navec.load(os.path.join(base, _EMBEDDING)))
            _analyser = _morph()
            _tagger = tagger
    return _tagger


def _morph():
    if not hasattr(inspect, "getargspec"):
        inspect.getargspec = lambda func: inspect.getfullargspec(func)[:4]
    import pymorphy2

    return pymorphy2.MorphAnalyzer()


def loaded() -> bool:
    return _tagger is not None


_NAME_TAGS = {"Name", "Surn", "Patr"}
_PLACE_TAGS = {"Geox", "Name", "Surn", "Patr"}  # streets are often named after people
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)?")


def _looks_like_a_name(words: list[str], tags: set[str]) -> bool:
    """Some word carries one of `tags` (first name, surname, toponym…), is an initial, or is a word the
    dictionary does not know."""
    for word in words:
        if len(word) == 1:
            return True  # an initial: "И. Петров"
        if any(tags & p.tag.grammemes for p in _analyser.parse(word)) or not _analyser.word_is_known(word):
            return True
    return False


# The identifiers' own names are not organisations or places ("паспорт РФ", "полис ОМС").
_DOCUMENT_WORDS = {"енп", "омс", "рф", "снилс", "инн", "осаго", "каско", "огрн", "кпп", "бик", "мфц"}

# Street words and house/flat numbers: the tagger finds the names of places ("Ленина", "Москва"); an
# address also holds the street's kind and the numbers after it, which say the most about a person.
_STREET = (r"(?:ул\.?|улица|улице|улицы|пр-т|пр-кт|просп\.|проспект[аеу]?|пер\.|переул[оке]к?|б-р|бульвар[аеу]?|"
           r"ш\.|шоссе|наб\.|набережн[аяойуюе]{1,2}|пл\.|площад[ьи]|мкр\.?|микрорайон[аеу]?|г\.|город[аеу]?|"
           r"обл\.|област[ьи]|пос\.|пгт\.?|с\.|д\.)")
_STREET_AT = re.compile(r"(?<![\w.])" + _STREET + r"[ \t\u00a0]{0,2}$", re.IGNORECASE)
_HOUSE = re.compile(r"[ \t\u00a0]{0,2},?[ \t\u00a0]{0,2}(?:(?:д\.|дом|корп\.|корпус|к\.|стр\.|строение|кв\.|квартира|"
                    r"оф\.|офис)[ \t\u00a0]{0,2})?[0-9]{1,4}[а-яА-Я]?(?:/[0-9]{1,3})?(?![0-9])")
_JOIN = re.compile(r"[ \t\u00a0]{0,2},?[ \t\u00a0]{0,2}" + _STREET + r"?[ \t\u00a0]{0,2}", re.IGNORECASE)
_MAX_HOUSE_PARTS = 5
_STREET_LOOKBACK = 16


def _extend_address(text: str, start: int, end: int) -> tuple[int, int]:
    m = _STREET_AT.search(text, max(0, start - _STREET_LOOKBACK), start)
    if m:
        start = m.start()
    for _ in range(_MAX_HOUSE_PARTS):
        m = _HOUSE.match(text, end)
        if not m:
            break
        end = m.end()
    return start, end


# "ул. Первомайская, д. 197, кв. 72": a street kind, its name and a house number are an address whether or
# not the tagger knows the street (it often does not, and never in lower case).
_STREET_KIND = (r"(?:ул\.?|улица|улице|пр-т|пр-кт|просп\.|проспект[аеу]?|пер\.|переул[оке]к?|б-р|бульвар[аеу]?|"
                r"шоссе|наб\.|набережн[аяойуюе]{1,2}|пл\.|площад[ьи]|мкр\.?|микрорайон[аеу]?)")
_NAME_WORD = r"[А-ЯЁа-яё0-9][А-ЯЁа-яё-]{1,30}"
_STREET_ADDRESS = re.compile(
    r"(?<![\w.])" + _STREET_KIND + r"[ \t\u00a0]{0,2}" + _NAME_WORD + r"(?:[ \t\u00a0]" + _NAME_WORD + r")?"
    r"[ \t\u00a0]{0,2},?[ \t\u00a0]{0,2}(?:д\.|дом)?[ \t\u00a0]{0,2}[0-9]{1,4}(?![0-9])", re.IGNORECASE)
# "Самара, ул. …": the town written just before the street.
_TOWN_BEFORE = re.compile(r"(?:г\.[ \t\u00a0]?)?[А-ЯЁа-яё][а-яё]{2,30}(?:-[а-яё]{1,4}-[А-ЯЁа-яё][а-яё]{2,30})?,[ \t\u00a0]{1,2}$")
_TOWN_LOOKBACK = 40


def _street_addresses(text: str) -> list[Entity]:
    found = []
    for m in _STREET_ADDRESS.finditer(text):
        start, end = _extend_address(text, m.start(), m.end())
        town = _TOWN_BEFORE.search(text, max(0, start - _TOWN_LOOKBACK), start)
        found.append(Entity("address", town.start() if town else start, end))
    return found


# "ООО «Ромашка»": a legal form and a quoted name are an organisation, in any case.
_LEGAL_FORM = re.compile(r"(?<![\w])(?:ооо|оао|зао|пао|ао|нко|ано|гбуз|гбу|гку|гуп|муп|фгуп|ип)[ \t\u00a0]{1,2}"
                         r"[«\"“][^»\"”\n]{1,60}[»\"”]", re.IGNORECASE)


def _legal_forms(text: str) -> list[Entity]:
    return [Entity("organisation", m.start(), m.end()) for m in _LEGAL_FORM.finditer(text)]


# Text typed without capitals defeats the tagger, which leans on them. There, a run of words whose likeliest
# reading is a first name, surname or patronymic ("саша иванов", "сидоровой в. с.") is a person; a lone word
# only if it reads best as a surname ("петров"). (Place names read this way cost more precision than they
# found: measured.)
_LOWER_WORD = re.compile(r"[а-яё]+(?:-[а-яё]+)?\.?")
_MAX_NAME_RUN = 4


def _lower_case_persons(text: str) -> list[Entity]:
    if any(ch.isupper() for ch in text):
        return []
    found, run = [], []

    def flush():
        if run and (len(run) > 1 or run[0][2] == "Surn") and any(tag for _, _, tag in run):
            found.append(Entity("person", run[0][0], run[-1][1]))
        run.clear()

    last_end = 0
    for m in _LOWER_WORD.finditer(text):
        word = m.group().rstrip(".")
        initial = len(word) == 1 and m.group().endswith(".")
        tag = None if initial else next(iter(_NAME_TAGS & _analyser.parse(word)[0].tag.grammemes), None)
        if run and (not text[last_end:m.start()].strip(" ") == "" or len(run) >= _MAX_NAME_RUN):
            flush()
        if tag or (initial and run):
            run.append((m.start(), m.end() if initial else m.start() + len(word), tag))
        else:
            flush()
        last_end = m.end()
    flush()
    return found


def find_names(text: str) -> list[Entity]:
    """Persons, addresses and organisations in `text`, sorted by start (not overlapping each other)."""
    if not text.strip():
        return []
    found = []
    for span in _load()(text).spans:
        kind = _KINDS.get(span.type)
        words = _WORD.findall(text[span.start:span.stop])
        if not kind or not words or text[span.start:span.stop].lower() in _DOCUMENT_WORDS:
            continue
        # "ул. Жукова": a street named after a person is part of an address.
        if kind == "person" and _STREET_AT.search(text, max(0, span.start - _STREET_LOOKBACK), span.start):
            kind = "address"
        if kind == "person" and not _looks_like_a_name(words, _NAME_TAGS):
            continue
        if kind == "address" and len(words) == 1 and not _looks_like_a_name(words, _PLACE_TAGS):
            continue  # "Прописка: …" read as a place
        if kind == "address":
            found.append(Entity(kind, *_extend_address(text, span.start, span.stop)))
        else:
            found.append(Entity(kind, span.start, span.stop))
    found += _street_addresses(text) + _legal_forms(text) + _lower_case_persons(text)
    return _merge_addresses(text, found)


def _merge_addresses(text: str, found: list[Entity]) -> list[Entity]:
    # "г. Москва, ул. Ленина, д. 5": the tagger's places joined by commas are one address.
    out: list[Entity] = []
    for ent in sorted(found, key=lambda e: e.start):
        prev = out[-1] if out else None
        if prev and prev.kind == ent.kind == "address" and ent.start >= prev.end and _JOIN.fullmatch(text, prev.end, ent.start):
            out[-1] = Entity("address", prev.start, max(prev.end, ent.end))
        elif prev and ent.start < prev.end:
            if ent.end - ent.start > prev.end - prev.start:
                out[-1] = ent
        else:
            out.append(ent)
    return out
