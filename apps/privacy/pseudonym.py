"""Placeholders for personal data, and their restoration in answers, whole or streamed.

The placeholder is `[KIND_N]` (`[PHONE_1]`, `[EMAIL_2]`, `[PERSON_1]`): ASCII capitals, an underscore and a
number in square brackets. Chat models meet this form constantly in anonymized training text and in
templates, and copy it through verbatim as one unit; it has no JSON special characters, so it is safe inside
tool-call arguments; and it is not a word of any language, so a model has nothing to inflect or translate
(the rare altered copy — `[phone_1]`, `[PHONE 1]` — is left alone and counted in xrouter_pd_unrestored_total).
Numbers are per request and stable within it: the same value gets the same placeholder in every message.

Streaming: a placeholder may arrive split across chunks at any character. `Restorer.feed` holds back the
tail that could still become one (from its last `[`, at most MAX_HOLD characters) and releases it with the
next chunk or at `flush` (the end of that choice), so the client never sees half a placeholder.
"""

import re

import orjson

from . import detect

LABELS = {"organisation": "ORG"}  # kind → placeholder label where the kind's own name is long
PLACEHOLDER = re.compile(r"\[[A-Z]+_\d{1,5}\]")
# What restoration looks at: the placeholder, and copies of it a model altered (case, a space or dash).
LOOSE = re.compile(r"\[\s?([A-Za-z]{2,16})[_\s-]?(\d{1,5})\s?\]")
# A tail that may still grow into a LOOSE match: held back in streams.
PARTIAL = re.compile(r"\[\s?[A-Za-z]{0,16}[_\s-]?\d{0,5}\s?")
MAX_HOLD = 28  # longer than any LOOSE match, so a held tail is always released within one chunk's worth


def label(kind: str) -> str:
    return LABELS.get(kind, kind.upper())


class Pseudonyms:
    """One request's placeholders: value → placeholder and back. `taken`: placeholder-shaped text the
    request already contains, never issued (else restoration would rewrite the client's own text)."""

    def __init__(self, names: bool, taken: set):
        self.names = names
        self.taken = taken
        self.by_value: dict[tuple, str] = {}
        self.originals: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        token = self.by_value.get(key)
        if token is None:
            name = label(kind)
            n = self.counts.get(name, 0)
            while True:
                n += 1
                token = f"[{name}_{n}]"
                if token not in self.taken:
                    break
            self.counts[name] = n
            self.by_value[key] = token
            self.originals[token] = value
        return token

    def replace(self, text: str) -> str:
        """`text` with every detected entity replaced by its placeholder."""
        entities = detect.find(text, names=self.names)
        if not entities:
            return text
        out, pos = [], 0
        for entity in entities:
            out.append(text[pos:entity.start])
            out.append(self.placeholder(entity.kind, text[entity.start:entity.end]))
            pos = entity.end
        out.append(text[pos:])
        return "".join(out)


def taken_in(texts) -> set:
    return {m.group(0) for text in texts if "[" in text for m in PLACEHOLDER.finditer(text)}


def mask(text: str, names: bool = False) -> str:
    """`text` with personal data replaced by placeholders, never to be restored (the prompt log)."""
    return Pseudonyms(names, taken_in([text])).replace(text)


class Restore:
    """Puts one request's originals back: `text()` on whole strings, `Restorer`s on streams.
    `in_json`: the text is a tool call's JSON arguments, so an original goes in JSON-escaped."""

    def __init__(self, originals: dict[str, str]):
        self.originals = originals
        self.unrestored = 0  # altered placeholders seen (left as they are)

    def text(self, text: str, in_json: bool = False) -> str:
        if "[" not in text:
            return text
        return LOOSE.sub(lambda m: self._one(m, in_json), text)

    def _one(self, match: re.Match, in_json: bool) -> str:
        found = match.group(0)
        original = self.originals.get(found)
        if original is not None:
            return orjson.dumps(original).decode()[1:-1] if in_json else original
        if f"[{match.group(1).upper()}_{match.group(2)}]" in self.originals:
            self.unrestored += 1  # ours, but altered on the way: restoring a guess could be wrong
        return found

    def restorer(self, in_json: bool = False) -> "Restorer":
        return Restorer(self, in_json)


class Restorer:
    """One streamed string (a choice's content, or one tool call's arguments)."""

    __slots__ = ("restore", "in_json", "held")

    def __init__(self, restore: Restore, in_json: bool):
        self.restore, self.in_json, self.held = restore, in_json, ""

    def feed(self, piece: str) -> str:
        """What of the text so far can be sent: everything but a tail that may be half a placeholder."""
        text = self.held + piece if self.held else piece
        cut = text.rfind("[")
        if cut != -1 and len(text) - cut <= MAX_HOLD and PARTIAL.fullmatch(text, cut):
            self.held = text[cut:]
            text = text[:cut]
        else:
            self.held = ""
        return self.restore.text(text, self.in_json) if text else ""

    def flush(self) -> str:
        """The held tail, at the end of its string."""
        text, self.held = self.held, ""
        return self.restore.text(text, self.in_json) if text else ""
