"""A labelled item and the hand-written set's reader."""

import re
from dataclasses import dataclass
from pathlib import Path

HANDWRITTEN = Path(__file__).with_name("handwritten.txt")
_MARK = re.compile(r"\{\{([^|{}]+)\|([a-z]+)\}\}")


@dataclass(frozen=True)
class Item:
    text: str
    spans: tuple[tuple[str, int, int], ...]  # (kind, start, end)
    lower: bool = False  # written (or turned) all lower-case: reported separately
    negative: bool = False  # a look-alike with nothing personal in it


def parse(line: str) -> Item:
    """'Мой ИНН {{7707083893|inn}}' → Item('Мой ИНН 7707083893', (('inn', 8, 18),))."""
    text, spans, pos = [], [], 0
    for m in _MARK.finditer(line):
        text.append(line[pos:m.start()])
        start = sum(map(len, text))
        text.append(m.group(1))
        spans.append((m.group(2), start, start + len(m.group(1))))
        pos = m.end()
    text.append(line[pos:])
    plain = "".join(text)
    return Item(plain, tuple(spans), lower=plain == plain.lower(), negative=not spans)


def handwritten() -> list[Item]:
    lines = HANDWRITTEN.read_text(encoding="utf-8").splitlines()
    return [parse(line) for line in lines if line.strip() and not line.startswith("#")]
