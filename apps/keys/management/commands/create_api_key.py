from decimal import Decimal, InvalidOperation

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.common.rates import per_minute
from apps.keys.models import DEFAULT_SCOPES, SCOPES
from apps.keys.services import key_create


def roubles(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None


MODEL_LIMIT_NAMES = {"rpm": "requests_rate", "tpm": "tokens_rate", "concurrency": "max_concurrent",
                     "tokens-per-day": "tokens_per_day", "tokens-per-month": "tokens_per_month"}


def model_limit(text: str) -> tuple[str, dict]:
    """ "MODEL:rpm=10,tpm=20000" → ("MODEL", {"requests_rate": "10/min", "tokens_rate": "20000/min"})."""
    model, _, spec = text.rpartition(":")
    if not model or not spec:
        raise CommandError(f"--model-limit {text!r}: write MODEL:rpm=10,tpm=20000,concurrency=2.")
    limits = {}
    for part in spec.split(","):
        name, _, value = part.strip().partition("=")
        if name not in MODEL_LIMIT_NAMES or not value.isdigit():
            raise CommandError(f"--model-limit {text!r}: {part!r} is not one of "
                               f"{', '.join(n + '=N' for n in MODEL_LIMIT_NAMES)}.")
        field = MODEL_LIMIT_NAMES[name]
        limits[field] = per_minute(int(value)) if field.endswith("_rate") else int(value)
    return model, limits


class Command(BaseCommand):
    help = "Create an API key (and the user, if needed). The key is printed alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", default="default")
        parser.add_argument("--allowed-model", action="append", default=[], help="Glob; repeatable. None = all models.")
        parser.add_argument("--residency", default="", help="e.g. RU: requests never leave models of this jurisdiction.")
        parser.add_argument("--scopes", default=",".join(DEFAULT_SCOPES),
                            help=f"Comma-separated, from {', '.join(SCOPES)} (default: %(default)s).")
        parser.add_argument("--rpm", type=int, help="Requests per minute (sliding window).")
        parser.add_argument("--tpm", type=int, help="Tokens per minute (sliding window).")
        parser.add_argument("--concurrency", type=int, help="Requests in flight at once.")
        parser.add_argument("--tokens-per-day", type=int, help="Tokens per calendar day (TIME_ZONE).")
        parser.add_argument("--tokens-per-month", type=int, help="Tokens per calendar month (TIME_ZONE).")
        parser.add_argument("--budget", type=roubles,
                            help="Roubles per calendar month (TIME_ZONE), VAT included, e.g. 1000 or 99.50: "
                                 "requests beyond it are refused.")
        parser.add_argument("--model-limit", action="append", default=[], metavar="MODEL:LIMITS",
                            help='The key\'s own limits on one model, e.g. "gigachat/GigaChat-2-Max:rpm=10,tpm=20000,'
                                 'concurrency=2" (also tokens-per-day=, tokens-per-month=); repeatable.')
        parser.add_argument("--cost-centre", default="", help="A cost centre or project statements break spend down by.")

    def handle(self, *args, **opts):
        scopes = [s.strip() for s in opts["scopes"].split(",") if s.strip()]
        user, created = User.objects.get_or_create(username=opts["user"])
        if created:
            user.set_unusable_password()
            user.save()
            self.stdout.write(f"Created user {user.username}")
        limits = {"requests_rate": per_minute(opts["rpm"]), "tokens_rate": per_minute(opts["tpm"]),
                  "max_concurrent": opts["concurrency"], "tokens_per_day": opts["tokens_per_day"],
                  "tokens_per_month": opts["tokens_per_month"], "monthly_budget": opts["budget"]}
        for option, value in (("--rpm", opts["rpm"]), ("--tpm", opts["tpm"]), ("--concurrency", opts["concurrency"]),
                              ("--tokens-per-day", opts["tokens_per_day"]), ("--tokens-per-month", opts["tokens_per_month"])):
            if value is not None and value < 0:
                raise CommandError(f"{option} must be 0 or more.")
        model_limits = dict(model_limit(text) for text in opts["model_limit"])
        try:
            key, plaintext = key_create(user=user, name=opts["name"], allowed_models=opts["allowed_model"],
                                        residency=opts["residency"], scopes=scopes, cost_centre=opts["cost_centre"],
                                        model_limits=model_limits, **limits)
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError("; ".join(getattr(exc, "messages", [str(exc)]))) from None
        self.stdout.write(f"Created key {key.name} (xr-{key.prefix}-…) for {user.username} "
                          f"with scopes {', '.join(key.scopes)}; it is shown only now:")
        self.stdout.write(plaintext)
