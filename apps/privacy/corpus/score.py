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
