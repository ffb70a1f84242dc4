import yaml
from django.core.management.base import BaseCommand, CommandError

from apps.routing.config_schema import ConfigError, parse_config
from apps.routing.services import config_import_file


class Command(BaseCommand):
    help = "Import providers, models (prices in roubles per 1,000 tokens, effective-dated) and aliases from YAML. Idempotent; all or nothing."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--replace", action="store_true",
                            help="also delete the rules and aliases the file does not list, and the providers it does not "
                                 "list that have no usage and that nothing it lists targets")

    def handle(self, *args, **opts):
        try:
            with open(opts["file"], encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except OSError as exc:
            raise CommandError(f"cannot read {opts['file']}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise CommandError(f"{opts['file']}: not valid YAML ({exc})") from None
        try:
            counts = config_import_file(parse_config(data), replace=opts["replace"])
        except ConfigError as exc:
            raise CommandError(f"{opts['file']}: {exc}; nothing was changed") from None
        self.stdout.write("Imported " + ", ".join(f"{n} {k}" for k, n in counts.items()))
