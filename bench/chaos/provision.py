"""Provision the battery's database (run by the harness with its DATABASE_URL and REDIS_URL).

    python bench/chaos/provision.py --mts-url http://127.0.0.1:P/v1 --tbank-url http://127.0.0.1:Q/v1 --limit-keys 20

Imports the MTS and T-Bank providers (their URLs point at the fault proxies), a model alias and a fallback
rule through the same config import as `import_config`, and creates the keys the scenarios use. Prints one
JSON line of plaintext keys.
"""

import argparse
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrouter_project.settings")

MODEL = "chaos-model"  # → mts/mws-gpt-alpha
FALLBACK_MODEL = "chaos-fallback"  # mts first, T-Bank when MTS fails
EMBEDDING_MODEL = "chaos-embed"  # → mts/bge-m3
RPM = 50
# The isolation, overload and shutdown scenarios' models: MTS emulator models no other scenario uses, so that a
# fault queued for one of them (`"model": ...`, apps/emulators/faults.py) slows only that scenario's requests.
SHARED_MODEL = "chaos-shared"  # → mts/gpt-4o: both tenants of the isolation scenario
BOUNDED_MODEL = "chaos-bounded"  # → bounded/qwen2.5-72b-instruct: a credential with max_concurrency=BOUNDED
SLOW_MODEL = "chaos-slow"  # → mts/QwQ-32B: the shutdown scenario's slow answers
BOUNDED = 50
NOISY_RATE = "50/s"  # the isolation scenario's noisy tenant: offered 500/s, 10× this
BUDGET = Decimal("0.5")  # roubles a month: a few dozen of the budget burst's requests


def config(mts_url: str, tbank_url: str) -> dict:
    price = {"input_price": "0.50", "output_price": "0.50", "context_window": 32768}
    return {
        "providers": {
            "mts": {"kind": "mts", "base_url": mts_url, "credentials": {"api_key": "sk-demo-mts-key"},
                    "models": {"mws-gpt-alpha": price, "gpt-4o": price, "QwQ-32B": price, "bge-m3": {"kind": "embedding", "input_price": "0.01",
                                                                  "output_price": "0"}}},
            "tbank": {"kind": "tbank", "base_url": tbank_url, "credentials": {"api_key": "sk-demo-tbank-key"},
                      "models": {"t-tech/T-lite-it-2.1": price}},
            # The same emulator through an account that takes BOUNDED calls at once (Redis leases, every process).
            "bounded": {"kind": "mts", "base_url": mts_url, "credentials": {"api_key": "sk-demo-mts-key"},
                        "max_concurrency": BOUNDED, "models": {"qwen2.5-72b-instruct": price}},
        },
        "aliases": {MODEL: "mts/mws-gpt-alpha", EMBEDDING_MODEL: "mts/bge-m3", SHARED_MODEL: "mts/gpt-4o",
                    BOUNDED_MODEL: "bounded/qwen2.5-72b-instruct", SLOW_MODEL: "mts/QwQ-32B"},
        "rules": [{"name": "chaos-fallback", "match": {"model": FALLBACK_MODEL}, "strategy": "fallback",
                   "targets": [{"model": "mts/mws-gpt-alpha"}, {"model": "tbank/t-tech/T-lite-it-2.1"}]}],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mts-url", required=True)
    parser.add_argument("--tbank-url", required=True)
    parser.add_argument("--limit-keys", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from apps.accounts.models import Organisation, User
    from apps.keys.services import key_create
    from apps.routing.config_schema import parse_config
    from apps.routing.services import config_import

    config_import(parse_config(config(args.mts_url, args.tbank_url)))
    keys = {}
    for name in ("billing", "other"):  # two tenants: `other` is the isolation scenario's bystander
        organisation, _ = Organisation.objects.get_or_create(name=f"chaos-{name}")
        user, _ = User.objects.get_or_create(username=f"chaos-{name}", defaults={"organisation": organisation})
        keys[name] = key_create(user=user, name=name, organisation=organisation)[1]
    user = User.objects.get(username="chaos-billing")
    keys["manage"] = key_create(user=user, name="manage", scopes=["chat", "embeddings", "models:read", "usage:read",
                                                                  "keys:manage"])[1]
    keys["limits"] = [key_create(user=user, name=f"rpm-{i}", requests_rate=f"{RPM}/min")[1]
                      for i in range(args.limit_keys)]
    # Limits too high to refuse anything, so that every request asks Redis for admission (the outages scenario).
    keys["steady"] = key_create(user=user, name="steady", requests_rate="1000000/min")[1]
    # Isolation: a noisy tenant (its own organisation) limited to NOISY_RATE, and a quiet one beside it.
    for name, rate in (("noisy", NOISY_RATE), ("quiet", "1000000/min")):
        organisation, _ = Organisation.objects.get_or_create(name=f"chaos-{name}")
        tenant, _ = User.objects.get_or_create(username=f"chaos-{name}", defaults={"organisation": organisation})
        keys[name] = key_create(user=tenant, name=name, organisation=organisation, requests_rate=rate)[1]
    keys["overload"] = key_create(user=user, name="overload")[1]  # no limits of its own: the upstream's bound
    shutdown_key, keys["shutdown"] = key_create(user=user, name="shutdown")
    keys["shutdown_id"] = shutdown_key.id
    soak_key, keys["soak"] = key_create(user=user, name="soak")
    keys["soak_id"] = soak_key.id
    budget_key, keys["budget"] = key_create(user=user, name="budget", monthly_budget=BUDGET)
    keys["budget_id"] = budget_key.id
    print(json.dumps(keys))


if __name__ == "__main__":
    main()
