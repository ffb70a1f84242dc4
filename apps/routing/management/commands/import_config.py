import yaml
from django.apps import apps as django_apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.routing.config_schema import ConfigError, parse_config
from apps.routing.services import config_import


class Command(BaseCommand):
    help = "Import providers, models (prices in roubles per 1,000 tokens, effective-dated) and aliases from YAML. Idempotent; all or nothing."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, **opts):
        try:
            with open(opts["file"], encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except OSError as exc:
            raise CommandError(f"cannot read {opts['file']}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise CommandError(f"{opts['file']}: not valid YAML ({exc})") from None
        try:
            config = parse_config(data)
            with transaction.atomic():
                counts = config_import(config)
                if django_apps.is_installed("apps.billing"):
                    # The price history (effective dates, VAT) is billing's; imported lazily, as urls and the
                    # admin do: nothing in routing depends on billing.
                    from apps.billing.services import prices_import

                    counts["prices"] = prices_import({(provider, name): spec for provider, p in config.providers.items()
                                                      for name, spec in p.models.items()})
        except ConfigError as exc:
            raise CommandError(f"{opts['file']}: {exc}; nothing was changed") from None
        self.stdout.write("Imported " + ", ".join(f"{n} {k}" for k, n in counts.items()))
