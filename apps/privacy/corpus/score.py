"""Precision and recall per entity kind of a detector over labelled items."""

from collections import defaultdict

from apps.privacy.corpus.items import Item

NAME_KINDS = ("person", "address", "organisation")
CHECKSUM_KINDS = ("snils", "inn", "card", "oms")


def matches(kind: str, gold: tuple[int, int], pred: tuple[int, int]) -> bool:
    """Names count when they overlap (the tagger's boundaries vary: "улице Ленина" vs "Ленина"); numbers and
    other patterns must cover 90 % of the labelled text and lie 70 % inside it, so half a card does not count."""
    overlap = min(gold[1], pred[1]) - max(gold[0], pred[0])
    if overlap <= 0:
        return False
    if kind in NAME_KINDS:
        return True
    return overlap >= 0.9 * (gold[1] - gold[0]) and overlap >= 0.7 * (pred[1] - pred[0])


def score(items: list[Item], predict, kinds=None) -> dict[str, dict[str, float]]:
    """{kind: {gold, found, predicted, correct, recall, precision}}; `predict(text)` → [(kind, start, end)]."""
    counts = defaultdict(lambda: {"gold": 0, "found": 0, "predicted": 0, "correct": 0})
    for item in items:
        preds = [p for p in predict(item.text) if kinds is None or p[0] in kinds]
        for kind, s, e in item.spans:
            counts[kind]["gold"] += 1
            counts[kind]["found"] += any(k == kind and matches(kind, (s, e), (ps, pe)) for k, ps, pe in preds)
        for kind, ps, pe in preds:
            counts[kind]["predicted"] += 1
            counts[kind]["correct"] += any(k == kind and matches(kind, (s, e), (ps, pe)) for k, s, e in item.spans)
    out = {}
    for kind, c in sorted(counts.items()):
        out[kind] = dict(c, recall=c["found"] / c["gold"] if c["gold"] else None,
                         precision=c["correct"] / c["predicted"] if c["predicted"] else None)
    return out


def pooled(result: dict, kinds) -> dict[str, float]:
    """Recall and precision over several kinds together."""
    c = {f: sum(result[k][f] for k in kinds if k in result) for f in ("gold", "found", "predicted", "correct")}
    return dict(c, recall=c["found"] / c["gold"] if c["gold"] else None,
                precision=c["correct"] / c["predicted"] if c["predicted"] else None)


# Issue 12's bars: checksummed identifiers and names per kind; speed in ms per 1,000 characters.
CHECKSUM_RECALL, CHECKSUM_PRECISION = 0.99, 0.98
NAMES_RECALL, NAMES_PRECISION = 0.90, 0.90
PATTERNS_MS, NAMES_MS = 5.0, 15.0


def verdicts(corpus: str, every_case: dict, normal_case: dict) -> list[tuple[str, bool]]:
    """(line, passed) per bar: checksummed kinds over every item (digits have no case), persons in
    normally cased text. `every_case` and `normal_case` are `score()` results."""
    out = []
    for kind in CHECKSUM_KINDS:
        r = every_case.get(kind)
        if not r or not r["gold"]:
            continue
        rec, prec = r["recall"], r["precision"] or 0.0
        out.append((f"{corpus}: {kind} recall {rec:.3f} ≥ {CHECKSUM_RECALL}", rec >= CHECKSUM_RECALL))
        out.append((f"{corpus}: {kind} precision {prec:.3f} ≥ {CHECKSUM_PRECISION} (look-alike negatives included)",
                    prec >= CHECKSUM_PRECISION))
    r = normal_case.get("person")
    if r and r["gold"]:
        rec, prec = r["recall"], r["precision"] or 0.0
        out.append((f"{corpus}: person recall {rec:.3f} ≥ {NAMES_RECALL} (normal case)", rec >= NAMES_RECALL))
        out.append((f"{corpus}: person precision {prec:.3f} ≥ {NAMES_PRECISION} (normal case)", prec >= NAMES_PRECISION))
    return out
