import yaml
from django.core.management.base import BaseCommand

from apps.routing.services import config_export


class Command(BaseCommand):
    help = "Print the configuration as YAML (secrets as ${ENV} references, never their values)."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="write to this file instead of stdout")

    def handle(self, *args, **opts):
        text = yaml.safe_dump(config_export(), sort_keys=False, allow_unicode=True)
        if opts.get("output"):
            with open(opts["output"], "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            self.stdout.write(text)
