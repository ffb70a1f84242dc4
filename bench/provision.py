"""Provision the benchmark database (run by bench/run.py with DATABASE_URL and REDIS_URL set).

Imports one `openai_compatible` provider pointing at the mock, one priced model, the alias
`bench-model` and one routing rule for it through the same config import as `import_config`,
creates a user and an API key (with `--limits`: rate limits on the key and the model, set so high that
nothing is refused but every request goes through admission and settling), and prints JSON: {"key": ..., "usage_table": ..., "config": ...}.
"""

import argparse
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xrouter_project.settings")


# High enough never to refuse the benchmark's load; present so that every request pays for admission.
# The budget (roubles a month) makes every request reserve and settle its cost too.
KEY_LIMITS = {"requests_rate": "100000000/min", "tokens_rate": "100000000000/min", "max_concurrent": 1_000_000,
              "monthly_budget": Decimal("1000000000")}
MODEL_LIMITS = {"requests_rate": "100000000/min"}


def bench_config(mock_base_url: str, with_rule: bool, limits: bool = False) -> dict:
    config = {
        "providers": {
            "mock": {
                "kind": "openai_compatible",
                "base_url": mock_base_url,
                "credentials": {"api_key": "sk-bench-upstream"},
                "models": {"mock-model": {"input_price": "0.50", "output_price": "1.50", "context_window": 32768,
                                          **(MODEL_LIMITS if limits else {})},
                           # The same model without limits: the run that measures what limits cost asks for it.
                           "mock-model-free": {"input_price": "0.50", "output_price": "1.50", "context_window": 32768}},
            }
        },
        "aliases": {"bench-model": "mock/mock-model", "bench-model-free": "mock/mock-model-free"},
    }
    if with_rule:
        config["rules"] = [{"name": "bench", "match": {"model": "bench-model"}, "strategy": "fallback",
                            "targets": [{"model": "mock/mock-model"}]},
                           {"name": "bench-free", "match": {"model": "bench-model-free"}, "strategy": "fallback",
                            "targets": [{"model": "mock/mock-model-free"}]}]
    return config


def oauth_token(user) -> str:
    """A client-credentials access token of an application of the bench organisation, stored as the toolkit
    stores one (hashed); valid for the hour the bench needs at most."""
    from datetime import timedelta

    from django.utils import timezone
    from oauth2_provider.models import set_token_value

    from apps.accounts.models import Membership, Organisation
    from apps.accounts.services import membership_add
    from apps.oauth.models import AccessToken, Application
    from apps.oauth.services import application_create
    from apps.oauth.tokens import new_access_token

    organisation, _ = Organisation.objects.get_or_create(name="bench")
    if not Membership.objects.filter(user=user, organisation=organisation).exists():
        membership_add(organisation, user, "owner")
    application, _secret = application_create(user=user, organisation=organisation, name="bench",
                                               client_type=Application.CLIENT_CONFIDENTIAL,
                                               authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS)
    plaintext = new_access_token()
    token = AccessToken(application=application, scope="chat embeddings models:read",
                        expires=timezone.now() + timedelta(hours=1))
    set_token_value(token, plaintext)
    token.save()
    return plaintext


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mock-url", required=True, help="the mock's /v1 base URL")
    parser.add_argument("--limits", action="store_true", help="rate limits on the key and the model")
    args = parser.parse_args()

    import django

    django.setup()
    from apps.accounts.models import User
    from apps.keys.services import key_create
    from apps.routing.config_schema import ConfigFile, parse_config
    from apps.routing.services import config_import
    from apps.usage.models import UsageRecord

    with_rule = "rules" in ConfigFile.model_fields
    config = bench_config(args.mock_url, with_rule, args.limits)
    counts = config_import(parse_config(config))
    user, _ = User.objects.get_or_create(username="bench", defaults={"email": "bench@example.invalid"})
    _key, plaintext = key_create(user=user, name="bench", **(KEY_LIMITS if args.limits else {}))
    _limited, limited_plaintext = key_create(user=user, name="bench-limited", **KEY_LIMITS)
    _unlimited, unlimited_plaintext = key_create(user=user, name="bench-unlimited")
    print(json.dumps({"key": plaintext, "limited_key": limited_plaintext, "unlimited_key": unlimited_plaintext,
                      "oauth_token": oauth_token(user),
                      "usage_table": UsageRecord._meta.db_table,
                      "counts": counts,
                      "rule": with_rule, "config": config}))


if __name__ == "__main__":
    main()
