import datetime

from django.core.management.base import BaseCommand, CommandError

from apps.billing.services import rollup_day

MAX_DAYS = 3660


class Command(BaseCommand):
    help = "Recompute the daily roll-ups of a range of days (TIME_ZONE), e.g. after a backfill. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="end", help="last day, YYYY-MM-DD (default: the first)")

    def handle(self, *args, start, end=None, **opts):
        try:
            first = datetime.date.fromisoformat(start)
            last = datetime.date.fromisoformat(end) if end else first
        except ValueError:
            raise CommandError("days are YYYY-MM-DD") from None
        if not 0 <= (last - first).days < MAX_DAYS:
            raise CommandError(f"--to must be on or after --from, at most {MAX_DAYS} days")
        rows = 0
        for offset in range((last - first).days + 1):
            rows += rollup_day(first + datetime.timedelta(days=offset))
        self.stdout.write(f"Rolled up {(last - first).days + 1} days: {rows} roll-up rows")
