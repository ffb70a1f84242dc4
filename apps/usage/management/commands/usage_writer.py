from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.usage.writer import UsageWriter


class Command(BaseCommand):
    help = "Drain the Redis usage stream into the database (run one or more beside the gateway)."
    requires_system_checks = []  # it runs with only the usage app loaded (XROUTER_ROLE=writer)

    def add_arguments(self, parser):
        parser.add_argument("--exit-with-parent", action="store_true", help="stop when the starting process is gone")
        parser.add_argument("--batch-size", type=int, default=20, help="stream entries per read (each holds up to 500 records)")

    def handle(self, *args, **opts):
        if not settings.REDIS_URL:
            raise CommandError("REDIS_URL is not set: without Redis the gateway writes usage itself.")
        UsageWriter(batch_size=opts["batch_size"]).run_forever(exit_with_parent=opts["exit_with_parent"])
