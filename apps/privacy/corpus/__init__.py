"""Labelled corpora measuring the detectors (bench/privacy.py, tests/privacy/test_detect_corpus.py).

`generate.py` makes a seeded corpus whose formats follow how people write the identifiers, not how the
detectors parse them (it imports nothing from the detectors); `handwritten.txt` holds sentences written by
hand and committed before the detectors were tuned on them. Both yield `Item(text, spans)`.
"""
