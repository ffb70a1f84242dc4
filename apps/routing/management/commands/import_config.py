import yaml
from django.core.management.base import BaseCommand, CommandError

from apps.routing.config_schema import ConfigError, parse_config
from apps.routing.services import config_import


class Command(BaseCommand):
    help = "Import providers, models (prices in roubles per 1,000 tokens) and aliases from YAML. Idempotent; all or nothing."

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
            counts = config_import(parse_config(data))
        except ConfigError as exc:
            raise CommandError(f"{opts['file']}: {exc}; nothing was changed") from None
        self.stdout.write("Imported " + ", ".join(f"{n} {k}" for k, n in counts.items()))
