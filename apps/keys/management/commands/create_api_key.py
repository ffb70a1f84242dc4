from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.keys.models import DEFAULT_SCOPES, SCOPES
from apps.keys.services import key_create


class Command(BaseCommand):
    help = "Create an API key (and the user, if needed). The key is printed alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", default="default")
        parser.add_argument("--allowed-model", action="append", default=[], help="Glob; repeatable. None = all models.")
        parser.add_argument("--residency", default="", help="e.g. RU: requests never leave models of this jurisdiction.")
        parser.add_argument("--scopes", default=",".join(DEFAULT_SCOPES),
                            help=f"Comma-separated, from {', '.join(SCOPES)} (default: %(default)s).")

    def handle(self, *args, **opts):
        scopes = [s.strip() for s in opts["scopes"].split(",") if s.strip()]
        user, created = User.objects.get_or_create(username=opts["user"])
        if created:
            user.set_unusable_password()
            user.save()
            self.stdout.write(f"Created user {user.username}")
        try:
            key, plaintext = key_create(user=user, name=opts["name"], allowed_models=opts["allowed_model"],
                                        residency=opts["residency"], scopes=scopes)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Created key {key.name} (xr-{key.prefix}-…) for {user.username} "
                          f"with scopes {', '.join(key.scopes)}; it is shown only now:")
        self.stdout.write(plaintext)
