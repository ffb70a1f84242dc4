"""Measures the personal-data detectors (apps/privacy/detect.py): precision and recall per kind on the
generated and the hand-written corpora (lower-case text apart), their speed, and the name model's memory.

    .venv/bin/python bench/privacy.py            # ≈ 1 minute; writes bench/results/privacy.{md,json}
    .venv/bin/python bench/privacy.py --items 500 --out /tmp/p   # a quicker look

Speed is CPU time per 1,000 characters on texts of about 1,000 characters (the generated items joined; the
bars apply to these), and on the items one at a time; the names figure is the tagger's own (`find_names`),
the memory the resident-set growth of a fresh process that loads it and tags one sentence. Exit status 1
when a bar fails.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.privacy import detect  # noqa: E402
from apps.privacy.corpus import score as scoring  # noqa: E402
from apps.privacy.corpus.generate import generate  # noqa: E402
from apps.privacy.corpus.items import handwritten  # noqa: E402

_MEMORY_PROBE = """
import os, sys
sys.path.insert(0, sys.argv[1])
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
import apps.privacy.detect
before = rss()
from apps.privacy.names import find_names
find_names("Иван Петров из Москвы работает в ООО «Ромашка».")
print(rss() - before)
"""


def _cpu_ms_per_1000(func, texts: list[str], rounds: int) -> float:
    chars = sum(map(len, texts))
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for text in texts:
            func(text)
        best = min(best, time.process_time() - t)
    return best * 1000 / chars * 1000


def _memory_mib() -> float:
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(ROOT)], capture_output=True, text=True,
                         timeout=300, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 2**20


def _predict(names: bool):
    return lambda text: [(e.kind, e.start, e.end) for e in detect.find(text, names=names)]


def measure(items_n: int, seed: int) -> dict:
    corpora = {"generated": generate(items_n, seed), "hand-written": handwritten()}
    predict = _predict(names=True)
    result = {"corpora": {}, "verdicts": []}
    for name, items in corpora.items():
        normal = [i for i in items if not i.lower]
        lower = [i for i in items if i.lower]
        every = scoring.score(items, predict)
        normal_r = scoring.score(normal, predict)
        result["corpora"][name] = {
            "items": len(items), "negatives": sum(i.negative for i in items), "lower_items": len(lower),
            "chars": sum(len(i.text) for i in items),
            "all": every, "normal_case": normal_r, "lower_case": scoring.score(lower, predict),
            "checksummed": scoring.pooled(every, scoring.CHECKSUM_KINDS),
        }
        result["verdicts"] += scoring.verdicts(name, every, normal_r)

    from apps.privacy.names import find_names

    # Speed on texts of about 1,000 characters (generated items joined), and on the items one by one (short
    # chat messages, where each call's fixed cost weighs more).
    items = [i.text for i in corpora["generated"]]
    texts, buf = [], ""
    for text in items:
        buf = f"{buf}\n{text}" if buf else text
        if len(buf) >= 1000:
            texts.append(buf)
            buf = ""
    patterns_ms = _cpu_ms_per_1000(detect.find, texts, rounds=3)
    names_ms = _cpu_ms_per_1000(find_names, texts, rounds=1)
    result["speed"] = {
        "patterns_ms_per_1000_chars": patterns_ms, "names_ms_per_1000_chars": names_ms,
        "texts": len(texts), "text_chars_mean": sum(map(len, texts)) / len(texts),
        "short_items_patterns_ms_per_1000_chars": _cpu_ms_per_1000(detect.find, items, rounds=3),
        "short_items_names_ms_per_1000_chars": _cpu_ms_per_1000(find_names, items, rounds=1),
        "short_items_chars_mean": sum(map(len, items)) / len(items),
        "names_model_rss_mib": _memory_mib(),
    }
    result["verdicts"] += [
        (f"patterns {patterns_ms:.3f} ms per 1,000 characters ≤ {scoring.PATTERNS_MS}", patterns_ms <= scoring.PATTERNS_MS),
        (f"names {names_ms:.2f} ms per 1,000 characters ≤ {scoring.NAMES_MS}", names_ms <= scoring.NAMES_MS),
    ]
    return result


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def report(result: dict) -> str:
    m = result["machine"]
    lines = ["# Personal-data detectors (`bench/privacy.py`)", "",
             f"{m['date']}, {m['nproc']} cores ({m['cpu_model']}), Python {m['python']}, commit {m['commit']}; "
             f"generated corpus: {result['args']['items']} items, seed {result['args']['seed']}.", ""]
    for name, c in result["corpora"].items():
        lines += [f"## {name} corpus: {c['items']} items ({c['negatives']} with nothing personal: look-alikes and plain text, "
                  f"{c['lower_items']} in lower case), {c['chars']:,} characters", "",
                  "| kind | labelled | recall | precision | lower case: labelled | recall | precision |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for kind in detect.KINDS:
            n, low = c["normal_case"].get(kind), c["lower_case"].get(kind)
            if not n and not low:
                continue
            n = n or {"gold": 0, "recall": None, "precision": None}
            low = low or {"gold": 0, "recall": None, "precision": None}
            lines.append(f"| {kind} | {n['gold']} | {_fmt(n['recall'])} | {_fmt(n['precision'])} | "
                         f"{low['gold']} | {_fmt(low['recall'])} | {_fmt(low['precision'])} |")
        ck = c["checksummed"]
        lines += ["", f"Checksummed identifiers together (SNILS, INN, card, OMS; both cases): recall "
                      f"{_fmt(ck['recall'])}, precision {_fmt(ck['precision'])}.", ""]
    s = result["speed"]
    lines += ["## Speed and memory (CPU time per 1,000 characters)", "",
              f"| | texts of ≈ {s['text_chars_mean']:,.0f} characters ({s['texts']}) | "
              f"one message at a time (≈ {s['short_items_chars_mean']:.0f} characters) |", "|---|---:|---:|",
              f"| patterns and checksums (`find(text)`) | {s['patterns_ms_per_1000_chars']:.3f} ms | "
              f"{s['short_items_patterns_ms_per_1000_chars']:.3f} ms |",
              f"| names (`find_names`: the tagger and its checks) | {s['names_ms_per_1000_chars']:.2f} ms | "
              f"{s['short_items_names_ms_per_1000_chars']:.2f} ms |", "",
              f"The name model's memory: {s['names_model_rss_mib']:.0f} MiB (RSS growth of a fresh process that "
              "loads it and tags a sentence).", "", "## Bars", ""]
    lines += [f"- {'PASS' if ok else 'FAIL'}: {line}" for line, ok in result["verdicts"]]
    return "\n".join(lines) + "\n"


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            timeout=5).stdout.strip() or "unknown"
    return {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
            "cpu_model": cpu, "python": platform.python_version(), "commit": commit}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3000, help="generated items (default 3000)")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "privacy"),
                        help="output path without extension (.md and .json are written)")
    args = parser.parse_args()
    result = {"machine": machine(), "args": vars(args)}
    result.update(measure(args.items, args.seed))
    md = report(result)
    Path(args.out + ".json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    Path(args.out + ".md").write_text(md, encoding="utf-8")
    print(md)
    return 0 if all(ok for _, ok in result["verdicts"]) else 1


if __name__ == "__main__":
    sys.exit(main())
