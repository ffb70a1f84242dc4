"""The guardrail pipeline's cost on the request path, alone (no server): CPU time per request of

- the check every chat request makes with policies off (the default, and the benchmark's headline);
- a request under `pseudonymize` (prompt rewritten for the attempt, answer restored, streamed in small chunks);
- the restorer alone, per streamed chunk.

    .venv/bin/python bench/guardrail_overhead.py [--requests 200000] [--chars 1000]

The detectors' own cost per 1,000 characters is bench/privacy*.py's (apps/privacy/detect.py).
"""

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrouter_project.settings")


def per_call_ns(fn, n: int) -> float:
    start = time.process_time_ns()
    for _ in range(n):
        fn()
    return (time.process_time_ns() - start) / n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--chars", type=int, default=1000, help="prompt size of the pseudonymize run")
    args = p.parse_args()

    import django

    django.setup()
    from apps.common.personal_data import Policy
    from apps.privacy.guardrails import guard_for
    from apps.privacy.pseudonym import Restore

    off_key, off_plan = SimpleNamespace(policies=()), SimpleNamespace(policies=())
    body = {"messages": [{"role": "user", "content": "hello"}]}

    def policies_off():  # exactly the expression in apps/gateway/handlers.py chat()
        return guard_for(off_key, off_plan, body, "r") if off_key.policies or off_plan.policies else None

    def nothing():
        return None

    n = args.requests
    baseline = per_call_ns(nothing, n)
    off = per_call_ns(policies_off, n) - baseline
    print(f"policies off: {off:.0f} ns per request over an empty call ({n} requests)")

    filler = "Текст обращения без персональных данных. "
    sentence = "Позвоните по номеру +7 912 345-67-89 или напишите ivan.petrov@example.ru. "
    prompt = (sentence + filler * 3) * (args.chars // (len(sentence) + 3 * len(filler)) + 1)
    prompt = prompt[:args.chars]
    key = SimpleNamespace(kind="key", id=1, organisation_id=None, policies=(Policy(mode="pseudonymize"),))
    plan = SimpleNamespace(policies=())
    target = SimpleNamespace(model=SimpleNamespace(jurisdiction="RU", provider="p", public_id="p/m"))
    pieces = [prompt[i:i + 12] for i in range(0, len(prompt), 12)]  # about 3 tokens a chunk

    def pseudonymized():
        guard = guard_for(key, plan, {"messages": [{"role": "user", "content": prompt}]}, "r")
        sent = guard.upstream(target)["messages"][0]["content"]
        answer = guard.answer(target)
        for start in range(0, len(sent), 12):
            answer.piece(("content", 0), sent[start:start + 12])
        answer.flush(("content", 0))
        answer.end()

    runs = max(1, n // 1000)
    cost = per_call_ns(pseudonymized, runs) / 1e6
    print(f"pseudonymize, {len(prompt)}-character prompt echoed back in {len(pieces)} chunks: {cost:.2f} ms per request "
          f"({cost * 1000 / len(prompt):.2f} ms per 1,000 characters)")

    restorer = Restore({"[PHONE_1]": "+7 912 345-67-89"}).restorer()
    chunk = iter(pieces * (n // len(pieces) + 1))
    per_chunk = per_call_ns(lambda: restorer.feed(next(chunk)), n)
    print(f"restorer alone: {per_chunk / 1000:.2f} µs per streamed chunk")


if __name__ == "__main__":
    main()
